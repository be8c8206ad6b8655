# The source backups are in us-east-1, the copies go to eu-central-1: the appliances run
# next to the source (in us-east-1, reading it at in-region prices and sending only
# packed, compressed bytes across), the target bucket and the runner in eu-central-1.
# The two VPCs are peered (not shown); the runner's VPC resolves the appliances' private
# name through a zone association. Each region has its own endpoints; the source bucket
# is reached through us-east-1's S3 gateway endpoint, the target through the appliances'
# NAT (a bucket in another region has no gateway endpoint here).

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
  alias  = "source"
  region = "us-east-1"
}

locals {
  target = {
    vpc_id          = "vpc-0aaaaaaaaaaaaaaaa"
    subnet_ids      = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
    subnet_cidrs    = ["10.10.1.0/24", "10.10.2.0/24"]
    route_table_ids = ["rtb-0aaaaaaaaaaaaaaaa"]
  }
  source = {
    vpc_id          = "vpc-0bbbbbbbbbbbbbbbb"
    subnet_ids      = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]
    subnet_cidrs    = ["10.20.1.0/24", "10.20.2.0/24"]
    route_table_ids = ["rtb-0bbbbbbbbbbbbbbbb"]
  }
  source_buckets = ["arn:aws:s3:::example-backups-virginia"]
}

# The secrets, empty: put their values in once (docs/DEPLOY.md). The appliances' in
# their own region (ECS reads a task's secrets in the task's region).
resource "aws_kms_key" "secrets" {
  # checkov:skip=CKV2_AWS_64:The key keeps AWS's default key policy: the account's IAM policies decide who uses it.
  description         = "offsite: the runner's passwords and token"
  enable_key_rotation = true
}

resource "aws_secretsmanager_secret" "runner" {
  # checkov:skip=CKV2_AWS_57:Repository passwords are not rotated: a new password is a new key slot (offsite key add).
  for_each                = toset(["source-password", "target-password", "archiver-token"])
  name                    = "offsite/${each.key}"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = 30
}

resource "aws_kms_key" "source_secrets" {
  # checkov:skip=CKV2_AWS_64:The key keeps AWS's default key policy: the account's IAM policies decide who uses it.
  provider            = aws.source
  description         = "offsite: the appliances' passwords"
  enable_key_rotation = true
}

resource "aws_secretsmanager_secret" "archiver" {
  # checkov:skip=CKV2_AWS_57:Repository passwords are not rotated: a new password is a new key slot (offsite key add).
  provider                = aws.source
  for_each                = toset(["source-password", "target-password"])
  name                    = "offsite/${each.key}"
  kms_key_id              = aws_kms_key.source_secrets.arn
  recovery_window_in_days = 30
}

module "target" {
  source             = "../../modules/target"
  bucket_name        = "example-offsite-copies"
  lock_mode          = "GOVERNANCE"
  max_retention_days = 2700
  key_admin_arns     = ["arn:aws:iam::111122223333:role/security-admin"]
}

module "target_endpoints" {
  source          = "../../modules/endpoints"
  vpc_id          = local.target.vpc_id
  subnet_ids      = local.target.subnet_ids
  route_table_ids = local.target.route_table_ids
}

module "source_endpoints" {
  source          = "../../modules/endpoints"
  providers       = { aws = aws.source }
  vpc_id          = local.source.vpc_id
  subnet_ids      = local.source.subnet_ids
  route_table_ids = local.source.route_table_ids
}

module "archiver" {
  source        = "../../modules/archiver"
  providers     = { aws = aws.source }
  image         = "111122223333.dkr.ecr.us-east-1.amazonaws.com/offsite-archiver@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  archiver_toml = file("${path.module}/archiver.toml")
  # The target's key is in eu-central-1: S3 uses it there, the role only needs its ARN.
  source_bucket_arns = local.source_buckets
  target_bucket_arn  = module.target.bucket_arn
  target_prefix      = "jobs/"
  target_kms_key_arn = module.target.kms_key_arn
  vpc_id             = local.source.vpc_id
  subnet_ids         = local.source.subnet_ids
  runner_cidr_blocks = local.target.subnet_cidrs
  runner_vpcs        = [{ id = local.target.vpc_id, region = "eu-central-1" }]
  # The target bucket is in another region: through NAT, so HTTPS anywhere.
  https_egress_cidr_blocks     = ["0.0.0.0/0"]
  https_egress_prefix_list_ids = [module.source_endpoints.s3_prefix_list_id]
  secret_kms_key_arns          = [aws_kms_key.source_secrets.arn]
  secret_arns = {
    OFFSITE_SOURCE_PASSWORD = aws_secretsmanager_secret.archiver["source-password"].arn
    OFFSITE_TARGET_PASSWORD = aws_secretsmanager_secret.archiver["target-password"].arn
  }
}

module "runner" {
  source          = "../../modules/runner"
  image           = "111122223333.dkr.ecr.eu-central-1.amazonaws.com/offsite@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  jobs_toml       = file("${path.module}/jobs.toml")
  archiver_ca_pem = module.archiver.ca_pem
  # The runner lists the source's points (and copies by itself if no appliance answers).
  source_bucket_arns   = local.source_buckets
  target_bucket_arn    = module.target.bucket_arn
  target_prefix        = "jobs/"
  target_kms_key_arn   = module.target.kms_key_arn
  vpc_id               = local.target.vpc_id
  subnet_ids           = local.target.subnet_ids
  archiver_cidr_blocks = local.source.subnet_cidrs
  # The source bucket is in another region: through NAT, so HTTPS anywhere.
  https_egress_cidr_blocks     = ["0.0.0.0/0"]
  https_egress_prefix_list_ids = [module.target_endpoints.s3_prefix_list_id]
  mode                         = "service"
  metrics_cidr_blocks          = ["10.10.0.0/16"]
  secret_kms_key_arns          = [aws_kms_key.secrets.arn]
  secret_arns = {
    OFFSITE_SOURCE_PASSWORD = aws_secretsmanager_secret.runner["source-password"].arn
    OFFSITE_TARGET_PASSWORD = aws_secretsmanager_secret.runner["target-password"].arn
    OFFSITE_ARCHIVER_TOKEN  = aws_secretsmanager_secret.runner["archiver-token"].arn
  }
}

output "archiver_url" {
  description = "The jobs file's [job.archivers] urls."
  value       = module.archiver.archiver_url
}

output "metrics_dns_name" {
  description = "Where Prometheus scrapes the runner (port 9184)."
  value       = module.runner.metrics_dns_name
}
