"""Credentials: DefaultAzureCredential, built once per command, for one tenant and cloud."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .clouds import Cloud

#: Appended to "cannot get a token" errors: azure-identity's per-credential reasons are long,
#: so they are logged only with --debug.
NO_TOKEN_HINT = " (--debug shows why each credential failed)"

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def default_credential(cloud: Cloud, tenant_id: str | None = None) -> TokenCredential:
    """Environment, workload identity (OIDC), managed identity, Azure CLI…

    ``AZURE_TOKEN_CREDENTIALS`` narrows the chain (azure-identity reads it itself).
    """
    from azure.identity import DefaultAzureCredential

    kwargs: dict[str, object] = {"authority": cloud.authority_host}
    if tenant_id:
        kwargs["additionally_allowed_tenants"] = ["*"]
        kwargs["tenant_id"] = tenant_id
    return DefaultAzureCredential(**kwargs)
