variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "offsite"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}$", var.name))
    error_message = "name: 2 to 25 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "resource_group_name" {
  description = "The resource group."
  type        = string
}

variable "location" {
  description = "Azure region of the runner."
  type        = string
}

variable "container_app_environment_id" {
  description = "The environment module's id."
  type        = string
}

variable "log_analytics_workspace_id" {
  description = "The environment module's log_analytics_workspace_id: the alerts read the runner's reports there."
  type        = string
}

variable "image" {
  description = "The runner's image (the repository's Dockerfile), by digest: REGISTRY/offsite@sha256:…"
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image: pin the image by digest (…@sha256:<64 hex digits>)."
  }
}

variable "jobs_toml" {
  description = "The jobs file (docs/JOBS.md). Passwords and tokens by *_env names only: each must be a key of key_vault_secret_ids. Written to /tmp/jobs.toml."
  type        = string
  validation {
    condition     = strcontains(var.jobs_toml, "[[job]]")
    error_message = "jobs_toml: a jobs file with at least one [[job]]."
  }
}

variable "archiver_ca_pem" {
  description = "The CA of the appliances' certificate (the archiver module's ca_pem), written to /tmp/archiver-ca.pem: the jobs file's ca_file. Null without appliances."
  type        = string
  default     = null
}

variable "key_vault_id" {
  description = "The Key Vault (RBAC authorization) holding the runner's secrets: its identity gets Key Vault Secrets User there."
  type        = string
}

variable "key_vault_secret_ids" {
  description = "The runner's secrets, by environment variable: versionless Key Vault secret ids (https://VAULT.vault.azure.net/secrets/NAME). Their values never pass through Terraform."
  type        = map(string)
  validation {
    condition     = alltrue([for k, v in var.key_vault_secret_ids : can(regex("^[A-Z_][A-Z0-9_]*$", k)) && can(regex("^https://[^/]+/secrets/[^/]+/?$", v))])
    error_message = "key_vault_secret_ids: ENV_NAME = \"https://VAULT.vault.azure.net/secrets/NAME\" (versionless)."
  }
}

variable "source_container_ids" {
  description = "Resource ids of the source containers."
  type        = list(string)
}

variable "target_container_id" {
  description = "The target module's container_id."
  type        = string
}

variable "blob_locks" {
  description = "Per-blob immutability (the target module's blob_locks)."
  type        = bool
  default     = true
}

variable "blob_lock_role_definition_id" {
  description = "The target module's blob_lock_role_definition_id."
  type        = string
  default     = null
}

variable "mode" {
  description = "scheduled: a Container Apps job runs `offsite job run --once` on cron; service: a Container App runs `offsite job run` continuously, /metrics and /health on :9184 (internal HTTP ingress, for a Prometheus in the VNet)."
  type        = string
  default     = "scheduled"
  validation {
    condition     = contains(["scheduled", "service"], var.mode)
    error_message = "mode: scheduled or service."
  }
}

variable "cron" {
  description = "When the scheduled runner starts (five-field cron, UTC: Container Apps jobs know no other zone)."
  type        = string
  default     = "0 2 * * *"
  validation {
    condition     = length(split(" ", trimspace(var.cron))) == 5
    error_message = "cron: five fields (minute hour day month weekday), UTC."
  }
}

variable "alert_emails" {
  description = "Who hears of a run that did not end in success, or of no run for two days (an action group is made for them)."
  type        = list(string)
  default     = []
}

variable "action_group_id" {
  description = "An action group of yours for the alerts, besides alert_emails."
  type        = string
  default     = null
}

variable "cpu" {
  description = "vCPUs of the runner."
  type        = number
  default     = 2
  validation {
    condition     = contains([0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4], var.cpu)
    error_message = "cpu: a Container Apps size (0.25 to 4)."
  }
}

variable "memory" {
  description = "Memory of the runner (Container Apps pairs it with cpu: 2 vCPU → 4Gi)."
  type        = string
  default     = "4Gi"
  validation {
    condition     = can(regex("^[0-9.]+Gi$", var.memory))
    error_message = "memory: in Gi, e.g. \"4Gi\"."
  }
}

variable "aks_workload_identity" {
  description = "Also let the AKS service account offsite:offsite-runner take the runner's identity."
  type        = bool
  default     = false
}

variable "aks_oidc_issuer_url" {
  description = "The AKS cluster's OIDC issuer URL, with aks_workload_identity."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
