# Everything in one region and one VPC: the target bucket under object lock, the VPC
# endpoints the tasks need, two appliances next to the source bucket, and the runner
# every night at 02:00 Europe/Berlin. `terraform init && terraform apply`; docs/DEPLOY.md
# walks through the secrets, images and the first run.

terraform {
  required_version = ">= 1.5, < 2.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 7.0"
    }
    tls = {
      source  = "hashicorp/tls"
      version = ">= 4.0, < 5.0"
    }
  }
}

provider "aws" {
  region = "eu-central-1"
}

locals {
  vpc_id          = "vpc-0123456789abcdef0"
  subnet_ids      = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
  subnet_cidrs    = ["10.0.1.0/24", "10.0.2.0/24"]
  route_table_ids = ["rtb-0123456789abcdef0"]
  source_buckets  = ["arn:aws:s3:::example-backups"]
}

# The secrets, empty: put their values in once (docs/DEPLOY.md), e.g.
#   aws secretsmanager put-secret-value --secret-id offsite/source-password --secret-string file://source.pw
# Terraform never sees them. Each goes only to the tasks that read it.
resource "aws_kms_key" "secrets" {
  # checkov:skip=CKV2_AWS_64:The key keeps AWS's default key policy: the account's IAM policies decide who uses it.
  description         = "offsite: passwords and token"
  enable_key_rotation = true
}

resource "aws_secretsmanager_secret" "this" {
  # checkov:skip=CKV2_AWS_57:Repository passwords are not rotated: a new password is a new key slot (offsite key add).
  for_each                = toset(["source-password", "target-password", "archiver-token"])
  name                    = "offsite/${each.key}"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = 30
}

locals {
  secret = { for k, s in aws_secretsmanager_secret.this : k => s.arn }
}

module "target" {
  source             = "../../modules/target"
  bucket_name        = "example-offsite-copies"
  lock_mode          = "GOVERNANCE"
  max_retention_days = 2700
  key_admin_arns     = ["arn:aws:iam::111122223333:role/security-admin"]
}

module "endpoints" {
  source          = "../../modules/endpoints"
  vpc_id          = local.vpc_id
  subnet_ids      = local.subnet_ids
  route_table_ids = local.route_table_ids
}

module "archiver" {
  source                       = "../../modules/archiver"
  image                        = "111122223333.dkr.ecr.eu-central-1.amazonaws.com/offsite-archiver@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  archiver_toml                = file("${path.module}/archiver.toml")
  source_bucket_arns           = local.source_buckets
  target_bucket_arn            = module.target.bucket_arn
  target_prefix                = "jobs/"
  target_kms_key_arn           = module.target.kms_key_arn
  vpc_id                       = local.vpc_id
  subnet_ids                   = local.subnet_ids
  runner_cidr_blocks           = local.subnet_cidrs
  https_egress_cidr_blocks     = [module.endpoints.vpc_cidr_block]
  https_egress_prefix_list_ids = [module.endpoints.s3_prefix_list_id]
  secret_kms_key_arns          = [aws_kms_key.secrets.arn]
  secret_arns = {
    OFFSITE_SOURCE_PASSWORD = local.secret["source-password"]
    OFFSITE_TARGET_PASSWORD = local.secret["target-password"]
  }
}

module "runner" {
  source                       = "../../modules/runner"
  image                        = "111122223333.dkr.ecr.eu-central-1.amazonaws.com/offsite@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  jobs_toml                    = file("${path.module}/jobs.toml")
  archiver_ca_pem              = module.archiver.ca_pem
  source_bucket_arns           = local.source_buckets
  target_bucket_arn            = module.target.bucket_arn
  target_prefix                = "jobs/"
  target_kms_key_arn           = module.target.kms_key_arn
  vpc_id                       = local.vpc_id
  subnet_ids                   = local.subnet_ids
  archiver_cidr_blocks         = local.subnet_cidrs
  https_egress_cidr_blocks     = [module.endpoints.vpc_cidr_block]
  https_egress_prefix_list_ids = [module.endpoints.s3_prefix_list_id]
  schedule                     = "cron(0 2 * * ? *)"
  schedule_timezone            = "Europe/Berlin"
  secret_kms_key_arns          = [aws_kms_key.secrets.arn]
  secret_arns = {
    OFFSITE_SOURCE_PASSWORD = local.secret["source-password"]
    OFFSITE_TARGET_PASSWORD = local.secret["target-password"]
    OFFSITE_ARCHIVER_TOKEN  = local.secret["archiver-token"]
  }
}

output "target_url" {
  description = "The bucket as offsite names it."
  value       = module.target.target_url
}

output "archiver_url" {
  description = "The jobs file's [job.archivers] urls."
  value       = module.archiver.archiver_url
}

output "alarm_topic_arn" {
  description = "Subscribe to it: every run that did not end in success."
  value       = module.runner.alarm_topic_arn
}
