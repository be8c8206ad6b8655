output "cluster_arn" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "cluster_name" {
  description = "The ECS cluster's name."
  value       = aws_ecs_cluster.this.name
}

output "execution_role_arn" {
  description = "The tasks' execution role."
  value       = aws_iam_role.execution.arn
}

output "log_configuration" {
  description = "The container definitions' logConfiguration."
  value = {
    logDriver = "awslogs"
    options = {
      awslogs-group         = aws_cloudwatch_log_group.tasks.name
      awslogs-region        = local.region
      awslogs-stream-prefix = "offsite"
    }
  }
}

output "secrets" {
  description = "The container definitions' secrets: every file's parameter and every secret, by variable name."
  value = concat(
    [for k, p in aws_ssm_parameter.files : { name = k, valueFrom = p.arn }],
    [for k, v in var.secret_arns : { name = k, valueFrom = v }],
  )
}

output "write_files" {
  description = "A shell command writing every file from its variable (ends before the program's exec)."
  value       = join(" && ", concat(["umask 077"], [for k, f in var.files : format("printf '%%s' \"$%s\" > %s", k, f.path)]))
}

output "log_group_name" {
  description = "The log group."
  value       = aws_cloudwatch_log_group.tasks.name
}

output "key_arn" {
  description = "The key of the tasks' logs and parameters (also for secrets this task alone reads)."
  value       = aws_kms_key.tasks.arn
}
