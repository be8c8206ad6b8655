output "identity_id" {
  description = "The identity's resource id (for a Container App's identity block)."
  value       = azurerm_user_assigned_identity.this.id
}

output "client_id" {
  description = "The identity's client id (AZURE_CLIENT_ID; the azure.workload.identity/client-id annotation)."
  value       = azurerm_user_assigned_identity.this.client_id
}

output "principal_id" {
  description = "The identity's principal id (for further role assignments)."
  value       = azurerm_user_assigned_identity.this.principal_id
}
