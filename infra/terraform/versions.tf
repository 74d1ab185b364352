terraform {
  required_version = ">= 1.5"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0, < 5.0"
    }
  }
}

# One provider reaches every subscription of one tenant: the rule's address comes from
# each workspace's resource id. For workspaces in other tenants, add an aliased provider
# per tenant and a module (or resource copy) per alias.
provider "azurerm" {
  features {}
  subscription_id = var.provider_subscription_id
}
