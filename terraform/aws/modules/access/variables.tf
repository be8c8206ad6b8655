variable "name" {
  description = "The role's name."
  type        = string
}

variable "role" {
  description = "Whose permissions: runner (writes and deletes on the target: forget, prune, job state) or archiver (writes packs, deletes nothing)."
  type        = string
  validation {
    condition     = contains(["runner", "archiver"], var.role)
    error_message = "role: runner or archiver."
  }
}

variable "source_bucket_arns" {
  description = "Buckets holding the source repositories: read, and written only under locks/ (a copy's shared lock)."
  type        = list(string)
  validation {
    condition     = alltrue([for a in var.source_bucket_arns : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", a))])
    error_message = "source_bucket_arns: bucket ARNs (arn:aws:s3:::NAME), no object paths."
  }
}

variable "source_kms_key_arns" {
  description = "Customer keys the source buckets are encrypted with (decrypt to read; encrypt for the lock objects)."
  type        = list(string)
  default     = []
}

variable "target_bucket_arn" {
  description = "The target bucket (the target module's bucket_arn)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.target_bucket_arn))
    error_message = "target_bucket_arn: a bucket ARN (arn:aws:s3:::NAME)."
  }
}

variable "target_prefix" {
  description = "Only objects under this prefix of the target (e.g. \"jobs/\"; empty: the whole bucket)."
  type        = string
  default     = ""
  validation {
    condition     = var.target_prefix == "" || can(regex("^[^/*][^*]*/$", var.target_prefix))
    error_message = "target_prefix: empty, or a path ending in / without * (e.g. \"jobs/\")."
  }
}

variable "target_kms_key_arn" {
  description = "The target bucket's key (the target module's kms_key_arn)."
  type        = string
}

variable "lock_mode" {
  description = "The lock mode the role may set: GOVERNANCE or COMPLIANCE."
  type        = string
  default     = "GOVERNANCE"
  validation {
    condition     = contains(["GOVERNANCE", "COMPLIANCE"], var.lock_mode)
    error_message = "lock_mode: GOVERNANCE or COMPLIANCE."
  }
}

variable "max_retention_days" {
  description = "The longest lock the role may set, in days from now."
  type        = number
  default     = 2700
  validation {
    condition     = var.max_retention_days >= 1 && var.max_retention_days <= 36500
    error_message = "max_retention_days: 1 to 36500."
  }
}

variable "trust_ecs" {
  description = "ECS tasks may take the role."
  type        = bool
  default     = true
}

variable "eks_oidc_provider_arn" {
  description = "An EKS cluster's IAM OIDC provider: pods of eks_service_account take the role through IRSA (kubernetes/overlays/eks)."
  type        = string
  default     = null
}

variable "eks_service_account" {
  description = "NAMESPACE:NAME of the Kubernetes service account that takes the role (IRSA or EKS Pod Identity)."
  type        = string
  default     = "offsite:offsite-runner"
  validation {
    condition     = can(regex("^[a-z0-9-]+:[a-z0-9-]+$", var.eks_service_account))
    error_message = "eks_service_account: NAMESPACE:NAME."
  }
}

variable "eks_pod_identity" {
  description = "EKS Pod Identity may give the role to pods (make the association with aws_eks_pod_identity_association)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
