"""A loopback HTTPS server that answers like Azure, for tests through the REAL SDK clients.

Stateful: a PUT then a GET returns what was PUT, so idempotency, drift and deletes are
observable. Response bodies are shaped on shared/reference/azure (securityinsights
2025-12-01/2025-10-01-preview examples, the Logs API examples and recorded errors).

Serves, for every workspace added with :meth:`AzureServer.add_workspace`:

- ARM ``GET  /subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.OperationalInsights/
  workspaces/{w}`` (404 ``ResourceNotFound`` for unknown workspaces);
- ARM ``GET  {workspace}/providers/Microsoft.SecurityInsights/onboardingStates/default``
  (404 unless ``sentinel=True``);
- ARM ``GET {workspace}/providers/Microsoft.Authorization/permissions`` (the caller's
  permissions there, :attr:`Workspace.permissions`: Microsoft Sentinel Contributor's unless
  told otherwise);
- ARM ``GET|PUT|DELETE {workspace}/providers/Microsoft.SecurityInsights/alertRules[/{id}]``
  (PUT answers 201 created / 200 updated, honours ``etag`` with 409, DELETE 200 / 204);
- Logs ``POST /v1/workspaces/{customerId}/query`` for ``<Table> | getschema ...`` (400
  ``BadArgumentError``/``SEM0100`` when the workspace has no such table). A workspace holds,
  unless told otherwise, every table the pack reads with its bundled columns.

Every request must carry ``Authorization: Bearer <JWT>`` for the right audience (ARM or the
Logs API) and, where :attr:`AzureServer.token_tenants` names the subscription's tenant, issued
by that tenant (else ARM's 401s); tokens come from tests/identity.py. Each is recorded in
:attr:`AzureServer.requests`. :meth:`AzureServer.inject` adds a fault hook: a callable
``(Request) -> Reply | None`` consulted before routing (``fail(...)`` builds common ones,
``answer(...)`` malformed or scripted answers).
Subclass and override :meth:`AzureServer.route` to add endpoints (Resource Graph...).

Use: ``with AzureServer(tmp_path) as server:`` then ``server.env`` (SENTINEL_ARM_ENDPOINT,
SENTINEL_LOGS_ENDPOINT, REQUESTS_CA_BUNDLE) or ``server.arm_endpoint``/``server.ca_path``.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme

from sentinel_t1190.rules import load_pack
from sentinel_t1190.schema import known_tables
from tests.identity import jwt_claims

WS_PATH = ("/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.OperationalInsights/"
           "workspaces/{w}")
_WS_RE = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
                    r"Microsoft\.OperationalInsights/workspaces/([^/]+)(/.*)?$", re.I)
_LOGS_RE = re.compile(r"^/v1/workspaces/([^/]+)/query$", re.I)
ARM_AUDIENCE = "https://management.azure.com"
LOGS_AUDIENCE = "https://api.loganalytics.io"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Bytes sent as they are instead of *body* as JSON (malformed answers).
    raw: bytes | None = None


#: The permissions of Microsoft Sentinel Contributor and Reader, as ARM's permissions API
#: (Permissions_ListForResource, 2022-04-01) lists them for a caller holding that role.
CONTRIBUTOR = {"actions": ["Microsoft.Insights/workbooks/*", "Microsoft.SecurityInsights/*",
                           "Microsoft.OperationalInsights/workspaces/analytics/query/action",
                           "Microsoft.OperationalInsights/workspaces/*/read",
                           "Microsoft.Resources/deployments/*"],
               "notActions": ["Microsoft.SecurityInsights/ConfidentialWatchlists/*"],
               "dataActions": [], "notDataActions": []}
READER = {"actions": ["Microsoft.SecurityInsights/*/read",
                      "Microsoft.OperationalInsights/workspaces/analytics/query/action",
                      "Microsoft.OperationalInsights/workspaces/*/read"],
          "notActions": ["Microsoft.SecurityInsights/ConfidentialWatchlists/*"],
          "dataActions": [], "notDataActions": []}


def pack_tables(*without: str) -> dict[str, dict[str, str]]:
    """Every table the bundled pack's rules read, with its bundled schema's columns (what a
    workspace that collects all the pack's data answers to ``getschema``), less *without*."""
    tables = {t for rule in load_pack().rules for t in rule.tables}
    return {name: dict(known_tables()[name].columns) for name in sorted(tables)
            if name not in without}


def error(status: int, code: str, message: str, **headers: str) -> Reply:
    """An ARM-style error reply ``{"error": {"code", "message"}}``."""
    return Reply(status, {"error": {"code": code, "message": message}}, dict(headers))


@dataclass
class Workspace:
    subscription_id: str
    resource_group: str
    name: str
    customer_id: str
    location: str = "westeurope"
    sentinel: bool = True
    #: table -> {column: type}, what ``getschema`` answers.
    tables: dict[str, dict[str, str]] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What ARM's permissions API answers for the caller (one entry per role assignment).
    permissions: list[dict[str, Any]] = field(default_factory=lambda: [CONTRIBUTOR])

    @property
    def path(self) -> str:
        return WS_PATH.format(s=self.subscription_id, g=self.resource_group, w=self.name)

    def edit_rule(self, name: str, **properties: Any) -> None:
        """Change a deployed rule 'behind our back' (as a portal edit would), new etag."""
        rule = self.rules[name.lower()]
        rule["properties"].update(properties)
        rule["etag"] = f'"{uuid.uuid4()}"'


class AzureServer:
    """The server; a context manager that runs it on 127.0.0.1 in a thread."""

    def __init__(self, tmp_path: Path) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_path = tmp_path / "azure-server-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self._ssl)
        self.workspaces: dict[str, Workspace] = {}
        self.requests: list[Request] = []
        #: (request, status answered), in order.
        self.replies: list[tuple[Request, int]] = []
        self.faults: list[Callable[[Request], Reply | None]] = []
        #: subscription (lower case) -> the only tenant whose tokens it accepts (else any:
        #: a Lighthouse-delegated subscription takes the managing tenant's tokens too).
        self.token_tenants: dict[str, str] = {}
        #: The token audiences accepted for ARM and for the Logs API (the public cloud's).
        self.audiences = (ARM_AUDIENCE, LOGS_AUDIENCE)
        #: Property names the service silently drops on PUT (to test the read-back check).
        self.drop_on_write: set[str] = set()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> AzureServer:
        server = self

        class Handler(_Handler):
            azure = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.socket = self._ssl.wrap_socket(self._httpd.socket, server_side=True)
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def arm_endpoint(self) -> str:
        assert self._httpd is not None
        return f"https://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def logs_endpoint(self) -> str:
        return f"{self.arm_endpoint}/v1"

    @property
    def env(self) -> dict[str, str]:
        return {"SENTINEL_ARM_ENDPOINT": self.arm_endpoint,
                "SENTINEL_LOGS_ENDPOINT": self.logs_endpoint,
                "REQUESTS_CA_BUNDLE": str(self.ca_path)}

    # -- state ------------------------------------------------------------------------------

    def add_workspace(self, subscription_id: str = "d0cfe6b2-9ac0-4464-9919-dccaee2e48c0",
                      resource_group: str = "myRg", name: str = "myWorkspace", *,
                      sentinel: bool = True, token_tenant: str | None = None,
                      tables: dict[str, dict[str, str]] | None = None) -> Workspace:
        """A workspace; *tables* defaults to every table the pack reads (:func:`pack_tables`).
        With *token_tenant*, its subscription takes only tokens of that tenant."""
        if token_tenant:
            self.token_tenants[subscription_id.lower()] = token_tenant
        ws = Workspace(subscription_id, resource_group, name, str(uuid.uuid4()),
                       sentinel=sentinel,
                       tables=pack_tables() if tables is None else dict(tables))
        self.workspaces[ws.path.lower()] = ws
        return ws

    def inject(self, fault: Callable[[Request], Reply | None]) -> None:
        self.faults.append(fault)

    def calls(self, method: str | None = None, contains: str = "") -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method)
                and contains.lower() in r.path.lower()]

    @property
    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("PUT", "DELETE", "PATCH")]

    # -- routing ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if not request.headers.get("authorization", "").startswith("Bearer "):
                return error(401, "AuthenticationFailed", "Authentication failed. The "
                             "'Authorization' header is missing.")
            refused = self._check_token(request)
            if refused is not None:
                return refused
            for fault in self.faults:
                reply = fault(request)
                if reply is not None:
                    return reply
            return self.route(request)

    def _check_token(self, request: Request) -> Reply | None:
        """ARM's and the Logs API's 401s for a token of the wrong audience or tenant."""
        claims = jwt_claims(request.headers["authorization"][len("Bearer "):])
        if claims is None:
            return error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        logs = _LOGS_RE.match(request.path) is not None
        audience = self.audiences[1] if logs else self.audiences[0]
        if claims.get("aud") != audience:
            return error(401, "InvalidAuthenticationTokenAudience", "The access token has been "
                         f"obtained for wrong audience or resource '{claims.get('aud')}'. It "
                         f"should exactly match with one of the allowed audiences '{audience}'.")
        match = _WS_RE.match(request.path)
        if match is None and logs:
            customer = _LOGS_RE.match(request.path)
            ws = next((w for w in self.workspaces.values()
                       if customer and w.customer_id == customer.group(1)), None)
            subscription = ws.subscription_id if ws else None
        else:
            subscription = match.group(1) if match else None
        expected = self.token_tenants.get((subscription or "").lower())
        if expected and claims.get("tid") != expected:
            return error(401, "InvalidAuthenticationTokenTenant", "The access token is from "
                         f"the wrong issuer '{claims.get('iss')}'. It must match the tenant "
                         f"'https://sts.windows.net/{expected}/' associated with this "
                         "subscription. Please use the authority (URL) "
                         f"'https://login.windows.net/{expected}' to get the token.")
        return None

    def route(self, request: Request) -> Reply:
        logs = _LOGS_RE.match(request.path)
        if logs and request.method == "POST":
            return self._logs_query(logs.group(1), request.body or {})
        match = _WS_RE.match(request.path)
        if not match:
            return error(404, "NotFound", f"no route for {request.method} {request.path}")
        ws_path = WS_PATH.format(s=match.group(1), g=match.group(2), w=match.group(3))
        ws = self.workspaces.get(ws_path.lower())
        if ws is None:
            return error(404, "ResourceNotFound", "The Resource 'Microsoft.OperationalInsights/"
                         f"workspaces/{match.group(3)}' under resource group "
                         f"'{match.group(2)}' was not found. For more details please go to "
                         "https://aka.ms/ARMResourceNotFoundFix")
        rest = (match.group(4) or "").rstrip("/")
        return self._workspace_route(ws, rest, request)

    def _workspace_route(self, ws: Workspace, rest: str, request: Request) -> Reply:
        si = "/providers/microsoft.securityinsights/"
        if rest == "" and request.method == "GET":
            return Reply(200, {
                "id": ws.path, "name": ws.name, "type": "Microsoft.OperationalInsights/workspaces",
                "location": ws.location,
                "properties": {"customerId": ws.customer_id, "provisioningState": "Succeeded",
                               "sku": {"name": "PerGB2018"}, "retentionInDays": 90}})
        if (rest.lower() == "/providers/microsoft.authorization/permissions"
                and request.method == "GET"):
            return Reply(200, {"value": ws.permissions})
        if rest.lower() == si + "onboardingstates/default" and request.method == "GET":
            if not ws.sentinel:
                return error(404, "NotFound", "Resource 'default' of type 'onboardingStates' "
                             "was not found")
            return Reply(200, {"id": ws.path + rest, "name": "default",
                               "type": "Microsoft.SecurityInsights/onboardingStates",
                               "properties": {"customerManagedKey": False}})
        if not rest.lower().startswith(si + "alertrules"):
            return error(404, "NotFound", f"no route for {request.method} {rest}")
        name = rest[len(si + "alertrules"):].strip("/")
        if not name and request.method == "GET":
            return Reply(200, {"value": list(ws.rules.values())})
        return self._rule(ws, name, request)

    def _rule(self, ws: Workspace, name: str, request: Request) -> Reply:
        key = name.lower()
        current = ws.rules.get(key)
        if request.method == "GET":
            return Reply(200, current) if current else error(
                404, "NotFound", f"Alert rule '{name}' was not found")
        if request.method == "DELETE":
            return Reply(200 if ws.rules.pop(key, None) else 204)
        if request.method != "PUT":
            return error(405, "MethodNotAllowed", request.method)
        body = request.body or {}
        sent_etag = body.get("etag")
        if sent_etag and current and sent_etag != current["etag"]:
            return error(409, "Conflict", "The alert rule was modified by another request "
                         "(etag mismatch). Please retrieve the latest version and try again.")
        if body.get("kind") not in ("Scheduled", "NRT"):
            return error(400, "BadRequest", f"Unsupported alert rule kind {body.get('kind')!r}")
        props = {k: v for k, v in (body.get("properties") or {}).items()
                 if k not in self.drop_on_write}
        # What the real service adds on the way back (GetScheduledAlertRule.json).
        props = {"alertRuleTemplateName": None, **props,
                 "lastModifiedUtc": "2026-11-27T21:00:00Z"}
        stored = {"id": ws.path + "/providers/Microsoft.SecurityInsights/alertRules/" + name,
                  "name": name, "type": "Microsoft.SecurityInsights/alertRules",
                  "kind": body["kind"], "etag": f'"{uuid.uuid4()}"', "properties": props}
        ws.rules[key] = stored
        return Reply(200 if current else 201, stored)

    def _logs_query(self, customer_id: str, body: dict[str, Any]) -> Reply:
        ws = next((w for w in self.workspaces.values() if w.customer_id == customer_id), None)
        if ws is None:
            return Reply(404, {"error": {"message": "The workspace could not be found",
                                         "code": "WorkspaceNotFoundError"}})
        query = str(body.get("query", ""))
        table = query.split("|", 1)[0].strip()
        if "getschema" not in query or table not in ws.tables:
            return Reply(400, {"error": {
                "message": "The request had some invalid properties", "code": "BadArgumentError",
                "correlationId": str(uuid.uuid4()),
                "innererror": {"code": "SemanticError", "message": "A semantic error occurred.",
                               "innererror": {"code": "SEM0100", "message": "'getschema' "
                                              "operator: Failed to resolve table or column "
                                              f"expression named '{table}'"}}}})
        return Reply(200, {"tables": [{
            "name": "PrimaryResult",
            "columns": [{"name": "ColumnName", "type": "string"},
                        {"name": "ColumnType", "type": "string"}],
            "rows": [[c, t] for c, t in ws.tables[table].items()]}]})


