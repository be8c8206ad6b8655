variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "offsite"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name: 2 to 31 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "bucket_name" {
  description = "The bucket the backup copies are written to (created here)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name: an S3 bucket name (3 to 63 lower-case letters, digits, dots and dashes)."
  }
}

variable "object_lock" {
  description = "Turn S3 Object Lock on for the bucket. offsite sets each object's mode and retain-until date with its write (`object_lock` in the jobs file); the bucket needs no default retention. Cannot be turned off later."
  type        = bool
  default     = true
}

variable "lock_mode" {
  description = "The only lock mode writers may set: GOVERNANCE or COMPLIANCE (the jobs file's object_lock). The bucket policy refuses the other, so stolen credentials cannot put data under a compliance lock nobody can lift."
  type        = string
  default     = "GOVERNANCE"
  validation {
    condition     = contains(["GOVERNANCE", "COMPLIANCE"], var.lock_mode)
    error_message = "lock_mode: GOVERNANCE or COMPLIANCE."
  }
}

variable "max_retention_days" {
  description = "The longest lock a writer may set, in days from now (the jobs file's longest GFS period plus lock_margin; 7 yearly points need about 2,600). Longer ones are refused by the bucket policy, so stolen credentials cannot lock data for decades."
  type        = number
  default     = 2700
  validation {
    condition     = var.max_retention_days >= 1 && var.max_retention_days <= 36500
    error_message = "max_retention_days: 1 to 36500."
  }
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS on the bucket; null creates one whose key policy lets only key_admin_arns disable, delete or re-police it."
  type        = string
  default     = null
}

variable "key_admin_arns" {
  description = "IAM principals (besides the account root) that may disable the created key, schedule its deletion or change its policy. Everyone else, administrators included, is denied: a disabled key makes every locked copy unreadable."
  type        = list(string)
  default     = []
}

variable "key_user_arns" {
  description = "Roles in other accounts that use the created key (a cross-account runner or appliance). Roles of this account are granted by their own IAM policies."
  type        = list(string)
  default     = []
}

variable "writer_role_arns" {
  description = "Roles in other accounts that write copies into the bucket (the bucket policy admits them; their own policies scope them)."
  type        = list(string)
  default     = []
}

variable "noncurrent_version_days" {
  description = "Days a version hidden by a delete is kept (locked versions stay at least until their lock ends). Without object lock, this is how long a mistaken delete can be undone."
  type        = number
  default     = 30
  validation {
    condition     = var.noncurrent_version_days >= 1 && var.noncurrent_version_days <= 3650
    error_message = "noncurrent_version_days: 1 to 3650."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which multipart uploads a killed copy left are aborted."
  type        = number
  default     = 7
  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && var.abort_incomplete_multipart_days <= 365
    error_message = "abort_incomplete_multipart_days: 1 to 365."
  }
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
