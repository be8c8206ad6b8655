# The archiver pool next to the source: its identity (modules/access: read the sources,
# write there only locks/, write the target but delete nothing), a CA of this
# installation and one certificate naming every appliance (their keys are in the
# Terraform state: keep it encrypted; the runner gets the CA, output ca_pem), and one
# Container App of one replica per appliance. Container Apps' TCP ingress needs a port
# of its own per app in an environment: appliance I listens on 9443 + I.

module "access" {
  source                       = "../access"
  name                         = "${var.name}-archiver"
  role                         = "archiver"
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
  aks_service_account          = "offsite:offsite-archiver"
  tags                         = var.tags
}

locals {
  apps  = [for i in range(var.appliances) : { name = "${var.name}-archiver-${i}", port = 9443 + i }]
  fqdns = [for a in local.apps : "${a.name}.${var.environment_default_domain}"]
  vault = { for k, v in var.key_vault_secret_ids : k => { name = lower(replace(k, "_", "-")), id = v } }
}

resource "tls_private_key" "ca" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "ca" {
  private_key_pem   = tls_private_key.ca.private_key_pem
  is_ca_certificate = true
  subject {
    common_name  = "${var.name} archiver CA"
    organization = "offsite"
  }
  validity_period_hours = 87600
  allowed_uses          = ["cert_signing", "crl_signing"]
}

resource "tls_private_key" "server" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "server" {
  private_key_pem = tls_private_key.server.private_key_pem
  dns_names       = concat(local.fqdns, [for a in local.apps : a.name])
  subject {
    common_name = "${var.name}-archiver"
  }
}

resource "tls_locally_signed_cert" "server" {
  cert_request_pem      = tls_cert_request.server.cert_request_pem
  ca_private_key_pem    = tls_private_key.ca.private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca.cert_pem
  validity_period_hours = 17520
  early_renewal_hours   = 2160
  allowed_uses          = ["digital_signature", "key_encipherment", "server_auth"]
}

resource "azurerm_container_app" "archiver" {
  count                        = var.appliances
  name                         = local.apps[count.index].name
  resource_group_name          = var.resource_group_name
  container_app_environment_id = var.container_app_environment_id
  revision_mode                = "Single"

  identity {
    type         = "UserAssigned"
    identity_ids = [module.access.identity_id]
  }

  # The configuration with this appliance's port.
  secret {
    name  = "archiver-config"
    value = replace(var.archiver_toml, "/listen = \"[^\"]*\"/", "listen = \"0.0.0.0:${local.apps[count.index].port}\"")
  }

  secret {
    name  = "tls-cert"
    value = "${tls_locally_signed_cert.server.cert_pem}${tls_self_signed_cert.ca.cert_pem}"
  }

  secret {
    name  = "tls-key"
    value = tls_private_key.server.private_key_pem
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
    target_port      = local.apps[count.index].port
    exposed_port     = local.apps[count.index].port
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
      image   = var.image
      cpu     = var.cpu
      memory  = var.memory
      command = ["/bin/sh", "-c"]
      args    = ["umask 077 && printf '%s' \"$OFFSITE_ARCHIVER_CONFIG_TEXT\" > /tmp/archiver.toml && printf '%s' \"$ARCHIVER_TLS_CERT\" > /tmp/tls.crt && printf '%s' \"$ARCHIVER_TLS_KEY\" > /tmp/tls.key && exec offsite-archiver serve --config /tmp/archiver.toml --log-format json"]
      env {
        name        = "OFFSITE_ARCHIVER_CONFIG_TEXT"
        secret_name = "archiver-config"
      }
      env {
        name        = "ARCHIVER_TLS_CERT"
        secret_name = "tls-cert"
      }
      env {
        name        = "ARCHIVER_TLS_KEY"
        secret_name = "tls-key"
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
      # Ready when /v1/ready answers (no token needed; 503 while it drains, so the
      # runner's next look finds it gone); alive while its port is open.
      readiness_probe {
        transport = "HTTPS"
        port      = local.apps[count.index].port
        path      = "/v1/ready"
      }
      liveness_probe {
        transport = "TCP"
        port      = local.apps[count.index].port
      }
    }
  }
  tags = var.tags

  depends_on = [module.access]
}
