output "identity_client_id" {
  description = "The runner identity's client id (also for the AKS service account's azure.workload.identity/client-id)."
  value       = module.access.client_id
}

output "identity_principal_id" {
  description = "The runner identity's principal id."
  value       = module.access.principal_id
}

output "metrics_url" {
  description = "The service runner's /metrics inside the environment; null when scheduled."
  value       = local.service ? "https://${azurerm_container_app.runner[0].ingress[0].fqdn}/metrics" : null
}
