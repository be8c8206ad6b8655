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

# GFS-sized locks: offsite sets each blob's own immutability date with its write and
# extends it when a newer point keeps an older pack. Azure grants both (and the removal
# of an Unlocked policy) through one data action, in no built-in role narrower than
# Storage Blob Data Owner; this role holds that action alone, on the target only. With
# it the runner could remove an Unlocked (governance) policy: for ransomware-proof
# copies use `object_lock = "compliance"` (Locked policies cannot be shortened by
# anyone), or set `blob_locks = false` and rely on the account's default policy.
resource "azurerm_role_definition" "blob_locks" {
  count       = var.blob_locks && var.immutability_days > 0 ? 1 : 0
  name        = "${var.name}-blob-immutability-writer"
  scope       = azurerm_storage_account.target.id
  description = "Set and extend per-blob immutability policies (offsite's GFS-sized locks)."

  permissions {
    data_actions = [
      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/immutableStorage/runAsSuperUser/action",
    ]
  }

  assignable_scopes = [azurerm_storage_account.target.id]
}

resource "azurerm_role_assignment" "runner_blob_locks" {
  count              = length(azurerm_role_definition.blob_locks)
  scope              = azurerm_storage_container.target.id
  role_definition_id = azurerm_role_definition.blob_locks[0].role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.runner.principal_id
}

resource "azurerm_role_assignment" "archiver_blob_locks" {
  count              = length(azurerm_role_definition.blob_locks)
  scope              = azurerm_storage_container.target.id
  role_definition_id = azurerm_role_definition.blob_locks[0].role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.archiver.principal_id
}
