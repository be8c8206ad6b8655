# The runner as a scheduled ECS task (`offsite job run --once` on the jobs file), the
# archiver pool as an ECS service next to the source buckets, found by the runner
# through Cloud Map DNS (`https://archiver.<name>.internal:9443`). Both on Fargate in
# private subnets; the archiver admits only the runner's security group.

data "aws_region" "current" {}

resource "aws_ecs_cluster" "this" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "tasks" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = var.tags
}

resource "aws_security_group" "runner" {
  name        = "${var.name}-runner"
  description = "offsite runner: out to S3 and the archivers"
  vpc_id      = var.vpc_id
  egress {
    description = "HTTPS to S3, the archivers and AWS APIs"
    from_port   = 443
    to_port     = 9443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  tags = var.tags
}

resource "aws_security_group" "archiver" {
  name        = "${var.name}-archiver"
  description = "offsite archiver: its API from the runner only"
  vpc_id      = var.vpc_id
  ingress {
    description     = "The appliance API (TLS) from the runner"
    from_port       = 9443
    to_port         = 9443
    protocol        = "tcp"
    security_groups = [aws_security_group.runner.id]
  }
  egress {
    description = "HTTPS to S3"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  tags = var.tags
}

locals {
  log = {
    logDriver = "awslogs"
    options = {
      awslogs-group         = aws_cloudwatch_log_group.tasks.name
      awslogs-region        = data.aws_region.current.name
      awslogs-stream-prefix = "offsite"
    }
  }
  secrets = [for k, v in var.secret_arns : { name = k, valueFrom = v }]
}

resource "aws_ecs_task_definition" "runner" {
  family                   = "${var.name}-runner"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.runner.arn
  container_definitions = jsonencode([{
    name      = "runner"
    image     = var.runner_image
    essential = true
    # The jobs file arrives as a variable; the task writes it where the runner reads it.
    entryPoint = ["/bin/sh", "-c"]
    command = [
      "printf '%s' \"$OFFSITE_JOBS\" > /tmp/jobs.toml && exec offsite job run --config /tmp/jobs.toml --once --log-format json"
    ]
    secrets                = concat([{ name = "OFFSITE_JOBS", valueFrom = var.jobs_file_ssm_parameter_arn }], local.secrets)
    stopTimeout            = 120
    readonlyRootFilesystem = false
    logConfiguration       = local.log
  }])
  tags = var.tags
}

resource "aws_ecs_task_definition" "archiver" {
  count                    = var.archiver_image == null ? 0 : 1
  family                   = "${var.name}-archiver"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.archiver.arn
  container_definitions = jsonencode([{
    name         = "archiver"
    image        = var.archiver_image
    essential    = true
    portMappings = [{ containerPort = 9443, protocol = "tcp" }]
    entryPoint   = ["/bin/sh", "-c"]
    # Config, certificate and key arrive as variables (OFFSITE_ARCHIVER_CONFIG,
    # ARCHIVER_TLS_CERT, ARCHIVER_TLS_KEY in secret_arns); the config names
    # /tmp/tls.crt and /tmp/tls.key.
    command = [
      "printf '%s' \"$OFFSITE_ARCHIVER_CONFIG\" > /tmp/archiver.toml && printf '%s' \"$ARCHIVER_TLS_CERT\" > /tmp/tls.crt && printf '%s' \"$ARCHIVER_TLS_KEY\" > /tmp/tls.key && exec offsite-archiver serve --config /tmp/archiver.toml --log-format json"
    ]
    secrets          = concat(var.archiver_config_ssm_parameter_arn == null ? [] : [{ name = "OFFSITE_ARCHIVER_CONFIG", valueFrom = var.archiver_config_ssm_parameter_arn }], local.secrets)
    stopTimeout      = 120
    logConfiguration = local.log
  }])
  tags = var.tags
}

resource "aws_service_discovery_private_dns_namespace" "this" {
  count       = var.archiver_image == null ? 0 : 1
  name        = "${var.name}.internal"
  description = "offsite archivers"
  vpc         = var.vpc_id
  tags        = var.tags
}

resource "aws_service_discovery_service" "archiver" {
  count = var.archiver_image == null ? 0 : 1
  name  = "archiver"
  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this[0].id
    routing_policy = "MULTIVALUE"
    dns_records {
      ttl  = 10
      type = "A"
    }
  }
  tags = var.tags
}

resource "aws_ecs_service" "archiver" {
  count           = var.archiver_image == null ? 0 : 1
  name            = "${var.name}-archiver"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.archiver[0].arn
  desired_count   = var.archiver_count
  launch_type     = "FARGATE"
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.archiver.id]
    assign_public_ip = false
  }
  service_registries {
    registry_arn = aws_service_discovery_service.archiver[0].arn
  }
  tags = var.tags
}

data "aws_iam_policy_document" "events_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "events" {
  statement {
    actions   = ["ecs:RunTask"]
    resources = [aws_ecs_task_definition.runner.arn_without_revision, "${aws_ecs_task_definition.runner.arn_without_revision}:*"]
  }
  statement {
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn, aws_iam_role.runner.arn]
  }
}

resource "aws_iam_role" "events" {
  name               = "${var.name}-schedule"
  assume_role_policy = data.aws_iam_policy_document.events_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "events" {
  name   = "${var.name}-schedule"
  role   = aws_iam_role.events.id
  policy = data.aws_iam_policy_document.events.json
}

resource "aws_cloudwatch_event_rule" "runner" {
  name                = "${var.name}-runner"
  description         = "offsite job run --once"
  schedule_expression = var.runner_schedule
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "runner" {
  rule     = aws_cloudwatch_event_rule.runner.name
  arn      = aws_ecs_cluster.this.arn
  role_arn = aws_iam_role.events.arn
  ecs_target {
    task_definition_arn = aws_ecs_task_definition.runner.arn
    launch_type         = "FARGATE"
    task_count          = 1
    network_configuration {
      subnets          = var.subnet_ids
      security_groups  = [aws_security_group.runner.id]
      assign_public_ip = false
    }
  }
}
