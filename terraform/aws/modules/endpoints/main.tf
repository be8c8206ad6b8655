# What ECS tasks in private subnets without a NAT need to reach, as VPC endpoints: the
# image registry (ecr.api, ecr.dkr, and S3 for its layers), CloudWatch Logs, SSM (the
# configuration files), Secrets Manager (passwords, token, TLS key), KMS (decrypting
# them) and STS (the task role's credentials), and S3 as a gateway for the buckets of
# this region. The runner and archiver modules then need HTTPS only to this VPC's CIDR
# (https_egress_cidr_blocks) and the S3 prefix list (s3_prefix_list_id). A bucket in
# another region is not reached through a gateway endpoint: route it through NAT and
# allow its addresses.

data "aws_region" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

locals {
  interface = ["ecr.api", "ecr.dkr", "logs", "ssm", "secretsmanager", "kms", "sts"]
}

resource "aws_security_group" "endpoints" {
  name        = "${var.name}-endpoints"
  description = "offsite: the VPC endpoints, HTTPS from the VPC"
  vpc_id      = var.vpc_id
  ingress {
    description = "HTTPS from the VPC's tasks"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = [data.aws_vpc.this.cidr_block]
  }
  tags = var.tags
}

resource "aws_vpc_endpoint" "interface" {
  for_each            = toset(local.interface)
  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${data.aws_region.current.name}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.subnet_ids
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true
  tags                = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.route_table_ids
  tags              = merge(var.tags, { Name = "${var.name}-s3" })
}
