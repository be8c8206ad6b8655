# mode = "service": `offsite job run` continuously in one Container App of one replica
# (a second runner of the same jobs would only find the first one's job locks), /metrics
# and /health on :9184 behind internal HTTP ingress (a Prometheus in the VNet scrapes
# https://NAME-runner.DOMAIN/metrics), probed on /health.

resource "azurerm_container_app" "runner" {
  count                        = local.service ? 1 : 0
  name                         = "${var.name}-runner"
  resource_group_name          = var.resource_group_name
  container_app_environment_id = var.container_app_environment_id
  revision_mode                = "Single"

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

  ingress {
    external_enabled = false
    target_port      = 9184
    transport        = "http"
    traffic_weight {
      latest_revision = true
      percentage      = 100
    }
  }

  template {
    min_replicas = 1
    max_replicas = 1
    container {
      name    = "runner"
      image   = var.image
      cpu     = var.cpu
      memory  = var.memory
      command = ["/bin/sh", "-c"]
      args    = ["${local.files} && exec offsite job run --config /tmp/jobs.toml --metrics-listen 0.0.0.0:9184 --log-format json"]
      env {
        name        = "OFFSITE_JOBS"
        secret_name = "jobs-file"
      }
      env {
        name        = "OFFSITE_ARCHIVER_CA"
        secret_name = "archiver-ca"
      }
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
      liveness_probe {
        transport = "HTTP"
        port      = 9184
        path      = "/health"
      }
      readiness_probe {
        transport = "HTTP"
        port      = 9184
        path      = "/health"
      }
    }
  }
  tags = var.tags

  depends_on = [azurerm_role_assignment.key_vault]
}
