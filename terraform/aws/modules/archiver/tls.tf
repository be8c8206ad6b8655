# The appliances' certificate: yours (tls_cert_pem, tls_key_secret_arn, tls_ca_pem), or
# one made here — a CA of this installation and a certificate for archiver.NAME.internal
# it signs, whose private key goes to a secret only the appliances' execution role reads.
# The runner gets the CA (output ca_pem → the runner module's archiver_ca_pem), since no
# public CA issues certificates for a private name.

locals {
  make_tls = var.make_certificate
  dns_name = "archiver.${var.name}.internal"
}

resource "tls_private_key" "ca" {
  count       = local.make_tls ? 1 : 0
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "ca" {
  count             = local.make_tls ? 1 : 0
  private_key_pem   = tls_private_key.ca[0].private_key_pem
  is_ca_certificate = true
  subject {
    common_name  = "${var.name} archiver CA"
    organization = "offsite"
  }
  validity_period_hours = 87600
  allowed_uses          = ["cert_signing", "crl_signing"]
}

resource "tls_private_key" "server" {
  count       = local.make_tls ? 1 : 0
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "server" {
  count           = local.make_tls ? 1 : 0
  private_key_pem = tls_private_key.server[0].private_key_pem
  dns_names       = [local.dns_name]
  subject {
    common_name = local.dns_name
  }
}

resource "tls_locally_signed_cert" "server" {
  count                 = local.make_tls ? 1 : 0
  cert_request_pem      = tls_cert_request.server[0].cert_request_pem
  ca_private_key_pem    = tls_private_key.ca[0].private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca[0].cert_pem
  validity_period_hours = 17520
  early_renewal_hours   = 2160
  allowed_uses          = ["digital_signature", "key_encipherment", "server_auth"]
}

resource "aws_secretsmanager_secret" "tls_key" {
  # checkov:skip=CKV2_AWS_57:The key is re-issued by Terraform (early_renewal_hours), not rotated by a Lambda.
  count                   = local.make_tls ? 1 : 0
  name                    = "${var.name}/archiver-tls-key"
  description             = "offsite appliances: the private key of ${local.dns_name}'s certificate"
  kms_key_id              = module.tasks.key_arn
  recovery_window_in_days = 7
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "tls_key" {
  count         = local.make_tls ? 1 : 0
  secret_id     = aws_secretsmanager_secret.tls_key[0].id
  secret_string = tls_private_key.server[0].private_key_pem
}

locals {
  tls_cert_pem       = local.make_tls ? "${tls_locally_signed_cert.server[0].cert_pem}${tls_self_signed_cert.ca[0].cert_pem}" : var.tls_cert_pem
  tls_key_secret_arn = local.make_tls ? aws_secretsmanager_secret.tls_key[0].arn : var.tls_key_secret_arn
  ca_pem             = local.make_tls ? tls_self_signed_cert.ca[0].cert_pem : var.tls_ca_pem
}
