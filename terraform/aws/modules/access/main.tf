# One task role: who may take it (ECS tasks, an EKS service account through IRSA or Pod
# Identity) and least privilege for a runner or an appliance. Both read the sources and
# write there only their own lock objects under locks/; both write the target only under
# target_prefix, and set locks only of lock_mode and at most max_retention_days long. The
# runner also deletes there (what forget and prune let go: S3 only hides a locked object
# behind a delete marker, and offsite waits for the lock) and restores from archive
# classes; the appliance deletes nothing. Neither may delete object versions, bypass
# governance locks or change the bucket's lock configuration.

locals {
  oidc_host      = var.eks_oidc_provider_arn == null ? null : split(":oidc-provider/", var.eks_oidc_provider_arn)[1]
  source_objects = [for a in var.source_bucket_arns : "${a}/*"]
  source_locks   = flatten([for a in var.source_bucket_arns : ["${a}/locks/*", "${a}/*/locks/*"]])
  target_objects = "${var.target_bucket_arn}/${var.target_prefix}*"
  runner         = var.role == "runner"
}

data "aws_iam_policy_document" "assume" {
  dynamic "statement" {
    for_each = var.trust_ecs ? [1] : []
    content {
      sid     = "EcsTasks"
      actions = ["sts:AssumeRole"]
      principals {
        type        = "Service"
        identifiers = ["ecs-tasks.amazonaws.com"]
      }
    }
  }
  dynamic "statement" {
    for_each = var.eks_oidc_provider_arn == null ? [] : [1]
    content {
      sid     = "EksIrsa"
      actions = ["sts:AssumeRoleWithWebIdentity"]
      principals {
        type        = "Federated"
        identifiers = [var.eks_oidc_provider_arn]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.oidc_host}:sub"
        values   = ["system:serviceaccount:${var.eks_service_account}"]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.oidc_host}:aud"
        values   = ["sts.amazonaws.com"]
      }
    }
  }
  dynamic "statement" {
    for_each = var.eks_pod_identity ? [1] : []
    content {
      sid     = "EksPodIdentity"
      actions = ["sts:AssumeRole", "sts:TagSession"]
      principals {
        type        = "Service"
        identifiers = ["pods.eks.amazonaws.com"]
      }
    }
  }
}

data "aws_iam_policy_document" "access" {
  statement {
    sid       = "SourcesRead"
    actions   = ["s3:GetObject"]
    resources = local.source_objects
  }
  # A copy holds a shared lock object in each source while it reads (so no prune runs
  # under it): writing and deleting its own lock is all it changes there.
  statement {
    sid       = "SourcesLocksOnly"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = local.source_locks
  }
  statement {
    sid       = "SourcesList"
    actions   = ["s3:ListBucket"]
    resources = var.source_bucket_arns
  }
  dynamic "statement" {
    for_each = length(var.source_kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "SourceKeys"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = var.source_kms_key_arns
    }
  }
  statement {
    sid = "TargetBucket"
    actions = concat(["s3:ListBucket", "s3:ListBucketMultipartUploads"], local.runner ? [
      "s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration", "s3:GetLifecycleConfiguration",
    ] : [])
    resources = [var.target_bucket_arn]
  }
  statement {
    sid = "TargetObjects"
    actions = concat([
      "s3:GetObject", "s3:PutObject", "s3:GetObjectRetention", "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ], local.runner ? ["s3:DeleteObject", "s3:RestoreObject"] : [])
    resources = [local.target_objects]
  }
  # Locks only of the job's mode and length (the target bucket's policy says the same
  # for every principal; this holds for a bucket made elsewhere too).
  statement {
    sid       = "TargetRetentionBounded"
    actions   = ["s3:PutObjectRetention"]
    resources = [local.target_objects]
    condition {
      test     = "StringEquals"
      variable = "s3:object-lock-mode"
      values   = [var.lock_mode]
    }
    condition {
      test     = "NumericLessThanEquals"
      variable = "s3:object-lock-remaining-retention-days"
      values   = [tostring(var.max_retention_days)]
    }
  }
  statement {
    sid       = "TargetKey"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.target_kms_key_arn]
  }
}

resource "aws_iam_role" "this" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = var.name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.access.json
}
