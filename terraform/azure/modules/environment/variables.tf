variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name: 2 to 31 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "resource_group_name" {
  description = "The resource group."
  type        = string
}

variable "location" {
  description = "Azure region (next to the source for the appliances)."
  type        = string
}

variable "infrastructure_subnet_id" {
  description = "The subnet of the Container Apps environment (delegated to Microsoft.App/environments; internal: nothing is reachable from the internet)."
  type        = string
}

variable "linked_vnet_ids" {
  description = "Other VNets (peered with this one) that must resolve this environment's apps by name: a runner reaching appliances in another region."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Days the apps' logs are kept in Log Analytics."
  type        = number
  default     = 90
  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days: 30 to 730."
  }
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
