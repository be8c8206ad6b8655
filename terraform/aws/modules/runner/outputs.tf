output "role_arn" {
  description = "The runner's task role (also for an EKS service account's eks.amazonaws.com/role-arn)."
  value       = module.access.role_arn
}

output "security_group_id" {
  description = "The runner's security group."
  value       = aws_security_group.runner.id
}

output "alarm_topic_arn" {
  description = "The topic the runner's alarms publish to (subscribe to it)."
  value       = local.alarm_topic_arn
}

output "log_group_name" {
  description = "The runner's logs: each interval's report."
  value       = module.tasks.log_group_name
}

output "metrics_dns_name" {
  description = "The service runner's /metrics (Prometheus dns_sd_configs, port 9184); null when scheduled."
  value       = local.service ? "metrics.${var.name}-runner.internal" : null
}
