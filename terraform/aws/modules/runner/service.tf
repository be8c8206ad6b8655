# mode = "service": `offsite job run` continuously, one task (a second runner of the same
# jobs would only find the first one's job locks), its health checked by `offsite job
# probe`, its /metrics on :9184 under the Cloud Map name metrics.NAME-runner.internal
# (Prometheus: dns_sd_configs, type A, port 9184).

resource "aws_service_discovery_private_dns_namespace" "runner" {
  count       = local.service ? 1 : 0
  name        = "${var.name}-runner.internal"
  description = "offsite runner metrics"
  vpc         = var.vpc_id
  tags        = var.tags
}

resource "aws_service_discovery_service" "metrics" {
  count = local.service ? 1 : 0
  name  = "metrics"
  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.runner[0].id
    routing_policy = "MULTIVALUE"
    dns_records {
      ttl  = 10
      type = "A"
    }
  }
  tags = var.tags
}

resource "aws_ecs_service" "runner" {
  count           = local.service ? 1 : 0
  name            = "${var.name}-runner"
  cluster         = module.tasks.cluster_arn
  task_definition = aws_ecs_task_definition.runner.arn
  desired_count   = 1
  launch_type     = "FARGATE"
  # Never two runners at once: the old task stops before the new one starts.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.runner.id]
    assign_public_ip = false
  }
  service_registries {
    registry_arn = aws_service_discovery_service.metrics[0].arn
  }
  tags = var.tags
}
