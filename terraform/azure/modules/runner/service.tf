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

  dynamic "secret" {
    for_each = local.secrets
    content {
      name                = secret.value.name
      value               = secret.value.value
      identity            = secret.value.vault_id == null ? null : module.access.identity_id
      key_vault_secret_id = secret.value.vault_id
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
      dynamic "env" {
        for_each = local.env
        content {
          name        = env.value.name
          secret_name = env.value.secret
          value       = env.value.value
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

  depends_on = [module.access]
}
