# The archiver pool next to the source buckets, placeable in the source's region or
# account (call this module with that provider): its role (modules/access, no delete),
# its tasks' ground (modules/tasks: cluster, key, logs, the configuration and the
# certificate as SSM parameters, an execution role reading only the appliances' secrets),
# TLS (tls.tf), a security group admitting only the runner, and an ECS service of
# `appliances` tasks registered in Cloud Map with one A record per task (MULTIVALUE):
# the runner's dns+https://archiver.NAME.internal:9443 makes each one appliance.

module "access" {
  source                = "../access"
  name                  = "${var.name}-archiver"
  role                  = "archiver"
  source_bucket_arns    = var.source_bucket_arns
  source_kms_key_arns   = var.source_kms_key_arns
  target_bucket_arn     = var.target_bucket_arn
  target_prefix         = var.target_prefix
  target_kms_key_arn    = var.target_kms_key_arn
  lock_mode             = var.lock_mode
  max_retention_days    = var.max_retention_days
  eks_oidc_provider_arn = var.eks_oidc_provider_arn
  eks_service_account   = "offsite:offsite-archiver"
  tags                  = var.tags
}

module "tasks" {
  source = "../tasks"
  name   = "${var.name}-archiver"
  files = {
    OFFSITE_ARCHIVER_CONFIG_TEXT = { path = "/tmp/archiver.toml", content = var.archiver_toml }
    ARCHIVER_TLS_CERT            = { path = "/tmp/tls.crt", content = local.tls_cert_pem }
  }
  secret_arns         = merge(var.secret_arns, { ARCHIVER_TLS_KEY = local.tls_key_secret_arn })
  secret_kms_key_arns = var.secret_kms_key_arns
  log_retention_days  = var.log_retention_days
  tags                = var.tags
}

resource "aws_security_group" "archiver" {
  name        = "${var.name}-archiver"
  description = "offsite appliances: their API from the runner only"
  vpc_id      = var.vpc_id
  ingress {
    description = "The appliance API (TLS) from the runner"
    from_port   = 9443
    to_port     = 9443
    protocol    = "tcp"
    cidr_blocks = var.runner_cidr_blocks
  }
  egress {
    description     = "HTTPS to the VPC endpoints and the stores"
    from_port       = 443
    to_port         = 443
    protocol        = "tcp"
    cidr_blocks     = var.https_egress_cidr_blocks
    prefix_list_ids = var.https_egress_prefix_list_ids
  }
  tags = var.tags
}

resource "aws_ecs_task_definition" "archiver" {
  family                   = "${var.name}-archiver"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = module.tasks.execution_role_arn
  task_role_arn            = module.access.role_arn
  container_definitions = jsonencode([{
    name         = "archiver"
    image        = var.image
    essential    = true
    portMappings = [{ containerPort = 9443, protocol = "tcp" }]
    entryPoint   = ["/bin/sh", "-c"]
    # Configuration, certificate and key arrive as variables and are written where the
    # configuration names them; then the key's variable is gone with the shell.
    command = [
      "${module.tasks.write_files} && printf '%s' \"$ARCHIVER_TLS_KEY\" > /tmp/tls.key && exec offsite-archiver serve --config /tmp/archiver.toml --log-format json"
    ]
    # Readiness by the binary itself (/v1/ready at the configured port and scheme).
    healthCheck = {
      command     = ["CMD", "offsite-archiver", "probe", "--config", "/tmp/archiver.toml"]
      interval    = 15
      timeout     = 10
      retries     = 3
      startPeriod = 30
    }
    secrets          = module.tasks.secrets
    stopTimeout      = 120
    logConfiguration = module.tasks.log_configuration
    # Nothing but /tmp (task storage: the files, packs being filled) is writable.
    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
  }])
  volume {
    name = "tmp"
  }
  tags = var.tags
}

resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = "${var.name}.internal"
  description = "offsite appliances"
  vpc         = var.vpc_id
  tags        = var.tags
}

# The runner's VPCs resolve the appliances' name too.
resource "aws_route53_zone_association" "runner" {
  for_each   = { for v in var.runner_vpcs : v.id => v }
  zone_id    = aws_service_discovery_private_dns_namespace.this.hosted_zone
  vpc_id     = each.value.id
  vpc_region = each.value.region
}

resource "aws_service_discovery_service" "archiver" {
  name = "archiver"
  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this.id
    routing_policy = "MULTIVALUE"
    dns_records {
      ttl  = 10
      type = "A"
    }
  }
  # Only healthy tasks are named: a draining appliance takes no new chain.
  health_check_custom_config {
    failure_threshold = 1
  }
  tags = var.tags
}

resource "aws_ecs_service" "archiver" {
  name            = "${var.name}-archiver"
  cluster         = module.tasks.cluster_arn
  task_definition = aws_ecs_task_definition.archiver.arn
  desired_count   = var.appliances
  launch_type     = "FARGATE"
  # One appliance replaced at a time; its chains go on elsewhere while it drains.
  deployment_minimum_healthy_percent = 50
  deployment_maximum_percent         = 200
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.archiver.id]
    assign_public_ip = false
  }
  service_registries {
    registry_arn = aws_service_discovery_service.archiver.arn
  }
  tags = var.tags
}
