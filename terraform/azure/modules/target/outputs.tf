output "target_url" {
  description = "The target as offsite names it (the jobs file's [job.target] url is this plus a prefix)."
  value       = "az://${azurerm_storage_container.target.name}@${azurerm_storage_account.target.name}"
}

output "storage_account_id" {
  description = "The account."
  value       = azurerm_storage_account.target.id
}

output "container_id" {
  description = "The target container (the access module's target_container_id)."
  value       = azurerm_storage_container.target.id
}

output "blob_lock_role_definition_id" {
  description = "The role setting per-blob immutability (the access module's blob_lock_role_definition_id); null without blob_locks."
  value       = length(azurerm_role_definition.blob_locks) > 0 ? azurerm_role_definition.blob_locks[0].role_definition_resource_id : null
}
