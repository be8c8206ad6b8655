# The target bucket: versioned, object lock on (offsite sets each object's lock with its
# write), no public access, SSE-KMS, TLS only, locks only of the allowed mode and at most
# max_retention_days long, and rules aborting multipart uploads a killed copy left and
# removing hidden versions after noncurrent_version_days. `offsite target verify
# s3://BUCKET --object-lock governance` checks the same from the runner's side.

data "aws_caller_identity" "current" {}

locals {
  root = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"
}

resource "aws_s3_bucket" "target" {
  # checkov:skip=CKV_AWS_144:Cross-region replication would be a third copy; the target is itself the off-site copy.
  # checkov:skip=CKV_AWS_18:Access logs go to the operator's own log bucket, which this module does not invent.
  # checkov:skip=CKV2_AWS_62:Event notifications are not needed: the runner reports every interval itself.
  bucket              = var.bucket_name
  object_lock_enabled = var.object_lock
  tags                = var.tags
  # The backups themselves: a plan that would destroy the bucket stops here.
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "target" {
  bucket = aws_s3_bucket.target.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "target" {
  bucket                  = aws_s3_bucket.target.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "target" {
  bucket = aws_s3_bucket.target.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "target" {
  bucket = aws_s3_bucket.target.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "target" {
  bucket = aws_s3_bucket.target.id
  rule {
    id     = "offsite-abort-incomplete-multipart"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }
  # Versions hidden by a delete (forget and prune only delete what no lock holds any
  # more) are removed after noncurrent_version_days; locked versions cannot go earlier.
  rule {
    id     = "offsite-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
  }
}

data "aws_iam_policy_document" "target_bucket" {
  statement {
    sid     = "TlsOnly"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.target.arn,
      "${aws_s3_bucket.target.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  # Nobody shortens or lifts a governance lock through this bucket's policy: the
  # permission to bypass it is denied to every principal but the account's root.
  statement {
    sid     = "NoLockBypass"
    effect  = "Deny"
    actions = ["s3:BypassGovernanceRetention", "s3:PutBucketObjectLockConfiguration"]
    resources = [
      aws_s3_bucket.target.arn,
      "${aws_s3_bucket.target.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = [local.root]
    }
  }
  # Locks only of the job's mode: stolen credentials cannot set a compliance lock that
  # nobody, the root included, could lift.
  statement {
    sid       = "LockModeOnly"
    effect    = "Deny"
    actions   = ["s3:PutObject", "s3:PutObjectRetention"]
    resources = ["${aws_s3_bucket.target.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Null"
      variable = "s3:object-lock-mode"
      values   = ["false"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "s3:object-lock-mode"
      values   = [var.lock_mode]
    }
  }
  # Locks no longer than the job's longest retention needs: not decades of it.
  statement {
    sid       = "LockLengthBounded"
    effect    = "Deny"
    actions   = ["s3:PutObject", "s3:PutObjectRetention"]
    resources = ["${aws_s3_bucket.target.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "NumericGreaterThan"
      variable = "s3:object-lock-remaining-retention-days"
      values   = [tostring(var.max_retention_days)]
    }
  }
  dynamic "statement" {
    for_each = length(var.writer_role_arns) > 0 ? [1] : []
    content {
      sid = "CrossAccountWriters"
      actions = [
        "s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:PutObjectRetention",
        "s3:GetObjectRetention", "s3:RestoreObject", "s3:AbortMultipartUpload", "s3:GetBucketVersioning",
        "s3:GetBucketObjectLockConfiguration", "s3:GetLifecycleConfiguration",
      ]
      resources = [aws_s3_bucket.target.arn, "${aws_s3_bucket.target.arn}/*"]
      principals {
        type        = "AWS"
        identifiers = var.writer_role_arns
      }
    }
  }
}

resource "aws_s3_bucket_policy" "target" {
  bucket = aws_s3_bucket.target.id
  policy = data.aws_iam_policy_document.target_bucket.json
}
