# A target storage account with version-level immutability, the runner every night at
# 02:00 UTC and two archiver replicas, in an existing resource group and subnet.

provider "azurerm" {
  features {}
}

module "offsite" {
  source = "../.."

  name                     = "offsite"
  resource_group_name      = "rg-offsite"
  location                 = "westeurope"
  storage_account_name     = "exampleoffsitecopies"
  container_name           = "offsite"
  immutability_days        = 30
  source_container_ids     = ["/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-backups/providers/Microsoft.Storage/storageAccounts/examplebackups/blobServices/default/containers/backups"]
  infrastructure_subnet_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/apps"
  runner_image             = "ghcr.io/example/offsite:latest"
  archiver_image           = "ghcr.io/example/offsite-archiver:latest"
  jobs_file                = file("${path.module}/jobs.toml")
  archiver_config          = file("${path.module}/archiver.toml")
  secrets = {
    OFFSITE_SOURCE_PASSWORD = var.source_password
    OFFSITE_TARGET_PASSWORD = var.target_password
    OFFSITE_ARCHIVER_TOKEN  = var.archiver_token
    ARCHIVER_TLS_CERT       = var.archiver_tls_cert
    ARCHIVER_TLS_KEY        = var.archiver_tls_key
  }
  tags = { project = "offsite" }
}

variable "source_password" {
  type      = string
  sensitive = true
}

variable "target_password" {
  type      = string
  sensitive = true
}

variable "archiver_token" {
  type      = string
  sensitive = true
}

variable "archiver_tls_cert" {
  type      = string
  sensitive = true
}

variable "archiver_tls_key" {
  type      = string
  sensitive = true
}

output "target_url" {
  value = module.offsite.target_url
}
