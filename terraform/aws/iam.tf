# Least privilege. The runner writes the target (packs, index, points, locks, job state),
# deletes what forget and prune let go (a locked object is never deleted early: S3 only
# hides it behind a delete marker, and offsite waits for the lock), sets and extends
# object locks, asks for restores from archive classes, and may read the sources when
# it copies without an archiver. The archiver reads the sources and writes packs to the
# target; it deletes nothing. Neither may delete object versions, bypass governance
# locks or change the bucket's lock configuration.

data "aws_iam_policy_document" "tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

locals {
  source_objects = [for a in var.source_bucket_arns : "${a}/*"]
  # A copy holds a shared lock object in each source while it reads (so no prune runs
  # under it): writing and deleting its own lock is all it changes there.
  source_locks = flatten([for a in var.source_bucket_arns : ["${a}/locks/*", "${a}/*/locks/*"]])
}

# What runner and archiver both need: read the sources, write and delete their own lock
# objects there, and use the target's key.
data "aws_iam_policy_document" "sources" {
  statement {
    sid       = "SourcesRead"
    actions   = ["s3:GetObject"]
    resources = local.source_objects
  }
  statement {
    sid       = "SourcesLocks"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = local.source_locks
  }
  statement {
    sid       = "SourcesList"
    actions   = ["s3:ListBucket"]
    resources = var.source_bucket_arns
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    resources = [local.kms_key_arn]
  }
}

data "aws_iam_policy_document" "runner" {
  source_policy_documents = [data.aws_iam_policy_document.sources.json]
  statement {
    sid       = "TargetList"
    actions   = ["s3:ListBucket", "s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration", "s3:GetLifecycleConfiguration"]
    resources = [aws_s3_bucket.target.arn]
  }
  statement {
    sid = "TargetObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:PutObjectRetention",
      "s3:GetObjectRetention",
      "s3:RestoreObject",
      "s3:AbortMultipartUpload",
    ]
    resources = ["${aws_s3_bucket.target.arn}/*"]
  }
}

data "aws_iam_policy_document" "archiver" {
  source_policy_documents = [data.aws_iam_policy_document.sources.json]
  statement {
    sid       = "TargetList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.target.arn]
  }
  statement {
    sid       = "TargetWrite"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:PutObjectRetention", "s3:GetObjectRetention", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.target.arn}/*"]
  }
}

resource "aws_iam_role" "runner" {
  name               = "${var.name}-runner"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "runner" {
  name   = "${var.name}-runner"
  role   = aws_iam_role.runner.id
  policy = data.aws_iam_policy_document.runner.json
}

resource "aws_iam_role" "archiver" {
  name               = "${var.name}-archiver"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "archiver" {
  name   = "${var.name}-archiver"
  role   = aws_iam_role.archiver.id
  policy = data.aws_iam_policy_document.archiver.json
}

# The execution role pulls images, writes logs and reads the secrets and parameters
# the tasks are given as environment variables.
data "aws_iam_policy_document" "execution" {
  statement {
    actions = ["ssm:GetParameters"]
    resources = compact([
      var.jobs_file_ssm_parameter_arn,
      var.archiver_config_ssm_parameter_arn,
    ])
  }
  dynamic "statement" {
    for_each = length(var.secret_arns) > 0 ? [1] : []
    content {
      actions   = ["secretsmanager:GetSecretValue"]
      resources = values(var.secret_arns)
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json
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
