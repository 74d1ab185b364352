"""Sign-in for tests, through what azure-identity itself calls (shared/DESIGN.md §6).

Nothing of ours and nothing of the SDK is replaced: ``DefaultAzureCredential`` runs as it
does for users and finds, depending on ``AZURE_TOKEN_CREDENTIALS``,

- a fake ``az`` on PATH (AzureCliCredential): a small Python script answering
  ``az account get-access-token --output json --resource R [--tenant T]`` as the real CLI
  does, or, signed out, failing with the CLI's "Please run 'az login'" message;
- a managed-identity endpoint (ManagedIdentityCredential, App Service ``2019-08-01``
  shape: ``GET IDENTITY_ENDPOINT?api-version=2019-08-01&resource=R`` with the
  ``X-IDENTITY-HEADER`` secret, answering ``access_token``/``expires_on``) on loopback HTTP.

Tokens are JWT-shaped (``tid``, ``oid``, ``aud`` claims, a junk signature), so servers can
check tenant and audience and tests can prove a token never reaches the output. Every token
request is recorded: :attr:`Identity.token_requests` says which credential was asked, for
which resource and in which tenant.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

#: The tenant the fake CLI user and the managed identity live in.
HOME_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
USER_OID = "0c4d7e12-5b3a-4f6e-9d21-7a8b9c0d1e2f"
MI_OID = "5e6f7a8b-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
MI_HEADER = "identity-header-secret"

#: Environment variables that could make azure-identity find a real identity on this machine.
_IDENTITY_ENV_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(tenant: str, oid: str, audience: str, **claims: Any) -> str:
    """An unsigned-looking JWT carrying Entra ID's usual claims (never valid anywhere)."""
    header = {"typ": "JWT", "alg": "RS256", "kid": "test-key"}
    payload = {"aud": audience, "iss": f"https://sts.windows.net/{tenant}/", "tid": tenant,
               "oid": oid, "exp": int(time.time()) + 3600, **claims}
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()),
                     _b64(secrets.token_bytes(32))])


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT-shaped token, or None when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


@dataclass(frozen=True)
class TokenRequest:
    #: "cli" or "managed-identity".
    source: str
    resource: str
    #: The tenant asked for (``az ... --tenant``); None when none was (and always for MI).
    tenant: str | None


_FAKE_AZ = '''#!{python}
"""A fake Azure CLI: only `az account get-access-token`, answering like the real one."""
import datetime, json, sys, time
sys.path.insert(0, {tests!r})
from identity import make_jwt

args = sys.argv[1:]
state = json.loads(open({state!r}, encoding="utf-8").read())
def value(flag):
    return args[args.index(flag) + 1] if flag in args else None
with open({log!r}, "a", encoding="utf-8") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] != ["account", "get-access-token"]:
    sys.stderr.write("ERROR: the fake az only answers 'account get-access-token'\\n")
    sys.exit(2)
if not state["logged_in"]:
    sys.stderr.write("ERROR: Please run 'az login' to setup account.\\n")
    sys.exit(1)
tenant = value("--tenant") or state["tenant"]
if tenant not in state["tenants"]:
    sys.stderr.write("ERROR: AADSTS50020: User account 'analyst@contoso.com' from identity "
                     "provider 'live.com' does not exist in tenant '" + tenant + "'.\\n")
    sys.exit(1)
resource = value("--resource")
expires = int(time.time()) + 3600
print(json.dumps({{
    "accessToken": make_jwt(tenant, state["oid"], resource, upn="analyst@contoso.com"),
    "expiresOn": datetime.datetime.fromtimestamp(expires).strftime("%Y-%m-%d %H:%M:%S.%f"),
    "expires_on": expires, "subscription": "d0cfe6b2-9ac0-4464-9919-dccaee2e48c0",
    "tenant": tenant, "tokenType": "Bearer"}}, indent=2))
'''


