variable "name" {
  description = "The identity's name."
  type        = string
}

variable "role" {
  description = "Whose permissions: runner (writes and deletes on the target) or archiver (writes, deletes nothing)."
  type        = string
  validation {
    condition     = contains(["runner", "archiver"], var.role)
    error_message = "role: runner or archiver."
  }
}

variable "resource_group_name" {
  description = "The identity's resource group."
  type        = string
}

variable "location" {
  description = "The identity's region."
  type        = string
}

variable "source_container_ids" {
  description = "Resource ids of the containers holding the source repositories: read, and written only under locks/ (a copy's shared lock)."
  type        = list(string)
  validation {
    condition     = alltrue([for c in var.source_container_ids : can(regex("/blobServices/default/containers/[^/]+$", c))])
    error_message = "source_container_ids: container resource ids (…/blobServices/default/containers/NAME)."
  }
}

variable "target_container_id" {
  description = "The target container (the target module's container_id)."
  type        = string
}

variable "blob_locks" {
  description = "Assign the role that sets per-blob immutability (the target module's blob_locks)."
  type        = bool
  default     = false
}

variable "blob_lock_role_definition_id" {
  description = "The target module's blob_lock_role_definition_id, with blob_locks."
  type        = string
  default     = null
}

variable "key_vault_access" {
  description = "Let the identity read the secrets of key_vault_id (Key Vault Secrets User): for Key Vault references."
  type        = bool
  default     = false
}

variable "key_vault_id" {
  description = "The Key Vault (RBAC authorization) holding the identity's secrets, with key_vault_access."
  type        = string
  default     = null
}

variable "aks_workload_identity" {
  description = "The Kubernetes service account aks_service_account of the cluster whose OIDC issuer is aks_oidc_issuer_url takes this identity (workload identity; kubernetes/overlays/aks)."
  type        = bool
  default     = false
}

variable "aks_oidc_issuer_url" {
  description = "The AKS cluster's OIDC issuer URL, with aks_workload_identity."
  type        = string
  default     = null
}

variable "aks_service_account" {
  description = "NAMESPACE:NAME of the Kubernetes service account."
  type        = string
  default     = "offsite:offsite-runner"
  validation {
    condition     = can(regex("^[a-z0-9-]+:[a-z0-9-]+$", var.aks_service_account))
    error_message = "aks_service_account: NAMESPACE:NAME."
  }
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
