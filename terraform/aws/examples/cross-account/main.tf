# The backups live in the backup account (222233334444), the copies in a separate vault
# account (111122223333) that the backup account's administrators cannot touch: the
# point of an off-site copy. The appliances run in the backup account next to the
# source (a provider that assumes a role there) and write into the vault's bucket,
# whose policy and key admit their role; the runner runs in the vault account. The
# source bucket's policy must admit the runner: add source_bucket_policy_statements
# (output) to it in the backup account.

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

provider "aws" {
  alias  = "backup_account"
  region = "eu-central-1"
  assume_role {
    role_arn = "arn:aws:iam::222233334444:role/offsite-deployer"
  }
}

locals {
  vault = {
    vpc_id          = "vpc-0aaaaaaaaaaaaaaaa"
    subnet_ids      = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
    subnet_cidrs    = ["10.10.1.0/24", "10.10.2.0/24"]
    route_table_ids = ["rtb-0aaaaaaaaaaaaaaaa"]
  }
  backup = {
    vpc_id          = "vpc-0bbbbbbbbbbbbbbbb"
    subnet_ids      = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]
    subnet_cidrs    = ["10.20.1.0/24", "10.20.2.0/24"]
    route_table_ids = ["rtb-0bbbbbbbbbbbbbbbb"]
  }
  source_buckets = ["arn:aws:s3:::example-backups"]
}

resource "aws_kms_key" "vault_secrets" {
  # checkov:skip=CKV2_AWS_64:The key keeps AWS's default key policy: the account's IAM policies decide who uses it.
  description         = "offsite: the runner's passwords and token"
  enable_key_rotation = true
}

resource "aws_secretsmanager_secret" "runner" {
  # checkov:skip=CKV2_AWS_57:Repository passwords are not rotated: a new password is a new key slot (offsite key add).
  for_each                = toset(["source-password", "target-password", "archiver-token"])
  name                    = "offsite/${each.key}"
  kms_key_id              = aws_kms_key.vault_secrets.arn
  recovery_window_in_days = 30
}

resource "aws_kms_key" "backup_secrets" {
  # checkov:skip=CKV2_AWS_64:The key keeps AWS's default key policy: the account's IAM policies decide who uses it.
  provider            = aws.backup_account
  description         = "offsite: the appliances' passwords"
  enable_key_rotation = true
}

resource "aws_secretsmanager_secret" "archiver" {
  # checkov:skip=CKV2_AWS_57:Repository passwords are not rotated: a new password is a new key slot (offsite key add).
  provider                = aws.backup_account
  for_each                = toset(["source-password", "target-password"])
  name                    = "offsite/${each.key}"
  kms_key_id              = aws_kms_key.backup_secrets.arn
  recovery_window_in_days = 30
}

module "target" {
  source             = "../../modules/target"
  bucket_name        = "example-offsite-copies"
  lock_mode          = "COMPLIANCE"
  max_retention_days = 2700
  key_admin_arns     = ["arn:aws:iam::111122223333:role/security-admin"]
  # The appliances' role, from the backup account.
  writer_role_arns = [module.archiver.role_arn]
  key_user_arns    = [module.archiver.role_arn]
}

module "vault_endpoints" {
  source          = "../../modules/endpoints"
  vpc_id          = local.vault.vpc_id
  subnet_ids      = local.vault.subnet_ids
  route_table_ids = local.vault.route_table_ids
}

module "backup_endpoints" {
  source          = "../../modules/endpoints"
  providers       = { aws = aws.backup_account }
  vpc_id          = local.backup.vpc_id
  subnet_ids      = local.backup.subnet_ids
  route_table_ids = local.backup.route_table_ids
}

module "archiver" {
  source             = "../../modules/archiver"
  providers          = { aws = aws.backup_account }
  image              = "111122223333.dkr.ecr.eu-central-1.amazonaws.com/offsite-archiver@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  archiver_toml      = file("${path.module}/archiver.toml")
  source_bucket_arns = local.source_buckets
  # Computed from the name, not module.target: the target's policy names this role.
  target_bucket_arn            = "arn:aws:s3:::example-offsite-copies"
  target_prefix                = "jobs/"
  target_kms_key_arn           = module.target.kms_key_arn
  lock_mode                    = "COMPLIANCE"
  vpc_id                       = local.backup.vpc_id
  subnet_ids                   = local.backup.subnet_ids
  runner_cidr_blocks           = local.vault.subnet_cidrs
  https_egress_cidr_blocks     = [module.backup_endpoints.vpc_cidr_block]
  https_egress_prefix_list_ids = [module.backup_endpoints.s3_prefix_list_id]
  secret_kms_key_arns          = [aws_kms_key.backup_secrets.arn]
  secret_arns = {
    OFFSITE_SOURCE_PASSWORD = aws_secretsmanager_secret.archiver["source-password"].arn
    OFFSITE_TARGET_PASSWORD = aws_secretsmanager_secret.archiver["target-password"].arn
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
  lock_mode                    = "COMPLIANCE"
  vpc_id                       = local.vault.vpc_id
  subnet_ids                   = local.vault.subnet_ids
  archiver_cidr_blocks         = local.backup.subnet_cidrs
  https_egress_cidr_blocks     = [module.vault_endpoints.vpc_cidr_block]
  https_egress_prefix_list_ids = [module.vault_endpoints.s3_prefix_list_id]
  secret_kms_key_arns          = [aws_kms_key.vault_secrets.arn]
  secret_arns = {
    OFFSITE_SOURCE_PASSWORD = aws_secretsmanager_secret.runner["source-password"].arn
    OFFSITE_TARGET_PASSWORD = aws_secretsmanager_secret.runner["target-password"].arn
    OFFSITE_ARCHIVER_TOKEN  = aws_secretsmanager_secret.runner["archiver-token"].arn
  }
}

# For the source bucket's policy in the backup account: the runner reads it and writes
# only its own lock objects there.
data "aws_iam_policy_document" "source_bucket" {
  statement {
    sid       = "OffsiteRunnerReads"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = concat(local.source_buckets, [for b in local.source_buckets : "${b}/*"])
    principals {
      type        = "AWS"
      identifiers = [module.runner.role_arn]
    }
  }
  statement {
    sid       = "OffsiteRunnerLocksOnly"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = flatten([for b in local.source_buckets : ["${b}/locks/*", "${b}/*/locks/*"]])
    principals {
      type        = "AWS"
      identifiers = [module.runner.role_arn]
    }
  }
}

output "source_bucket_policy_statements" {
  description = "Add these statements to the source bucket's policy in the backup account."
  value       = data.aws_iam_policy_document.source_bucket.json
}
