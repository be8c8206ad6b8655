# Everything in one region: the target account under version-level immutability, an
# internal Container Apps environment, two appliances, and the runner every night at
# 02:00 UTC, in an existing resource group, subnet and Key Vault (RBAC authorization)
# holding the passwords and the token. docs/DEPLOY.md walks through it.

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
  # The target account has no shared keys: the provider must use Entra ID for its
  # data plane (containers, management policy), or it gets 403 KeyBasedAuthenticationNotPermitted.
  storage_use_azuread = true
}

locals {
  rg       = "rg-offsite"
  location = "westeurope"
  sources  = ["/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-backups/providers/Microsoft.Storage/storageAccounts/examplebackups/blobServices/default/containers/backups"]
  subnet   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/apps"
  vault_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-offsite/providers/Microsoft.KeyVault/vaults/offsite-kv"
  secret   = "https://offsite-kv.vault.azure.net/secrets"
}

module "target" {
  source               = "../../modules/target"
  resource_group_name  = local.rg
  location             = local.location
  storage_account_name = "exampleoffsitecopies"
  container_name       = "offsite"
  replication          = "LRS"
  immutability_days    = 30
}

module "environment" {
  source                   = "../../modules/environment"
  name                     = "offsite"
  resource_group_name      = local.rg
  location                 = local.location
  infrastructure_subnet_id = local.subnet
}

module "archiver" {
  source                       = "../../modules/archiver"
  resource_group_name          = local.rg
  location                     = local.location
  container_app_environment_id = module.environment.id
  environment_default_domain   = module.environment.default_domain
  image                        = "exampleregistry.azurecr.io/offsite-archiver@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  archiver_toml                = file("${path.module}/archiver.toml")
  source_container_ids         = local.sources
  target_container_id          = module.target.container_id
  blob_lock_role_definition_id = module.target.blob_lock_role_definition_id
  key_vault_id                 = local.vault_id
  key_vault_secret_ids = {
    OFFSITE_SOURCE_PASSWORD = "${local.secret}/source-password"
    OFFSITE_TARGET_PASSWORD = "${local.secret}/target-password"
  }
}

module "runner" {
  source                       = "../../modules/runner"
  resource_group_name          = local.rg
  location                     = local.location
  container_app_environment_id = module.environment.id
  log_analytics_workspace_id   = module.environment.log_analytics_workspace_id
  image                        = "exampleregistry.azurecr.io/offsite@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  jobs_toml                    = file("${path.module}/jobs.toml")
  archiver_ca_pem              = module.archiver.ca_pem
  source_container_ids         = local.sources
  target_container_id          = module.target.container_id
  blob_lock_role_definition_id = module.target.blob_lock_role_definition_id
  cron                         = "0 2 * * *"
  alert_emails                 = ["backup-team@example.com"]
  key_vault_id                 = local.vault_id
  key_vault_secret_ids = {
    OFFSITE_SOURCE_PASSWORD = "${local.secret}/source-password"
    OFFSITE_TARGET_PASSWORD = "${local.secret}/target-password"
    OFFSITE_ARCHIVER_TOKEN  = "${local.secret}/archiver-token"
  }
}

output "target_url" {
  description = "The account and container as offsite names them."
  value       = module.target.target_url
}

output "archiver_urls" {
  description = "The appliances, one URL each."
  value       = module.archiver.archiver_urls
}
