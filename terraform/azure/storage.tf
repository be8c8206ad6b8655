# The target: a StorageV2 account with blob versioning and version-level immutability
# (each version immutable for `immutability_days` after its write), no public access,
# no shared keys (the apps log in with their managed identity), TLS 1.2, and a container.

resource "azurerm_storage_account" "target" {
  # checkov:skip=CKV_AZURE_206:Replication is the operator's choice of price (LRS/ZRS/GRS); the account is itself the off-site copy.
  # checkov:skip=CKV2_AZURE_1:Customer-managed keys are the operator's choice; Microsoft-managed encryption is always on.
  # checkov:skip=CKV2_AZURE_33:A private endpoint needs the operator's VNet and DNS zone; access is by Entra ID only (no shared keys, no public blobs).
  # checkov:skip=CKV_AZURE_59:Public network access stays on so a runner outside the VNet (or another cloud) can write; keys are off and every request needs an Entra ID token.
  # checkov:skip=CKV_AZURE_33:Queue logging: offsite uses no queues.
  name                            = var.storage_account_name
  resource_group_name             = var.resource_group_name
  location                        = var.location
  account_tier                    = "Standard"
  account_replication_type        = "ZRS"
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
}

resource "azurerm_storage_container" "target" {
  # checkov:skip=CKV2_AZURE_21:Blob read logging is configured per account by the operator's diagnostic settings.
  name                  = var.container_name
  storage_account_id    = azurerm_storage_account.target.id
  container_access_type = "private"
}

# Multipart uploads (uncommitted blocks) a killed copy leaves are discarded by Azure
# after 7 days on its own; versions hidden by forget and prune go after their
# immutability ends.
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
        delete_after_days_since_creation = var.immutability_days + 1
      }
    }
  }
}
