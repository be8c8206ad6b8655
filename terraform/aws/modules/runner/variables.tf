variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "offsite"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name: 2 to 31 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "image" {
  description = "The runner's image (the repository's Dockerfile), by digest: REGISTRY/offsite@sha256:…"
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image: pin the image by digest (…@sha256:<64 hex digits>), so every run starts the same binary."
  }
}

variable "jobs_toml" {
  description = "The jobs file (docs/JOBS.md). Passwords and tokens by *_env names only: each must be a key of secret_arns. Written to /tmp/jobs.toml in the task."
  type        = string
  validation {
    condition     = length(var.jobs_toml) <= 8192 && strcontains(var.jobs_toml, "[[job]]")
    error_message = "jobs_toml: a jobs file with at least one [[job]], at most 8 KB (an SSM parameter's limit)."
  }
}

variable "archiver_ca_pem" {
  description = "The CA that issued the appliances' certificate (the archiver module's ca_pem), written to /tmp/archiver-ca.pem: the jobs file's [job.archivers] ca_file. Null without appliances."
  type        = string
  default     = null
}

variable "secret_arns" {
  description = "Secrets Manager secrets the runner alone is given, by environment variable: the repositories' passwords and the appliances' token (OFFSITE_SOURCE_PASSWORD, OFFSITE_TARGET_PASSWORD, OFFSITE_ARCHIVER_TOKEN or the names the jobs file's *_env keys use)."
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

variable "target_bucket_arn" {
  description = "The target bucket (the target module's bucket_arn)."
  type        = string
}

variable "target_prefix" {
  description = "The prefix the jobs file's target URL names, with a trailing / (\"jobs/\" for s3://BUCKET/jobs); the role writes nowhere else."
  type        = string
  default     = ""
}

variable "target_kms_key_arn" {
  description = "The target bucket's key (the target module's kms_key_arn)."
  type        = string
}

variable "lock_mode" {
  description = "The lock mode the jobs file's object_lock sets: GOVERNANCE or COMPLIANCE."
  type        = string
  default     = "GOVERNANCE"
  validation {
    condition     = contains(["GOVERNANCE", "COMPLIANCE"], var.lock_mode)
    error_message = "lock_mode: GOVERNANCE or COMPLIANCE."
  }
}

variable "max_retention_days" {
  description = "The longest lock the runner may set (the target module's max_retention_days)."
  type        = number
  default     = 2700
  validation {
    condition     = var.max_retention_days >= 1 && var.max_retention_days <= 36500
    error_message = "max_retention_days: 1 to 36500."
  }
}

variable "source_bucket_arns" {
  description = "Buckets holding the source repositories."
  type        = list(string)
}

variable "source_kms_key_arns" {
  description = "Customer keys of the source buckets."
  type        = list(string)
  default     = []
}

variable "vpc_id" {
  description = "The VPC the runner runs in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the task (routes to S3 and the AWS APIs: the endpoints module, or NAT)."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "subnet_ids: at least one subnet."
  }
}

variable "https_egress_cidr_blocks" {
  description = "Where the runner may open HTTPS: the VPC's interface endpoints (its CIDR) — add 0.0.0.0/0 only when a bucket is in another region or a store has no endpoint in the VPC."
  type        = list(string)
}

variable "https_egress_prefix_list_ids" {
  description = "Prefix lists the runner may reach over HTTPS (the S3 gateway endpoint's: the endpoints module's s3_prefix_list_id)."
  type        = list(string)
  default     = []
}

variable "archiver_cidr_blocks" {
  description = "Where the appliances are (port 9443): the archiver module's subnets, in this or a peered VPC."
  type        = list(string)
  default     = []
}

variable "mode" {
  description = "scheduled: `offsite job run --once` by EventBridge Scheduler (retries, dead-letter queue, an alarm on every run that did not end in success); service: `offsite job run` continuously as an ECS service, its /metrics on :9184 for Prometheus (found by Cloud Map name runner.NAME.internal) and /health as the container's health check."
  type        = string
  default     = "scheduled"
  validation {
    condition     = contains(["scheduled", "service"], var.mode)
    error_message = "mode: scheduled or service."
  }
}

variable "schedule" {
  description = "When the scheduled runner starts (EventBridge Scheduler expression, in schedule_timezone)."
  type        = string
  default     = "cron(0 2 * * ? *)"
  validation {
    condition     = can(regex("^(cron|rate)\\(.+\\)$", var.schedule))
    error_message = "schedule: cron(…) or rate(…)."
  }
}

variable "schedule_timezone" {
  description = "The zone the schedule is read in (IANA name)."
  type        = string
  default     = "Etc/UTC"
}

variable "metrics_cidr_blocks" {
  description = "Who may scrape the service runner's :9184 (your Prometheus)."
  type        = list(string)
  default     = []
}

variable "alarm_topic_arn" {
  description = "An SNS topic of yours for the runner's alarms, with create_alarm_topic = false."
  type        = string
  default     = null
}

variable "create_alarm_topic" {
  description = "Make the alarm topic here (false: alarm_topic_arn names yours)."
  type        = bool
  default     = true
}

variable "cpu" {
  description = "CPU units of the task (1024 = one vCPU)."
  type        = number
  default     = 2048
  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu: a Fargate size (256, 512, 1024, 2048, 4096, 8192, 16384)."
  }
}

variable "memory" {
  description = "Memory of the task, MiB."
  type        = number
  default     = 4096
  validation {
    condition     = var.memory >= 512 && var.memory <= 122880
    error_message = "memory: 512 to 122880 MiB (within what Fargate pairs with the cpu)."
  }
}

variable "eks_oidc_provider_arn" {
  description = "Also let the EKS service account offsite:offsite-runner take the runner's role through IRSA."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Days the runner's logs are kept."
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
