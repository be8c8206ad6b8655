# mode = "scheduled": EventBridge Scheduler starts `offsite job run --once` at each
# schedule, in its time zone. A start that fails (capacity, throttling) is tried again
# for an hour; one that never starts lands in a dead-letter queue, which alarms.

resource "aws_sqs_queue" "schedule_dlq" {
  count                     = local.service ? 0 : 1
  name                      = "${var.name}-runner-schedule-dlq"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600
  tags                      = var.tags
}

data "aws_iam_policy_document" "schedule_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "schedule" {
  count = local.service ? 0 : 1
  statement {
    sid       = "RunTheRunner"
    actions   = ["ecs:RunTask"]
    resources = [aws_ecs_task_definition.runner.arn_without_revision, "${aws_ecs_task_definition.runner.arn_without_revision}:*"]
  }
  statement {
    sid       = "PassItsRoles"
    actions   = ["iam:PassRole"]
    resources = [module.tasks.execution_role_arn, module.access.role_arn]
  }
  statement {
    sid       = "ItsKey"
    actions   = ["kms:Decrypt"]
    resources = [module.tasks.key_arn]
  }
  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.schedule_dlq[0].arn]
  }
}

resource "aws_iam_role" "schedule" {
  count              = local.service ? 0 : 1
  name               = "${var.name}-runner-schedule"
  assume_role_policy = data.aws_iam_policy_document.schedule_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "schedule" {
  count  = local.service ? 0 : 1
  name   = "${var.name}-runner-schedule"
  role   = aws_iam_role.schedule[0].id
  policy = data.aws_iam_policy_document.schedule[0].json
}

resource "aws_scheduler_schedule" "runner" {
  count                        = local.service ? 0 : 1
  name                         = "${var.name}-runner"
  description                  = "offsite job run --once"
  schedule_expression          = var.schedule
  schedule_expression_timezone = var.schedule_timezone
  kms_key_arn                  = module.tasks.key_arn
  flexible_time_window {
    mode = "OFF"
  }
  target {
    arn      = module.tasks.cluster_arn
    role_arn = aws_iam_role.schedule[0].arn
    ecs_parameters {
      task_definition_arn = aws_ecs_task_definition.runner.arn
      launch_type         = "FARGATE"
      task_count          = 1
      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = [aws_security_group.runner.id]
        assign_public_ip = false
      }
    }
    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 10
    }
    dead_letter_config {
      arn = aws_sqs_queue.schedule_dlq[0].arn
    }
  }
}