def fail(status: int, *, times: int = 1, method: str | None = None, contains: str = "",
         code: str = "Failure", message: str = "failure injected by the test",
         headers: dict[str, str] | None = None) -> Callable[[Request], Reply | None]:
    """A fault answering *status* to the first *times* matching requests (-1: always)."""
    return answer(error(status, code, message, **(headers or {})), times=times, method=method,
                  contains=contains)


def answer(reply: Reply, *, times: int = 1, method: str | None = None,
           contains: str = "") -> Callable[[Request], Reply | None]:
    """A fault answering *reply* (e.g. ``Reply(200, raw=b"{}")``) to the first *times*
    matching requests (-1: always)."""
    left = [times]

    def fault(request: Request) -> Reply | None:
        if (method and request.method != method) or contains.lower() not in request.path.lower():
            return None
        if left[0] == 0:
            return None
        left[0] -= 1
        return reply

    return fault


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many concurrent clients (rollout) must not see refused SYNs


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    azure: AzureServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = Request(self.command, url.path,
                          {k: v[0] for k, v in parse_qs(url.query).items()},
                          {k.lower(): v for k, v in self.headers.items()}, body)
        reply = self.azure.handle(request)
        self.azure.replies.append((request, reply.status))
        data = (reply.raw if reply.raw is not None
                else b"" if reply.body is None else json.dumps(reply.body).encode("utf-8"))
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = _serve


def iter_bearer_tokens(server: AzureServer) -> Iterator[str]:
    """Every bearer token the server received (to prove it never reaches the output)."""
    for request in server.requests:
        value = request.headers.get("authorization", "")
        if value.startswith("Bearer "):
            yield value[len("Bearer "):]
