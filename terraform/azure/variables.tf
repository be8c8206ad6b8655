variable "name" {
  description = "Prefix of every resource's name (letters and digits: storage account names allow nothing else)."
  type        = string
  default     = "offsite"
}

variable "resource_group_name" {
  description = "The resource group everything goes into."
  type        = string
}

variable "location" {
  description = "Azure region of the target and the runner."
  type        = string
}

variable "storage_account_name" {
  description = "The target storage account (created here; 3–24 lowercase letters and digits)."
  type        = string
}

variable "container_name" {
  description = "The container backup copies go to."
  type        = string
  default     = "offsite"
}

variable "immutability_days" {
  description = "Version-level immutability: days each blob version stays immutable after it is written (the account's default policy, state Unlocked so it can still be raised). 0 turns immutability off."
  type        = number
  default     = 30
}

variable "blob_locks" {
  description = "Let the runner and the archiver set and extend each blob's own immutability date (offsite's GFS-sized locks, `object_lock` in the jobs file) through a role holding only that data action. Needs immutability_days > 0."
  type        = bool
  default     = true
}

variable "source_container_ids" {
  description = "Resource ids of the containers holding the source repositories (read by the archiver and the runner)."
  type        = list(string)
}

variable "infrastructure_subnet_id" {
  description = "Subnet of the Container Apps environment (internal: the archiver is not reachable from the internet)."
  type        = string
}

variable "runner_image" {
  description = "Container image of the runner (the repository's Dockerfile)."
  type        = string
}

variable "archiver_image" {
  description = "Container image of the archiver appliance; null runs no archiver."
  type        = string
  default     = null
}

variable "archiver_replicas" {
  description = "Archivers in the pool: one Container App of one replica each."
  type        = number
  default     = 2
}

variable "runner_cron" {
  description = "Cron schedule (UTC) of `offsite job run --once`."
  type        = string
  default     = "0 2 * * *"
}

variable "jobs_file" {
  description = "The jobs file (docs/JOBS.md), kept as a Container Apps secret."
  type        = string
  sensitive   = true
}

variable "archiver_config" {
  description = "The archiver's TOML config (docs/ARCHIVER.md), kept as a secret."
  type        = string
  sensitive   = true
  default     = ""
}

variable "secrets" {
  description = "Further secrets (passwords, the archiver token, TLS certificate and key) given to both apps as environment variables: map of variable name to value."
  type        = map(string)
  sensitive   = true
  default     = {}
}

variable "cpu" {
  description = "vCPUs per replica."
  type        = number
  default     = 2
}

variable "memory" {
  description = "Memory per replica (Container Apps pairs it with cpu: 2 vCPU → 4Gi)."
  type        = string
  default     = "4Gi"
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
