# The target bucket: versioned, object lock on (offsite sets each object's lock with its
# write), no public access, SSE-KMS, TLS only, and a rule aborting multipart uploads a
# killed copy left behind. `offsite target verify s3://BUCKET --object-lock governance`
# checks the same from the runner's side.

resource "aws_kms_key" "target" {
  count                   = var.kms_key_arn == null ? 1 : 0
  description             = "${var.name}: backup copies in ${var.target_bucket_name}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
}

data "aws_caller_identity" "current" {}

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
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

locals {
  kms_key_arn = var.kms_key_arn == null ? aws_kms_key.target[0].arn : var.kms_key_arn
}

resource "aws_s3_bucket" "target" {
  # checkov:skip=CKV_AWS_144:Cross-region replication would be a third copy; the target is itself the off-site copy.
  # checkov:skip=CKV_AWS_18:Access logs go to the operator's own log bucket, which this module does not invent.
  # checkov:skip=CKV2_AWS_62:Event notifications are not needed: the runner reports every interval itself.
  bucket              = var.target_bucket_name
  object_lock_enabled = var.object_lock
  tags                = var.tags
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
  # more) are removed after their lock, plus a day; locked versions cannot go earlier.
  rule {
    id     = "offsite-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 1
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
      values   = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_s3_bucket_policy" "target" {
  bucket = aws_s3_bucket.target.id
  policy = data.aws_iam_policy_document.target_bucket.json
}
