variable "name" {
  description = "Prefix of every resource's name (the calling module's name and role, e.g. offsite-runner)."
  type        = string
}

variable "files" {
  description = "Configuration files the container writes before it starts: environment variable name → { path, content }. Each is an SSM SecureString under this module's key (Advanced tier when over 4 KB) given to the container as that variable."
  type        = map(object({ path = string, content = string }))
  validation {
    condition     = alltrue([for f in values(var.files) : length(f.content) <= 8192])
    error_message = "files: an SSM parameter holds at most 8 KB (Advanced tier); keep the jobs file below that."
  }
}

variable "secret_arns" {
  description = "Secrets Manager secrets this task alone is given: environment variable name → secret ARN."
  type        = map(string)
}

variable "secret_kms_key_arns" {
  description = "Customer keys those secrets are encrypted with (the execution role may decrypt with them); none for the AWS-managed key."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Days the task's logs are kept."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days: one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
