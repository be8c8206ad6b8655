variable "name" {
  description = "Prefix of the names of what this module makes besides the account."
  type        = string
  default     = "offsite"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name: 2 to 31 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "resource_group_name" {
  description = "The resource group of the target account."
  type        = string
}

variable "location" {
  description = "Azure region of the target account."
  type        = string
}

variable "storage_account_name" {
  description = "The target storage account (created here)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name: 3 to 24 lower-case letters and digits."
  }
}

variable "container_name" {
  description = "The container backup copies go to."
  type        = string
  default     = "offsite"
  validation {
    condition     = can(regex("^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$", var.container_name))
    error_message = "container_name: 3 to 63 lower-case letters, digits and single dashes."
  }
}

variable "replication" {
  description = "The account's replication: LRS, GRS or RAGRS allow the Archive tier (the jobs file's data_class = \"Archive\"); ZRS, GZRS and RAGZRS do not."
  type        = string
  default     = "LRS"
  validation {
    condition     = contains(["LRS", "GRS", "RAGRS", "ZRS", "GZRS", "RAGZRS"], var.replication)
    error_message = "replication: LRS, GRS, RAGRS, ZRS, GZRS or RAGZRS."
  }
}

variable "archive_tier" {
  description = "The jobs write data packs to the Archive tier (data_class = \"Archive\"): the plan refuses a replication that does not support it."
  type        = bool
  default     = false
}

variable "immutability_days" {
  description = "Version-level immutability: days each blob version stays immutable after its write (the account's default policy, Unlocked). 0 turns it off. Changing it later replaces the account — which prevent_destroy refuses: raise it in the portal or with `az storage account update` instead, then here."
  type        = number
  default     = 30
  validation {
    condition     = var.immutability_days >= 0 && var.immutability_days <= 146000
    error_message = "immutability_days: 0 to 146000."
  }
}

variable "noncurrent_version_days" {
  description = "Days a version hidden by a delete is kept after its immutability (how long a mistaken delete can be undone)."
  type        = number
  default     = 30
  validation {
    condition     = var.noncurrent_version_days >= 1 && var.noncurrent_version_days <= 3650
    error_message = "noncurrent_version_days: 1 to 3650."
  }
}

variable "blob_locks" {
  description = "Make the role that lets offsite set and extend each blob's own immutability date (GFS-sized locks, `object_lock` in the jobs file): the access module assigns it on the target container."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
