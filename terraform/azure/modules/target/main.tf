# The target: a StorageV2 account with blob versioning and version-level immutability
# (each version immutable for `immutability_days` after its write), no public access,
# no shared keys (every request needs an Entra ID token), TLS 1.2, and a container. The
# account holds the backups: prevent_destroy stops any plan that would replace it — and
# immutability_policy is ForceNew, so changing immutability_days here would.

resource "azurerm_storage_account" "target" {
  # checkov:skip=CKV_AZURE_206:Replication is the operator's choice of price (the replication variable); the account is itself the off-site copy.
  # checkov:skip=CKV2_AZURE_1:Customer-managed keys are the operator's choice; Microsoft-managed encryption is always on.
  # checkov:skip=CKV2_AZURE_33:A private endpoint needs the operator's VNet and DNS zone; access is by Entra ID only (no shared keys, no public blobs).
  # checkov:skip=CKV_AZURE_59:Public network access stays on so a runner outside the VNet (or another cloud) can write; keys are off and every request needs an Entra ID token.
  # checkov:skip=CKV_AZURE_33:Queue logging: offsite uses no queues.
  name                            = var.storage_account_name
  resource_group_name             = var.resource_group_name
  location                        = var.location
  account_tier                    = "Standard"
  account_replication_type        = var.replication
  account_kind                    = "StorageV2"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  allow_nested_items_to_be_public = false
  shared_access_key_enabled       = false
  default_to_oauth_authentication = true

  blob_properties {
    versioning_enabled = true
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  dynamic "immutability_policy" {
    for_each = var.immutability_days > 0 ? [1] : []
    content {
      allow_protected_append_writes = false
      state                         = "Unlocked"
      period_since_creation_in_days = var.immutability_days
    }
  }

  sas_policy {
    expiration_period = "01.00:00:00"
  }

  tags = var.tags

  lifecycle {
    prevent_destroy = true
    precondition {
      condition     = !var.archive_tier || contains(["LRS", "GRS", "RAGRS"], var.replication)
      error_message = "The Archive tier needs LRS, GRS or RAGRS replication; ${var.replication} does not support it."
    }
  }
}

resource "azurerm_storage_container" "target" {
  # checkov:skip=CKV2_AZURE_21:Blob read logging is configured per account by the operator's diagnostic settings.
  name                  = var.container_name
  storage_account_id    = azurerm_storage_account.target.id
  container_access_type = "private"
}

# Multipart uploads (uncommitted blocks) a killed copy leaves are discarded by Azure
# after 7 days on its own; versions hidden by forget and prune go once their
# immutability is over and noncurrent_version_days have passed.
resource "azurerm_storage_management_policy" "target" {
  storage_account_id = azurerm_storage_account.target.id
  rule {
    name    = "offsite-noncurrent-versions"
    enabled = true
    filters {
      blob_types = ["blockBlob"]
    }
    actions {
      version {
        delete_after_days_since_creation = var.immutability_days + var.noncurrent_version_days
      }
    }
  }
}

# GFS-sized locks: offsite sets each blob's own immutability date with its write and
# extends it when a newer point keeps an older pack. Azure grants both (and the removal
# of an Unlocked policy) through one data action, in no built-in role narrower than
# Storage Blob Data Owner; this role holds that action alone. With it a writer could
# remove an Unlocked (governance) policy: for ransomware-proof copies use `object_lock =
# "compliance"` (Locked policies cannot be shortened by anyone), or set blob_locks =
# false and rely on the account's default policy.
resource "azurerm_role_definition" "blob_locks" {
  count       = var.blob_locks && var.immutability_days > 0 ? 1 : 0
  name        = "${var.name}-blob-immutability-writer-${var.storage_account_name}"
  scope       = azurerm_storage_account.target.id
  description = "Set and extend per-blob immutability policies (offsite's GFS-sized locks)."
  permissions {
    data_actions = [
      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/immutableStorage/runAsSuperUser/action",
    ]
  }
  assignable_scopes = [azurerm_storage_account.target.id]
}