class _ManagedIdentityEndpoint:
    """App Service's managed-identity endpoint on loopback HTTP."""

    def __init__(self, tenant: str, log: list[TokenRequest]) -> None:
        self.tenant = tenant
        self.log = log
        self.status = 200
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                status, body = endpoint.answer(query, self.headers.get("X-IDENTITY-HEADER"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/msi/token"

    def answer(self, query: dict[str, str], secret: str | None) -> tuple[int, dict[str, Any]]:
        resource = query.get("resource", "")
        self.log.append(TokenRequest("managed-identity", resource, None))
        if secret != MI_HEADER or query.get("api-version") != "2019-08-01":
            return 400, {"statusCode": 400, "message": "Bad request: header or api-version"}
        if self.status != 200:
            return self.status, {"statusCode": self.status,
                                 "message": "No managed identity assigned to this resource"}
        expires = int(time.time()) + 3600
        return 200, {"access_token": make_jwt(self.tenant, MI_OID, resource, idtyp="app"),
                     "expires_on": str(expires), "resource": resource,
                     "token_type": "Bearer", "client_id": "a1b2c3d4-0000-0000-0000-000000000000"}

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class Identity:
    """The identity of one test: a clean environment and the credential source it picks.

    Starts signed in to the Azure CLI (``AZURE_TOKEN_CREDENTIALS=AzureCliCredential``) as a
    user of :data:`HOME_TENANT` who is also a guest of :attr:`tenants`.
    """

    def __init__(self, root: Path, env: Any) -> None:
        self._env = env  # pytest's MonkeyPatch: every change is undone after the test
        self.root = root
        bin_dir = root / "bin"
        bin_dir.mkdir(parents=True)
        self._state_path = root / "az-state.json"
        self._log_path = root / "az-calls.jsonl"
        self._log_path.touch()
        self._mi_log: list[TokenRequest] = []
        self._mi: _ManagedIdentityEndpoint | None = None
        self.state: dict[str, Any] = {"logged_in": True, "tenant": HOME_TENANT,
                                      "tenants": [HOME_TENANT], "oid": USER_OID}
        self._save()
        az = bin_dir / "az"
        az.write_text(_FAKE_AZ.format(python=sys.executable, tests=str(Path(__file__).parent),
                                      state=str(self._state_path), log=str(self._log_path)),
                      encoding="utf-8")
        az.chmod(0o755)
        for name in list(os.environ):
            if name.upper().startswith(_IDENTITY_ENV_PREFIXES):
                env.delenv(name)
        env.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        env.setenv("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential")

    def _save(self) -> None:
        self._state_path.write_text(json.dumps(self.state), encoding="utf-8")

    # -- the CLI user -------------------------------------------------------------------------

    def guest_of(self, *tenants: str) -> None:
        """The CLI user can also get tokens in *tenants* (``az ... --tenant``)."""
        self.state["tenants"] = [*self.state["tenants"], *tenants]
        self._save()

    def log_out(self) -> None:
        self.state["logged_in"] = False
        self._save()

    # -- managed identity -----------------------------------------------------------------------

    def use_managed_identity(self, tenant: str = HOME_TENANT) -> None:
        """Sign in with an App Service managed identity of *tenant* instead of the CLI."""
        if self._mi is None:
            self._mi = _ManagedIdentityEndpoint(tenant, self._mi_log)
        self._env.setenv("IDENTITY_ENDPOINT", self._mi.url)
        self._env.setenv("IDENTITY_HEADER", MI_HEADER)
        self._env.setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")

    def managed_identity_fails(self, status: int = 400) -> None:
        assert self._mi is not None
        self._mi.status = status

    def close(self) -> None:
        if self._mi is not None:
            self._mi.close()

    # -- what was asked -------------------------------------------------------------------------

    @property
    def token_requests(self) -> list[TokenRequest]:
        requests = list(self._mi_log)
        for line in self._log_path.read_text(encoding="utf-8").splitlines():
            args = json.loads(line)
            value = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
            requests.append(TokenRequest("cli", value.get("--resource", ""),
                                         value.get("--tenant")))
        return requests

    def tenants_asked(self) -> set[str | None]:
        return {r.tenant for r in self.token_requests}


@contextmanager
def signed_in(root: Path) -> Iterator[Identity]:
    """An :class:`Identity` outside a test (benchmarks): this process's environment is set
    for it and restored afterwards."""
    env = pytest.MonkeyPatch()
    identity = Identity(root, env)
    try:
        yield identity
    finally:
        identity.close()
        env.undo()
