# One user-assigned identity per app. object_store (offsite's store client) logs in
# with it from inside Container Apps (IDENTITY_ENDPOINT and IDENTITY_HEADER, with
# AZURE_CLIENT_ID naming the identity): no account key exists anywhere.
# Runner: read and write (and delete what forget and prune let go) on the target, read
# the sources (it writes its own lock objects there, so Contributor). Archiver: read the
# sources (locks: Contributor), write the target.

resource "azurerm_user_assigned_identity" "runner" {
  name                = "${var.name}-runner"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_user_assigned_identity" "archiver" {
  name                = "${var.name}-archiver"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_role_assignment" "runner_target" {
  scope                = azurerm_storage_container.target.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.runner.principal_id
}

resource "azurerm_role_assignment" "runner_sources" {
  for_each             = toset(var.source_container_ids)
  scope                = each.value
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.runner.principal_id
}

resource "azurerm_role_assignment" "archiver_target" {
  scope                = azurerm_storage_container.target.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.archiver.principal_id
}

resource "azurerm_role_assignment" "archiver_sources" {
  for_each             = toset(var.source_container_ids)
  scope                = each.value
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.archiver.principal_id
}
