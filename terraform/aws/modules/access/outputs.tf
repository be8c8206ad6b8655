output "role_arn" {
  description = "The role (an ECS task role, or the ARN for the eks.amazonaws.com/role-arn annotation)."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "The role's name."
  value       = aws_iam_role.this.name
}
