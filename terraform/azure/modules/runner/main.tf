# The job runner on Azure Container Apps: its identity (modules/access: no write on the
# sources beyond locks/), its secrets as Key Vault references (their values never pass
# through Terraform or its state), the jobs file and the appliances' CA as app secrets,
# and either a Container Apps job on cron or a continuous Container App (service.tf).
# Alerts in alerts.tf.

module "access" {
  source                       = "../access"
  name                         = "${var.name}-runner"
  role                         = "runner"
  resource_group_name          = var.resource_group_name
  location                     = var.location
  source_container_ids         = var.source_container_ids
  target_container_id          = var.target_container_id
  blob_locks                   = var.blob_locks
  blob_lock_role_definition_id = var.blob_lock_role_definition_id
  aks_workload_identity        = var.aks_workload_identity
  aks_oidc_issuer_url          = var.aks_oidc_issuer_url
  aks_service_account          = "offsite:offsite-runner"
  tags                         = var.tags
}

resource "azurerm_role_assignment" "key_vault" {
  scope                = var.key_vault_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = module.access.principal_id
}

locals {
  service = var.mode == "service"
  # Key Vault secrets by app-secret name (lower case, dashes).
  vault = { for k, v in var.key_vault_secret_ids : k => { name = lower(replace(k, "_", "-")), id = v } }
  files = "umask 077 && printf '%s' \"$OFFSITE_JOBS\" > /tmp/jobs.toml && printf '%s' \"$OFFSITE_ARCHIVER_CA\" > /tmp/archiver-ca.pem"
  ca    = coalesce(var.archiver_ca_pem, "# no appliances: no CA\n")
}

resource "azurerm_container_app_job" "runner" {
  count                        = local.service ? 0 : 1
  name                         = "${var.name}-runner"
  resource_group_name          = var.resource_group_name
  location                     = var.location
  container_app_environment_id = var.container_app_environment_id
  # A night's run never takes the next night's slot.
  replica_timeout_in_seconds = 79200
  replica_retry_limit        = 0

  schedule_trigger_config {
    cron_expression          = var.cron
    parallelism              = 1
    replica_completion_count = 1
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [module.access.identity_id]
  }

  secret {
    name  = "jobs-file"
    value = var.jobs_toml
  }

  secret {
    name  = "archiver-ca"
    value = local.ca
  }

  dynamic "secret" {
    for_each = local.vault
    content {
      name                = secret.value.name
      identity            = module.access.identity_id
      key_vault_secret_id = secret.value.id
    }
  }

  template {
    container {
      name    = "runner"
      image   = var.image
      cpu     = var.cpu
      memory  = var.memory
      command = ["/bin/sh", "-c"]
      args    = ["${local.files} && exec offsite job run --config /tmp/jobs.toml --once --log-format json"]
      env {
        name        = "OFFSITE_JOBS"
        secret_name = "jobs-file"
      }
      env {
        name        = "OFFSITE_ARCHIVER_CA"
        secret_name = "archiver-ca"
      }
      # object_store logs in with this user-assigned identity (IDENTITY_ENDPOINT).
      env {
        name  = "AZURE_CLIENT_ID"
        value = module.access.client_id
      }
      dynamic "env" {
        for_each = local.vault
        content {
          name        = env.key
          secret_name = env.value.name
        }
      }
    }
  }
  tags = var.tags

  # The identity reads the Key Vault secrets when the job is made.
  depends_on = [azurerm_role_assignment.key_vault]
}
