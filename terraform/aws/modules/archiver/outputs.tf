output "archiver_url" {
  description = "For the jobs file's [job.archivers] urls: every healthy task is one appliance."
  value       = "dns+https://${local.dns_name}:9443"
}

output "ca_pem" {
  description = "The CA of the appliances' certificate: the runner module's archiver_ca_pem (the jobs file's ca_file = \"/tmp/archiver-ca.pem\")."
  value       = local.ca_pem
}

output "role_arn" {
  description = "The appliances' task role (also for an EKS service account's eks.amazonaws.com/role-arn)."
  value       = module.access.role_arn
}

output "security_group_id" {
  description = "The appliances' security group."
  value       = aws_security_group.archiver.id
}
