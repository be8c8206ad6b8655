# What a runner's or an appliance's ECS tasks stand on, in the region they run in: a
# cluster, a key of their own (its policy grants CloudWatch Logs, which encrypts the log
# group with it), the log group, the configuration files as SSM SecureStrings under that
# key, and an execution role that may read exactly those parameters and this task's
# secrets and decrypt them. Used by the runner and archiver modules, not on its own.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  account = data.aws_caller_identity.current.account_id
  region  = data.aws_region.current.name
}

resource "aws_ecs_cluster" "this" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  tags = var.tags
}

resource "aws_kms_key" "tasks" {
  description         = "${var.name}: logs and configuration"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
  tags                = var.tags
}

data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_111:A key policy's "*" resource is the key itself; this is AWS's default key policy, delegating to IAM.
  # checkov:skip=CKV_AWS_356:A key policy's "*" resource is the key itself, not every resource.
  # checkov:skip=CKV_AWS_109:The account root administers its own key (AWS's default key policy); IAM policies then grant use.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${local.account}:root"]
    }
  }
  # CloudWatch Logs encrypts the log group with this key (without this grant, creating
  # the log group fails).
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:aws:logs:${local.region}:${local.account}:log-group:/ecs/${var.name}"]
    }
  }
}

resource "aws_cloudwatch_log_group" "tasks" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.tasks.arn
  tags              = var.tags
}

resource "aws_ssm_parameter" "files" {
  for_each = var.files
  name     = "/${var.name}/${each.key}"
  type     = "SecureString"
  key_id   = aws_kms_key.tasks.arn
  value    = each.value.content
  # A standard parameter holds 4 KB; a jobs file with a few sources is more.
  tier = length(each.value.content) > 4096 ? "Advanced" : "Standard"
  tags = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# The execution role pulls the image, writes logs and reads this task's parameters and
# secrets — and decrypts them: SecureStrings under this module's key, secrets under
# theirs.
data "aws_iam_policy_document" "execution" {
  dynamic "statement" {
    for_each = length(var.files) > 0 ? [1] : []
    content {
      sid       = "Parameters"
      actions   = ["ssm:GetParameters"]
      resources = [for p in aws_ssm_parameter.files : p.arn]
    }
  }
  dynamic "statement" {
    for_each = length(var.secret_arns) > 0 ? [1] : []
    content {
      sid       = "Secrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = values(var.secret_arns)
    }
  }
  statement {
    sid       = "Decrypt"
    actions   = ["kms:Decrypt"]
    resources = concat([aws_kms_key.tasks.arn], var.secret_kms_key_arns)
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "execution" {
  name   = "${var.name}-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
