output "target_url" {
  description = "The target as offsite names it (the jobs file's [job.target] url)."
  value       = "az://${azurerm_storage_container.target.name}@${azurerm_storage_account.target.name}"
}

output "storage_account_name" {
  description = "The account (AZURE_STORAGE_ACCOUNT_NAME for runs elsewhere)."
  value       = azurerm_storage_account.target.name
}

output "archiver_urls" {
  description = "The archivers' addresses inside the environment, one per appliance, for [job.archivers] urls."
  value       = [for a in azurerm_container_app.archiver : "https://${a.name}:9443"]
}

output "runner_identity_client_id" {
  description = "Client id of the runner's identity."
  value       = azurerm_user_assigned_identity.runner.client_id
}

output "archiver_identity_client_id" {
  description = "Client id of the archiver's identity."
  value       = azurerm_user_assigned_identity.archiver.client_id
}
