output "target_url" {
  description = "The target as offsite names it (the jobs file's [job.target] url is this plus a prefix)."
  value       = "s3://${aws_s3_bucket.target.bucket}"
}

output "bucket_arn" {
  description = "The bucket's ARN, for the runner and archiver modules' target_bucket_arn."
  value       = aws_s3_bucket.target.arn
}

output "kms_key_arn" {
  description = "The key encrypting the bucket, for the runner and archiver modules' target_kms_key_arn."
  value       = local.kms_key_arn
}
