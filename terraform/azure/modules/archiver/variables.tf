variable "name" {
  description = "Prefix of every resource's name; the appliances are Container Apps NAME-archiver-0, -1, …"
  type        = string
  default     = "offsite"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name: 2 to 21 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "resource_group_name" {
  description = "The resource group."
  type        = string
}

variable "location" {
  description = "Azure region of the appliances: the source's."
  type        = string
}

variable "container_app_environment_id" {
  description = "The environment module's id (an environment next to the source)."
  type        = string
}

variable "environment_default_domain" {
  description = "The environment module's default_domain: the appliances' names end in it."
  type        = string
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
  description = "The appliance configuration (docs/ARCHIVER.md): token hashes only, passwords by *_env names (keys of key_vault_secret_ids), [tls] cert = \"/tmp/tls.crt\", key = \"/tmp/tls.key\"; its listen port is replaced by each appliance's own."
  type        = string
  validation {
    condition     = strcontains(var.archiver_toml, "\"/tmp/tls.crt\"") && strcontains(var.archiver_toml, "\"/tmp/tls.key\"")
    error_message = "archiver_toml: its [tls] must name cert = \"/tmp/tls.crt\" and key = \"/tmp/tls.key\", where the apps write them."
  }
}

variable "key_vault_id" {
  description = "The Key Vault (RBAC authorization) holding the appliances' secrets."
  type        = string
}

variable "key_vault_secret_ids" {
  description = "The appliances' secrets, by environment variable: versionless Key Vault secret ids of the repositories' passwords. Never the runner's token."
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

variable "appliances" {
  description = "How many appliances: one Container App of one replica each (an app's ingress balances over its replicas, and a task lives in the replica that took it)."
  type        = number
  default     = 2
  validation {
    condition     = var.appliances >= 1 && var.appliances <= 20
    error_message = "appliances: 1 to 20."
  }
}

variable "cpu" {
  description = "vCPUs per appliance."
  type        = number
  default     = 2
  validation {
    condition     = contains([0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4], var.cpu)
    error_message = "cpu: a Container Apps size (0.25 to 4)."
  }
}

variable "memory" {
  description = "Memory per appliance."
  type        = string
  default     = "4Gi"
  validation {
    condition     = can(regex("^[0-9.]+Gi$", var.memory))
    error_message = "memory: in Gi, e.g. \"4Gi\"."
  }
}

variable "aks_workload_identity" {
  description = "Also let the AKS service account offsite:offsite-archiver take the appliances' identity."
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
