# The source backups are in East US in the backup subscription; the copies go to West
# Europe in a separate vault subscription. The appliances run next to the source (in
# East US, in the backup subscription: a provider for it), reading it at in-region
# prices and sending only packed, compressed bytes across; the target and the runner in
# West Europe. The two VNets are peered (not shown); the runner's VNet resolves the
# appliances' environment through a private DNS zone linked to it.

terraform {
  required_version = ">= 1.5, < 2.0"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.9, < 5.0"
    }
    tls = {
      source  = "hashicorp/tls"
      version = ">= 4.0, < 5.0"
    }
  }
}

provider "azurerm" {
  features {}
  subscription_id     = "11111111-1111-1111-1111-111111111111"
  storage_use_azuread = true
}

provider "azurerm" {
  alias = "backup"
  features {}
  subscription_id     = "22222222-2222-2222-2222-222222222222"
  storage_use_azuread = true
}

locals {
  vault_sub  = "/subscriptions/11111111-1111-1111-1111-111111111111"
  backup_sub = "/subscriptions/22222222-2222-2222-2222-222222222222"
  sources    = ["${local.backup_sub}/resourceGroups/rg-backups/providers/Microsoft.Storage/storageAccounts/examplebackups/blobServices/default/containers/backups"]
}

module "target" {
  source               = "../../modules/target"
  resource_group_name  = "rg-offsite"
  location             = "westeurope"
  storage_account_name = "exampleoffsitecopies"
  container_name       = "offsite"
  replication          = "LRS"
  immutability_days    = 30
}

module "runner_environment" {
  source                   = "../../modules/environment"
  name                     = "offsite-runner"
  resource_group_name      = "rg-offsite"
  location                 = "westeurope"
  infrastructure_subnet_id = "${local.vault_sub}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-we/subnets/apps"
}

module "archiver_environment" {
  source                   = "../../modules/environment"
  providers                = { azurerm = azurerm.backup }
  name                     = "offsite-archiver"
  resource_group_name      = "rg-offsite-eastus"
  location                 = "eastus"
  infrastructure_subnet_id = "${local.backup_sub}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-eus/subnets/apps"
  linked_vnet_ids          = ["${local.vault_sub}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-we"]
}

module "archiver" {
  source                       = "../../modules/archiver"
  providers                    = { azurerm = azurerm.backup }
  resource_group_name          = "rg-offsite-eastus"
  location                     = "eastus"
  container_app_environment_id = module.archiver_environment.id
  environment_default_domain   = module.archiver_environment.default_domain
  image                        = "exampleregistry.azurecr.io/offsite-archiver@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  archiver_toml                = file("${path.module}/archiver.toml")
  source_container_ids         = local.sources
  target_container_id          = module.target.container_id
  blob_lock_role_definition_id = module.target.blob_lock_role_definition_id
  key_vault_id                 = "${local.backup_sub}/resourceGroups/rg-offsite-eastus/providers/Microsoft.KeyVault/vaults/offsite-eus-kv"
  key_vault_secret_ids = {
    OFFSITE_SOURCE_PASSWORD = "https://offsite-eus-kv.vault.azure.net/secrets/source-password"
    OFFSITE_TARGET_PASSWORD = "https://offsite-eus-kv.vault.azure.net/secrets/target-password"
  }
}

module "runner" {
  source                       = "../../modules/runner"
  resource_group_name          = "rg-offsite"
  location                     = "westeurope"
  container_app_environment_id = module.runner_environment.id
  log_analytics_workspace_id   = module.runner_environment.log_analytics_workspace_id
  image                        = "exampleregistry.azurecr.io/offsite@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  jobs_toml                    = replace(file("${path.module}/jobs.toml"), "environment-domain", module.archiver_environment.default_domain)
  archiver_ca_pem              = module.archiver.ca_pem
  source_container_ids         = local.sources
  target_container_id          = module.target.container_id
  blob_lock_role_definition_id = module.target.blob_lock_role_definition_id
  mode                         = "service"
  alert_emails                 = ["backup-team@example.com"]
  key_vault_id                 = "${local.vault_sub}/resourceGroups/rg-offsite/providers/Microsoft.KeyVault/vaults/offsite-kv"
  key_vault_secret_ids = {
    OFFSITE_SOURCE_PASSWORD = "https://offsite-kv.vault.azure.net/secrets/source-password"
    OFFSITE_TARGET_PASSWORD = "https://offsite-kv.vault.azure.net/secrets/target-password"
    OFFSITE_ARCHIVER_TOKEN  = "https://offsite-kv.vault.azure.net/secrets/archiver-token"
  }
}

output "archiver_urls" {
  description = "The appliances, one URL each (what jobs.toml's urls become)."
  value       = module.archiver.archiver_urls
}

output "metrics_url" {
  description = "Where a Prometheus in the runner's VNet scrapes it."
  value       = module.runner.metrics_url
}
