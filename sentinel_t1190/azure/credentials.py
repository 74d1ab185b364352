"""Credentials: DefaultAzureCredential for one tenant and cloud, as azure-identity accepts it.

DefaultAzureCredential refuses a ``tenant_id`` keyword (``TypeError``). The tenant is
instead named on every token request (``get_token(..., tenant_id=…)``), which each
credential in the chain honours: the service principal in the environment and workload
identity (allowed through ``additionally_allowed_tenants``), the Azure CLI (``--tenant``).
A managed identity has one tenant and ignores the request; ARM then refuses a token from
another tenant, which the caller reports as an authentication error.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import AuthError, InputError, first_line
from .clouds import Cloud

#: Appended to "cannot get a token" errors: azure-identity's per-credential reasons are long,
#: so they are logged only with --debug.
NO_TOKEN_HINT = " (--debug shows why each credential failed)"

#: What azure-identity accepts as a tenant (a GUID or a domain such as contoso.onmicrosoft.com).
_TENANT = re.compile(r"[0-9A-Za-z.-]+")

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, AccessTokenInfo


def default_credential(cloud: Cloud, tenant_id: str | None = None) -> Credential:
    """Environment, workload identity (OIDC), managed identity, Azure CLI…, in *tenant_id*.

    Without *tenant_id* each credential uses its own default tenant (the CLI's logged-in
    one). ``AZURE_TOKEN_CREDENTIALS`` narrows the chain (azure-identity reads it itself).
    """
    from azure.identity import DefaultAzureCredential

    kwargs: dict[str, Any] = {"authority": cloud.authority_host}
    if tenant_id:
        kwargs["additionally_allowed_tenants"] = [check_tenant(tenant_id)]
        for credential in ("workload_identity", "shared_cache", "visual_studio_code"):
            kwargs[f"{credential}_tenant_id"] = tenant_id
    return Credential(DefaultAzureCredential(**kwargs), tenant_id)


def check_tenant(tenant_id: str) -> str:
    """*tenant_id* if azure-identity would accept it as a tenant, else InputError."""
    if not _TENANT.fullmatch(tenant_id):
        raise InputError(f"tenant {tenant_id!r} is not a tenant id (a GUID or a domain)")
    return tenant_id


#: A cached token is used until this many seconds before it expires.
_REFRESH_MARGIN = 300


class Credential:
    """A TokenCredential over DefaultAzureCredential: every token asked in *tenant_id*
    (when given), and each token kept until shortly before it expires.

    SDK clients ask without a tenant; this adds it. Each client also caches its own token,
    but a fleet makes a client per workspace: without this cache every one of them would ask
    again (for the Azure CLI, a process started per workspace).
    """

    def __init__(self, inner: Any, tenant_id: str | None = None) -> None:
        self.inner = inner
        self.tenant_id = tenant_id
        self._tokens: dict[tuple[Any, ...], AccessTokenInfo] = {}
        self._lock = threading.Lock()

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  **kwargs: Any) -> AccessToken:
        from azure.core.credentials import AccessToken

        options = {"claims": claims, "tenant_id": tenant_id,
                   "enable_cae": bool(kwargs.get("enable_cae"))}
        info = self.get_token_info(*scopes, options=options)
        return AccessToken(info.token, info.expires_on)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        asked = {k: v for k, v in (options or {}).items() if v}
        asked["tenant_id"] = asked.get("tenant_id") or self.tenant_id
        if not asked["tenant_id"]:
            del asked["tenant_id"]
        key = (scopes, *sorted(asked.items()))
        with self._lock:  # one request per token, not one per waiting thread
            cached = self._tokens.get(key)
            if cached is None or _stale(cached) or "claims" in asked:
                cached = self._tokens[key] = self.inner.get_token_info(*scopes, options=asked)
            return cached

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> Credential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stale(token: AccessTokenInfo) -> bool:
    now = time.time()
    return token.expires_on - now < _REFRESH_MARGIN or bool(
        token.refresh_on and token.refresh_on <= now)


def answering_credential(credential: Any) -> str:
    """The name of the credential in the chain that gave the last token (e.g.
    ``AzureCliCredential``), or the credential's own class name.

    DefaultAzureCredential keeps the one that answered in ``_successful_credential``; no
    public API says which did.
    """
    inner = getattr(credential, "inner", credential)
    answered = getattr(inner, "_successful_credential", None)
    return type(answered if answered is not None else inner).__name__


def token_claims(token: str) -> dict[str, Any]:
    """The claims of an Entra ID access token (its JWT payload), unverified: to say who signed
    in, never to trust. Empty when the token is not a JWT. The token itself goes nowhere."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


@dataclass(frozen=True)
class SignIn:
    """Who a credential signs in as, from its ARM token's claims (never the token)."""

    credential: str
    tenant_id: str | None
    object_id: str | None
    #: A user's sign-in name, or an application's id (service principal, managed identity).
    name: str | None


def sign_in(credential: Any, cloud: Cloud) -> SignIn:
    """Get an ARM token and say who it is for; AuthError when no credential can sign in."""
    from azure.core.exceptions import ClientAuthenticationError

    try:
        token = credential.get_token(cloud.arm_scope)  # every TokenCredential has get_token
    except ClientAuthenticationError as exc:
        raise AuthError(f"cannot get a token: {first_line(exc)}{NO_TOKEN_HINT}") from exc
    claims = token_claims(token.token)
    name = claims.get("upn") or claims.get("unique_name") or claims.get("appid") or claims.get(
        "azp")
    return SignIn(answering_credential(credential), _text(claims.get("tid")),
                  _text(claims.get("oid")), _text(name))


def _text(value: Any) -> str | None:
    return str(value) if value else None
