variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "offsite"
}

variable "target_bucket_name" {
  description = "The bucket the backup copies are written to (created here)."
  type        = string
}

variable "object_lock" {
  description = "Turn S3 Object Lock on for the target bucket. offsite sets each object's mode and retain-until date with its write (`offsite target set --lock`, or `object_lock` in the jobs file); the bucket needs no default retention."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS on the target bucket; null creates one."
  type        = string
  default     = null
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which multipart uploads a killed copy left are aborted."
  type        = number
  default     = 7
}

variable "source_bucket_arns" {
  description = "ARNs of the buckets holding the source repositories (read by the archiver, and by the runner when it copies without one)."
  type        = list(string)
}

variable "vpc_id" {
  description = "VPC the runner and the archiver run in (the archiver next to the source bucket's region)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the tasks (with a route to S3: a gateway endpoint or NAT)."
  type        = list(string)
}

variable "runner_image" {
  description = "Container image of the runner (the repository's Dockerfile)."
  type        = string
}

variable "archiver_image" {
  description = "Container image of the archiver appliance (archiver/Dockerfile); null runs no archiver."
  type        = string
  default     = null
}

variable "archiver_count" {
  description = "Archiver tasks (the proxy pool); each takes a copy chain per task slot."
  type        = number
  default     = 2
}

variable "runner_schedule" {
  description = "EventBridge schedule of `offsite job run --once` (the runner as a scheduled task)."
  type        = string
  default     = "cron(0 2 * * ? *)"
}

variable "jobs_file_ssm_parameter_arn" {
  description = "ARN of an SSM parameter (SecureString) holding the jobs file (docs/JOBS.md); the task writes it to /etc/offsite/jobs.toml."
  type        = string
}

variable "archiver_config_ssm_parameter_arn" {
  description = "ARN of an SSM parameter holding the archiver's TOML config (docs/ARCHIVER.md), token hashes and TLS paths included."
  type        = string
  default     = null
}

variable "secret_arns" {
  description = "Secrets Manager ARNs the tasks read (repository passwords, the archiver token), passed as environment variables: map of variable name to ARN."
  type        = map(string)
  default     = {}
}

variable "cpu" {
  description = "CPU units per task (1024 = one vCPU)."
  type        = number
  default     = 2048
}

variable "memory" {
  description = "Memory per task, MiB."
  type        = number
  default     = 4096
}

variable "log_retention_days" {
  description = "Days the tasks' logs are kept."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
