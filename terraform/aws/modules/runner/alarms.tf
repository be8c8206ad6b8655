# Every run that does not end in success is heard of: the task's exit code is the
# interval's outcome (0 success, 3 warnings or unprotected machines, else failed), so
# an EventBridge rule on the runner's stopped tasks with any other exit code publishes
# to the alarm topic; a schedule that could not start the task (its dead-letter queue)
# and a service without a running task raise CloudWatch alarms on the same topic.

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "alarms" {
  count               = var.create_alarm_topic ? 1 : 0
  description         = "${var.name}: runner alarm topic"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.alarms_key.json
  tags                = var.tags
}

data "aws_iam_policy_document" "alarms_key" {
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
  # EventBridge and CloudWatch publish to the encrypted topic.
  statement {
    sid       = "AlarmPublishers"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com", "cloudwatch.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "alarms_topic" {
  count = var.create_alarm_topic ? 1 : 0
  statement {
    sid       = "AlarmPublishers"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms[0].arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com", "cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  count  = var.create_alarm_topic ? 1 : 0
  arn    = aws_sns_topic.alarms[0].arn
  policy = data.aws_iam_policy_document.alarms_topic[0].json
}

resource "aws_cloudwatch_event_rule" "run_not_successful" {
  name        = "${var.name}-runner-not-successful"
  description = "An offsite runner task stopped with an exit code other than 0"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn = [module.tasks.cluster_arn]
      lastStatus = ["STOPPED"]
      containers = {
        name     = ["runner"]
        exitCode = [{ "anything-but" = 0 }]
      }
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "run_not_successful" {
  rule = aws_cloudwatch_event_rule.run_not_successful.name
  arn  = local.alarm_topic_arn
  input_transformer {
    input_paths = {
      task   = "$.detail.taskArn"
      reason = "$.detail.stoppedReason"
      code   = "$.detail.containers[0].exitCode"
    }
    input_template = "\"offsite runner task <task> ended with exit code <code> (3: warnings or unprotected machines; 1 or 2: failed; <reason>). Its report is in the log group ${module.tasks.log_group_name}.\""
  }
}

resource "aws_cloudwatch_metric_alarm" "schedule_dead_letters" {
  count               = local.service ? 0 : 1
  alarm_name          = "${var.name}-runner-not-started"
  alarm_description   = "The schedule could not start the offsite runner (see the dead-letter queue ${aws_sqs_queue.schedule_dlq[0].name})"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.schedule_dlq[0].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "service_not_running" {
  count               = local.service ? 1 : 0
  alarm_name          = "${var.name}-runner-not-running"
  alarm_description   = "The continuous offsite runner has no running task"
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  dimensions          = { ClusterName = module.tasks.cluster_name, ServiceName = aws_ecs_service.runner[0].name }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 3
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [local.alarm_topic_arn]
  tags                = var.tags
}
