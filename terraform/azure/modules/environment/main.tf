# A Container Apps environment inside the operator's subnet, internal only (no public
# ingress), its logs in a Log Analytics workspace (where the runner's alerts look), and
# — for VNets elsewhere that must reach its apps — a private DNS zone of its default
# domain pointing at its static IP, linked to them.

resource "azurerm_log_analytics_workspace" "this" {
  name                = "${var.name}-logs"
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = var.tags
}

resource "azurerm_container_app_environment" "this" {
  name                           = "${var.name}-env"
  resource_group_name            = var.resource_group_name
  location                       = var.location
  log_analytics_workspace_id     = azurerm_log_analytics_workspace.this.id
  infrastructure_subnet_id       = var.infrastructure_subnet_id
  internal_load_balancer_enabled = true
  tags                           = var.tags
}

resource "azurerm_private_dns_zone" "apps" {
  count               = length(var.linked_vnet_ids) > 0 ? 1 : 0
  name                = azurerm_container_app_environment.this.default_domain
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

resource "azurerm_private_dns_a_record" "apps" {
  count               = length(var.linked_vnet_ids) > 0 ? 1 : 0
  name                = "*"
  zone_name           = azurerm_private_dns_zone.apps[0].name
  resource_group_name = var.resource_group_name
  ttl                 = 300
  records             = [azurerm_container_app_environment.this.static_ip_address]
}

resource "azurerm_private_dns_zone_virtual_network_link" "apps" {
  for_each              = toset(var.linked_vnet_ids)
  name                  = "${var.name}-${basename(each.value)}"
  resource_group_name   = var.resource_group_name
  private_dns_zone_name = azurerm_private_dns_zone.apps[0].name
  virtual_network_id    = each.value
}
