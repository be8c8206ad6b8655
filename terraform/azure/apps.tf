# The runner as a Container Apps job on a cron schedule (`offsite job run --once`), the
# archiver pool as an internal Container App (TCP ingress on 9443: the appliance speaks
# TLS itself), in one environment inside the operator's subnet, logs to Log Analytics.

resource "azurerm_log_analytics_workspace" "this" {
  name                = "${var.name}-logs"
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = 90
  tags                = var.tags
}

resource "azurerm_container_app_environment" "this" {
  name                           = "${var.name}-env"
  resource_group_name            = var.resource_group_name
  location                       = var.location
  log_analytics_workspace_id     = azurerm_log_analytics_workspace.this.id
  infrastructure_subnet_id       = var.infrastructure_subnet_id
  internal_load_balancer_enabled = true
  tags                           = var.tags
}

locals {
  secret_names = { for k, _ in var.secrets : k => lower(replace(k, "_", "-")) }
  base_env = [
    { name = "AZURE_STORAGE_ACCOUNT_NAME", value = azurerm_storage_account.target.name },
  ]
}

resource "azurerm_container_app_job" "runner" {
  name                         = "${var.name}-runner"
  resource_group_name          = var.resource_group_name
  location                     = var.location
  container_app_environment_id = azurerm_container_app_environment.this.id
  replica_timeout_in_seconds   = 86400
  replica_retry_limit          = 0

  schedule_trigger_config {
    cron_expression          = var.runner_cron
    parallelism              = 1
    replica_completion_count = 1
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.runner.id]
  }

  secret {
    name  = "jobs-file"
    value = var.jobs_file
  }

  dynamic "secret" {
    for_each = local.secret_names
    content {
      name  = secret.value
      value = var.secrets[secret.key]
    }
  }

  template {
    container {
      name    = "runner"
      image   = var.runner_image
      cpu     = var.cpu
      memory  = var.memory
      command = ["/bin/sh", "-c"]
      args    = ["printf '%s' \"$OFFSITE_JOBS\" > /tmp/jobs.toml && exec offsite job run --config /tmp/jobs.toml --once --log-format json"]
      env {
        name        = "OFFSITE_JOBS"
        secret_name = "jobs-file"
      }
      env {
        name  = "AZURE_CLIENT_ID"
        value = azurerm_user_assigned_identity.runner.client_id
      }
      dynamic "env" {
        for_each = local.base_env
        content {
          name  = env.value.name
          value = env.value.value
        }
      }
      dynamic "env" {
        for_each = local.secret_names
        content {
          name        = env.key
          secret_name = env.value
        }
      }
    }
  }
  tags = var.tags
}

# One Container App per appliance, each with one replica: an app's ingress balances
# connections over its replicas, and a task lives in the replica that took it, so
# several replicas behind one name would lose tasks (the runner refuses such an
# address). Each app's own name is one appliance in [job.archivers] urls.
resource "azurerm_container_app" "archiver" {
  count                        = var.archiver_image == null ? 0 : var.archiver_replicas
  name                         = "${var.name}-archiver-${count.index}"
  resource_group_name          = var.resource_group_name
  container_app_environment_id = azurerm_container_app_environment.this.id
  revision_mode                = "Single"

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.archiver.id]
  }

  secret {
    name  = "archiver-config"
    value = var.archiver_config
  }

  dynamic "secret" {
    for_each = local.secret_names
    content {
      name  = secret.value
      value = var.secrets[secret.key]
    }
  }

  ingress {
    external_enabled = false
    target_port      = 9443
    exposed_port     = 9443
    transport        = "tcp"
    traffic_weight {
      latest_revision = true
      percentage      = 100
    }
  }

  template {
    min_replicas = 1
    max_replicas = 1
    container {
      name    = "archiver"
      image   = var.archiver_image
      cpu     = var.cpu
      memory  = var.memory
      command = ["/bin/sh", "-c"]
      # The config names /tmp/tls.crt and /tmp/tls.key; certificate and key arrive as
      # ARCHIVER_TLS_CERT and ARCHIVER_TLS_KEY in `secrets`.
      args = ["printf '%s' \"$OFFSITE_ARCHIVER_CONFIG\" > /tmp/archiver.toml && printf '%s' \"$ARCHIVER_TLS_CERT\" > /tmp/tls.crt && printf '%s' \"$ARCHIVER_TLS_KEY\" > /tmp/tls.key && exec offsite-archiver serve --config /tmp/archiver.toml --log-format json"]
      env {
        name        = "OFFSITE_ARCHIVER_CONFIG"
        secret_name = "archiver-config"
      }
      env {
        name  = "AZURE_CLIENT_ID"
        value = azurerm_user_assigned_identity.archiver.client_id
      }
      dynamic "env" {
        for_each = local.base_env
        content {
          name  = env.value.name
          value = env.value.value
        }
      }
      dynamic "env" {
        for_each = local.secret_names
        content {
          name        = env.key
          secret_name = env.value
        }
      }
      liveness_probe {
        transport = "TCP"
        port      = 9443
      }
      readiness_probe {
        transport = "TCP"
        port      = 9443
      }
    }
  }
  tags = var.tags
}
