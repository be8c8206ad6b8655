# A target bucket under object lock, the archiver pool next to the source bucket and
# the runner every night at 02:00 UTC. `terraform init && terraform apply`, then put the
# jobs file into the SSM parameter (see ../../README.md).

provider "aws" {
  region = "eu-central-1"
}

resource "aws_kms_key" "config" {
  # checkov:skip=CKV2_AWS_64:The example's key keeps AWS's default key policy: the account's IAM policies decide who uses it.
  description         = "offsite: jobs file and archiver config"
  enable_key_rotation = true
}

resource "aws_ssm_parameter" "jobs" {
  name   = "/offsite/jobs.toml"
  type   = "SecureString"
  key_id = aws_kms_key.config.arn
  value  = file("${path.module}/jobs.toml")
}

resource "aws_ssm_parameter" "archiver" {
  name   = "/offsite/archiver.toml"
  type   = "SecureString"
  key_id = aws_kms_key.config.arn
  value  = file("${path.module}/archiver.toml")
}

module "offsite" {
  source = "../.."

  name                              = "offsite"
  target_bucket_name                = "example-offsite-copies"
  source_bucket_arns                = ["arn:aws:s3:::example-backups"]
  vpc_id                            = "vpc-0123456789abcdef0"
  subnet_ids                        = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
  runner_image                      = "ghcr.io/example/offsite:latest"
  archiver_image                    = "ghcr.io/example/offsite-archiver:latest"
  jobs_file_ssm_parameter_arn       = aws_ssm_parameter.jobs.arn
  archiver_config_ssm_parameter_arn = aws_ssm_parameter.archiver.arn
  secret_arns = {
    OFFSITE_SOURCE_PASSWORD = "arn:aws:secretsmanager:eu-central-1:111122223333:secret:offsite/source"
    OFFSITE_TARGET_PASSWORD = "arn:aws:secretsmanager:eu-central-1:111122223333:secret:offsite/target"
    OFFSITE_ARCHIVER_TOKEN  = "arn:aws:secretsmanager:eu-central-1:111122223333:secret:offsite/token"
    ARCHIVER_TLS_CERT       = "arn:aws:secretsmanager:eu-central-1:111122223333:secret:offsite/tls-cert"
    ARCHIVER_TLS_KEY        = "arn:aws:secretsmanager:eu-central-1:111122223333:secret:offsite/tls-key"
  }
  tags = { project = "offsite" }
}

output "target_url" {
  value = module.offsite.target_url
}

output "archiver_url" {
  value = module.offsite.archiver_url
}
