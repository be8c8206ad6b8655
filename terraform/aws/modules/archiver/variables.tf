variable "name" {
  description = "Prefix of every resource's name; the appliances answer as archiver.NAME.internal."
  type        = string
  default     = "offsite"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name: 2 to 31 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "image" {
  description = "The appliance's image (archiver/Dockerfile), by digest: REGISTRY/offsite-archiver@sha256:…"
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image: pin the image by digest (…@sha256:<64 hex digits>)."
  }
}

variable "archiver_toml" {
  description = "The appliance configuration (docs/ARCHIVER.md): token hashes only, passwords by *_env names (keys of secret_arns), [tls] cert = \"/tmp/tls.crt\", key = \"/tmp/tls.key\"."
  type        = string
  validation {
    condition     = strcontains(var.archiver_toml, "\"/tmp/tls.crt\"") && strcontains(var.archiver_toml, "\"/tmp/tls.key\"")
    error_message = "archiver_toml: its [tls] must name cert = \"/tmp/tls.crt\" and key = \"/tmp/tls.key\", where the task writes them."
  }
}

variable "secret_arns" {
  description = "Secrets Manager secrets the appliances alone are given, by environment variable: the repositories' passwords its configuration's *_env keys name. Never the runner's token."
  type        = map(string)
  validation {
    condition     = alltrue([for k in keys(var.secret_arns) : can(regex("^[A-Z_][A-Z0-9_]*$", k))])
    error_message = "secret_arns: keys are environment variable names (upper case, digits, underscores)."
  }
}

variable "secret_kms_key_arns" {
  description = "Customer keys the secrets are encrypted with; none for the AWS-managed key."
  type        = list(string)
  default     = []
}

variable "make_certificate" {
  description = "Make a CA and a certificate for archiver.NAME.internal here (their private keys are then in the Terraform state: keep the state encrypted). false: give tls_cert_pem, tls_key_secret_arn and tls_ca_pem."
  type        = bool
  default     = true
}

variable "tls_cert_pem" {
  description = "Your certificate for archiver.NAME.internal (with its chain), with make_certificate = false."
  type        = string
  default     = null
}

variable "tls_key_secret_arn" {
  description = "A Secrets Manager secret holding tls_cert_pem's private key (PEM), with make_certificate = false."
  type        = string
  default     = null
}

variable "tls_ca_pem" {
  description = "The CA that issued tls_cert_pem, handed to the runner (ca_pem output), with make_certificate = false."
  type        = string
  default     = null
}

variable "source_bucket_arns" {
  description = "Buckets holding the source repositories (the appliances run next to them)."
  type        = list(string)
}

variable "source_kms_key_arns" {
  description = "Customer keys of the source buckets."
  type        = list(string)
  default     = []
}

variable "target_bucket_arn" {
  description = "The target bucket (the target module's bucket_arn)."
  type        = string
}

variable "target_prefix" {
  description = "The prefix of the target repositories, with a trailing / (\"jobs/\")."
  type        = string
  default     = ""
}

variable "target_kms_key_arn" {
  description = "The target bucket's key."
  type        = string
}

variable "lock_mode" {
  description = "The lock mode the jobs set: GOVERNANCE or COMPLIANCE."
  type        = string
  default     = "GOVERNANCE"
  validation {
    condition     = contains(["GOVERNANCE", "COMPLIANCE"], var.lock_mode)
    error_message = "lock_mode: GOVERNANCE or COMPLIANCE."
  }
}

variable "max_retention_days" {
  description = "The longest lock the appliances may set."
  type        = number
  default     = 2700
  validation {
    condition     = var.max_retention_days >= 1 && var.max_retention_days <= 36500
    error_message = "max_retention_days: 1 to 36500."
  }
}

variable "vpc_id" {
  description = "The VPC next to the source buckets the appliances run in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the appliances (spread over zones)."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "subnet_ids: at least one subnet."
  }
}

variable "runner_cidr_blocks" {
  description = "Where the runner is (the only client of port 9443)."
  type        = list(string)
  validation {
    condition     = length(var.runner_cidr_blocks) >= 1 && !contains(var.runner_cidr_blocks, "0.0.0.0/0")
    error_message = "runner_cidr_blocks: the runner's subnets, not the whole internet."
  }
}

variable "runner_vpcs" {
  description = "VPCs of this account (with their regions) whose runner must resolve archiver.NAME.internal: the private DNS zone is associated with them. Connect them to this VPC by peering or a transit gateway."
  type        = list(object({ id = string, region = string }))
  default     = []
}

variable "https_egress_cidr_blocks" {
  description = "Where the appliances may open HTTPS: the VPC's interface endpoints (its CIDR); add more only for a store with no endpoint in the VPC."
  type        = list(string)
}

variable "https_egress_prefix_list_ids" {
  description = "Prefix lists the appliances may reach over HTTPS (the S3 gateway endpoint's)."
  type        = list(string)
  default     = []
}

variable "appliances" {
  description = "How many appliances (ECS tasks), each one copying task_slots chains at once."
  type        = number
  default     = 2
  validation {
    condition     = var.appliances >= 1 && var.appliances <= 20
    error_message = "appliances: 1 to 20."
  }
}

variable "cpu" {
  description = "CPU units per appliance (1024 = one vCPU)."
  type        = number
  default     = 2048
  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu: a Fargate size (256, 512, 1024, 2048, 4096, 8192, 16384)."
  }
}

variable "memory" {
  description = "Memory per appliance, MiB."
  type        = number
  default     = 4096
  validation {
    condition     = var.memory >= 512 && var.memory <= 122880
    error_message = "memory: 512 to 122880 MiB."
  }
}

variable "eks_oidc_provider_arn" {
  description = "Also let the EKS service account offsite:offsite-archiver take the appliances' role through IRSA."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Days the appliances' logs are kept."
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
