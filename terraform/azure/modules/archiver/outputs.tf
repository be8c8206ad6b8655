output "archiver_urls" {
  description = "The jobs file's [job.archivers] urls: one per appliance, each its own app and port."
  value       = [for i, a in local.apps : "https://${local.fqdns[i]}:${a.port}"]
}

output "ca_pem" {
  description = "The CA of the appliances' certificate: the runner module's archiver_ca_pem."
  value       = tls_self_signed_cert.ca.cert_pem
}

output "identity_client_id" {
  description = "The appliances' identity (also for the AKS service account's azure.workload.identity/client-id)."
  value       = module.access.client_id
}
