output "vpc_cidr_block" {
  description = "The VPC's CIDR: the tasks' https_egress_cidr_blocks (the interface endpoints live there)."
  value       = data.aws_vpc.this.cidr_block
}

output "s3_prefix_list_id" {
  description = "The S3 gateway endpoint's prefix list: the tasks' https_egress_prefix_list_ids."
  value       = aws_vpc_endpoint.s3.prefix_list_id
}
