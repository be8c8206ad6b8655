# One user-assigned identity with least privilege for a runner or an appliance, and
# (with aks_workload_identity) a federated credential so an AKS service account takes it.
# Sources: Storage Blob Data Contributor under a condition (ABAC) that allows writes and
# deletes only of blobs under locks/ — a copy's shared lock is all it changes there, and
# a stolen identity cannot delete the primary backups. Target: Contributor; for an
# appliance under a condition that allows no delete. With per-blob locks, the role that
# sets them, on the target container only; with key_vault_access, its secrets' reader.

locals {
  blobs = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
  # Reads anywhere; writes, block uploads and deletes only under locks/.
  source_condition    = <<-EOT
    (
      (
        !(ActionMatches{'${local.blobs}/write'})
        AND !(ActionMatches{'${local.blobs}/add/action'})
        AND !(ActionMatches{'${local.blobs}/delete'})
      )
      OR
      (
        @Resource[${local.blobs}:path] StringLike 'locks/*'
        OR @Resource[${local.blobs}:path] StringLike '*/locks/*'
      )
    )
  EOT
  no_delete_condition = <<-EOT
    (
      !(ActionMatches{'${local.blobs}/delete'})
    )
  EOT
}

resource "azurerm_user_assigned_identity" "this" {
  name                = var.name
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_role_assignment" "sources" {
  for_each             = toset(var.source_container_ids)
  scope                = each.value
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.this.principal_id
  condition            = local.source_condition
  condition_version    = "2.0"
}

resource "azurerm_role_assignment" "target" {
  scope                = var.target_container_id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.this.principal_id
  condition            = var.role == "archiver" ? local.no_delete_condition : null
  condition_version    = var.role == "archiver" ? "2.0" : null
}

resource "azurerm_role_assignment" "blob_locks" {
  # A bool decides, not the id: that is unknown until the target's role exists.
  count              = var.blob_locks ? 1 : 0
  scope              = var.target_container_id
  role_definition_id = var.blob_lock_role_definition_id
  principal_id       = azurerm_user_assigned_identity.this.principal_id
}

# The identity reads its secrets through Key Vault references (a bool decides: the
# vault's id may be unknown until apply).
resource "azurerm_role_assignment" "key_vault" {
  count                = var.key_vault_access ? 1 : 0
  scope                = var.key_vault_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.this.principal_id
}

resource "azurerm_federated_identity_credential" "aks" {
  count               = var.aks_workload_identity ? 1 : 0
  name                = "${var.name}-aks"
  resource_group_name = var.resource_group_name
  parent_id           = azurerm_user_assigned_identity.this.id
  issuer              = var.aks_oidc_issuer_url
  subject             = "system:serviceaccount:${var.aks_service_account}"
  audience            = ["api://AzureADTokenExchange"]
}
