# The job runner on ECS Fargate: its role (least privilege, modules/access), what its
# tasks stand on (modules/tasks: cluster, key, logs, the jobs file and the archivers' CA
# as SSM parameters, an execution role reading only the runner's secrets), a security
# group (HTTPS to the endpoints and stores, 9443 to the appliances only), and either a
# schedule (schedule.tf) or a service (service.tf).

module "access" {
  source                = "../access"
  name                  = "${var.name}-runner"
  role                  = "runner"
  source_bucket_arns    = var.source_bucket_arns
  source_kms_key_arns   = var.source_kms_key_arns
  target_bucket_arn     = var.target_bucket_arn
  target_prefix         = var.target_prefix
  target_kms_key_arn    = var.target_kms_key_arn
  lock_mode             = var.lock_mode
  max_retention_days    = var.max_retention_days
  eks_oidc_provider_arn = var.eks_oidc_provider_arn
  eks_service_account   = "offsite:offsite-runner"
  tags                  = var.tags
}

locals {
  # Both files always (the CA's content may be unknown until apply, and for_each keys
  # must be known at plan); without appliances the CA file holds only a comment.
  files = {
    OFFSITE_JOBS        = { path = "/tmp/jobs.toml", content = var.jobs_toml }
    OFFSITE_ARCHIVER_CA = { path = "/tmp/archiver-ca.pem", content = coalesce(var.archiver_ca_pem, "# no appliances: no CA\n") }
  }
  service = var.mode == "service"
  container = {
    name      = "runner"
    image     = var.image
    essential = true
    # The files arrive as variables; the task writes them where the jobs file says.
    entryPoint = ["/bin/sh", "-c"]
    command = [local.service
      ? "${module.tasks.write_files} && exec offsite job run --config /tmp/jobs.toml --metrics-listen 0.0.0.0:9184 --log-format json"
      : "${module.tasks.write_files} && exec offsite job run --config /tmp/jobs.toml --once --log-format json"
    ]
    secrets          = module.tasks.secrets
    stopTimeout      = 120
    logConfiguration = module.tasks.log_configuration
    # Nothing but /tmp (task storage: the files, packs being filled) is writable.
    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
  }
  as_service = {
    portMappings = [{ containerPort = 9184, protocol = "tcp" }]
    # The continuous runner's /health, by the binary itself (the image has no curl).
    healthCheck = {
      command     = ["CMD", "offsite", "job", "probe"]
      interval    = 30
      timeout     = 10
      retries     = 3
      startPeriod = 60
    }
  }
}

module "tasks" {
  source              = "../tasks"
  name                = "${var.name}-runner"
  files               = local.files
  secret_arns         = var.secret_arns
  secret_kms_key_arns = var.secret_kms_key_arns
  log_retention_days  = var.log_retention_days
  tags                = var.tags
}

resource "aws_security_group" "runner" {
  name        = "${var.name}-runner"
  description = "offsite runner: HTTPS to endpoints and stores, 9443 to the appliances"
  vpc_id      = var.vpc_id
  egress {
    description     = "HTTPS to the VPC endpoints and the stores"
    from_port       = 443
    to_port         = 443
    protocol        = "tcp"
    cidr_blocks     = var.https_egress_cidr_blocks
    prefix_list_ids = var.https_egress_prefix_list_ids
  }
  dynamic "egress" {
    for_each = length(var.archiver_cidr_blocks) > 0 ? [1] : []
    content {
      description = "The appliances' API (TLS)"
      from_port   = 9443
      to_port     = 9443
      protocol    = "tcp"
      cidr_blocks = var.archiver_cidr_blocks
    }
  }
  dynamic "ingress" {
    for_each = local.service && length(var.metrics_cidr_blocks) > 0 ? [1] : []
    content {
      description = "Prometheus scraping /metrics"
      from_port   = 9184
      to_port     = 9184
      protocol    = "tcp"
      cidr_blocks = var.metrics_cidr_blocks
    }
  }
  tags = var.tags
}

resource "aws_ecs_task_definition" "runner" {
  family                   = "${var.name}-runner"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = module.tasks.execution_role_arn
  task_role_arn            = module.access.role_arn
  container_definitions    = jsonencode([merge(local.container, local.service ? local.as_service : {})])
  tags                     = var.tags
}

resource "aws_sns_topic" "alarms" {
  count             = var.create_alarm_topic ? 1 : 0
  name              = "${var.name}-runner-alarms"
  kms_master_key_id = aws_kms_key.alarms[0].arn
  tags              = var.tags
}

locals {
  alarm_topic_arn = var.create_alarm_topic ? aws_sns_topic.alarms[0].arn : var.alarm_topic_arn
}
