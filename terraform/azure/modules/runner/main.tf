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
  key_vault_access             = true
  key_vault_id                 = var.key_vault_id
  aks_service_account          = "offsite:offsite-runner"
  tags                         = var.tags
}

locals {
  service = var.mode == "service"
  # Key Vault secrets by app-secret name (lower case, dashes).
  vault = { for k, v in var.key_vault_secret_ids : k => { name = lower(replace(k, "_", "-")), id = v } }
  files = "umask 077 && printf '%s' \"$OFFSITE_JOBS\" > /tmp/jobs.toml && printf '%s' \"$OFFSITE_ARCHIVER_CA\" > /tmp/archiver-ca.pem"
  ca    = coalesce(var.archiver_ca_pem, "# no appliances: no CA\n")
  # The app secrets and environment of the job and of the continuous app alike: the
  # files as secrets of their own, the rest as Key Vault references.
  secrets = concat(
    [{ name = "jobs-file", value = var.jobs_toml, vault_id = null }, { name = "archiver-ca", value = local.ca, vault_id = null }],
    [for v in values(local.vault) : { name = v.name, value = null, vault_id = v.id }],
  )
  env = concat(
    [
      { name = "OFFSITE_JOBS", secret = "jobs-file", value = null },
      { name = "OFFSITE_ARCHIVER_CA", secret = "archiver-ca", value = null },
      # object_store logs in with this user-assigned identity (IDENTITY_ENDPOINT).
      { name = "AZURE_CLIENT_ID", secret = null, value = module.access.client_id },
    ],
    [for k, v in local.vault : { name = k, secret = v.name, value = null }],
  )
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

  dynamic "secret" {
    for_each = local.secrets
    content {
      name                = secret.value.name
      value               = secret.value.value
      identity            = secret.value.vault_id == null ? null : module.access.identity_id
      key_vault_secret_id = secret.value.vault_id
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
      dynamic "env" {
        for_each = local.env
        content {
          name        = env.value.name
          secret_name = env.value.secret
          value       = env.value.value
        }
      }
    }
  }
  tags = var.tags

  # The identity reads the Key Vault secrets when the job is made (module.access
  # grants that).
  depends_on = [module.access]
}
