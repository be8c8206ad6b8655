output "target_url" {
  description = "The target as offsite names it (add a prefix per job: the jobs file's [job.target] url)."
  value       = "s3://${aws_s3_bucket.target.bucket}"
}

output "archiver_url" {
  description = "The archiver pool for [job.archivers] urls: the Cloud Map name answers with one A record per task (MULTIVALUE), and dns+https makes each one appliance."
  value       = var.archiver_image == null ? null : "dns+https://archiver.${var.name}.internal:9443"
}

output "runner_role_arn" {
  description = "The runner's task role."
  value       = aws_iam_role.runner.arn
}

output "archiver_role_arn" {
  description = "The archiver's task role."
  value       = aws_iam_role.archiver.arn
}

output "kms_key_arn" {
  description = "The key encrypting the target bucket."
  value       = local.kms_key_arn
}
