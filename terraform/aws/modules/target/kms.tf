# The bucket's key. Its policy delegates use to IAM (AWS's default), lets key_user_arns of
# other accounts use it, and denies disabling it, scheduling its deletion or changing its
# policy to everyone but the account root and key_admin_arns: whoever can disable this
# key can make every locked copy unreadable, lock or no lock.

resource "aws_kms_key" "target" {
  count                   = var.kms_key_arn == null ? 1 : 0
  description             = "${var.name}: backup copies in ${var.bucket_name}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
  lifecycle {
    prevent_destroy = true
  }
}

data "aws_iam_policy_document" "kms" {
  # checkov:skip=CKV_AWS_111:A key policy's "*" resource is the key itself; this is AWS's default key policy, delegating to IAM.
  # checkov:skip=CKV_AWS_356:A key policy's "*" resource is the key itself, not every resource.
  # checkov:skip=CKV_AWS_109:The account root administers its own key (AWS's default key policy); IAM policies then grant use.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.root]
    }
  }
  statement {
    sid       = "OnlyNamedAdminsDisableOrDelete"
    effect    = "Deny"
    actions   = ["kms:DisableKey", "kms:ScheduleKeyDeletion", "kms:PutKeyPolicy"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = concat([local.root], var.key_admin_arns)
    }
  }
  dynamic "statement" {
    for_each = length(var.key_user_arns) > 0 ? [1] : []
    content {
      sid       = "CrossAccountUsers"
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = var.key_user_arns
      }
    }
  }
}

locals {
  kms_key_arn = var.kms_key_arn == null ? aws_kms_key.target[0].arn : var.kms_key_arn
}
