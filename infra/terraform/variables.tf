variable "workspace_ids" {
  description = "Resource ids of the Sentinel-enabled Log Analytics workspaces to deploy to."
  type        = set(string)
}

variable "enabled" {
  description = "Deploy the rules enabled (false: deployed disabled, e.g. to stage a rollout)."
  type        = bool
  default     = true
}

variable "provider_subscription_id" {
  description = "Subscription the azurerm provider authenticates against (any one you can read)."
  type        = string
}
