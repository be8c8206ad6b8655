output "id" {
  description = "The environment (the runner and archiver modules' container_app_environment_id)."
  value       = azurerm_container_app_environment.this.id
}

output "default_domain" {
  description = "The environment's domain: an app is APP.DOMAIN from other VNets (linked_vnet_ids)."
  value       = azurerm_container_app_environment.this.default_domain
}

output "log_analytics_workspace_id" {
  description = "The workspace the apps log to (the runner module's alerts query it)."
  value       = azurerm_log_analytics_workspace.this.id
}
