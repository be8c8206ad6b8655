variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "offsite"
}

variable "vpc_id" {
  description = "The VPC the runner or the appliances run in (call this module once per VPC)."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the interface endpoints (those of the tasks)."
  type        = list(string)
}

variable "route_table_ids" {
  description = "Route tables of those subnets, for the S3 gateway endpoint."
  type        = list(string)
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
