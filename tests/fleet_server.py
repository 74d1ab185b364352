"""The deploy tests' Azure server (tests/azure_server.py), grown into a fleet.

On top of :class:`tests.azure_server.AzureServer` (ARM workspace, onboarding state, alert
rules, Logs ``getschema``; stateful; fault hooks) it adds:

- Resource Graph: ``POST /providers/Microsoft.ResourceGraph/resources`` with ``$top`` /
  ``$skipToken`` pages (shapes of azure-rest-api-specs ResourcesFirstPageQuery.json /
  ResourcesNextPageQuery.json) over the workspaces that have a ``SecurityInsights(<ws>)``
  solution, scoped to the request's ``subscriptions`` or, without them, to every
  subscription the identity sees (:attr:`FleetServer.visible_subscriptions`);
- ``latency``: seconds slept by every request, outside any lock (requests overlap);
- ``arm_budget``: ARM token buckets per subscription, announced in
  ``x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}``, 429 past zero;
- counts over the replies log (:meth:`FleetServer.count`, :meth:`FleetServer.done_writes`);
- :class:`TransientFaults` (seeded 429/503) and :func:`forbidden` (403 for one workspace).
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.azure_server import _WS_RE, AzureServer, Reply, Request, Workspace, error, pack_tables

WsKey = tuple[str, str, str]


def ws_key(request: Request) -> WsKey | None:
    match = _WS_RE.match(request.path)
    return (match[1].lower(), match[2].lower(), match[3].lower()) if match else None


class TransientFaults:
    """About *rate* of requests answered 429 (``Retry-After: 0``) or 503, seeded; never more
    than *max_in_a_row* times running for one method and path, so retries get through."""

    def __init__(self, rate: float = 0.1, *, seed: int = 5, max_in_a_row: int = 2) -> None:
        self.rate = rate
        self.max_in_a_row = max_in_a_row
        self._random = random.Random(seed)
        self._streak: dict[tuple[str, str], int] = {}
        self.injected = 0

    def __call__(self, request: Request) -> Reply | None:
        key = (request.method, request.path)
        if (self._random.random() >= self.rate
                or self._streak.get(key, 0) >= self.max_in_a_row):
            self._streak.pop(key, None)
            return None
        self._streak[key] = self._streak.get(key, 0) + 1
        self.injected += 1
        if self._random.random() < 0.5:
            return error(429, "TooManyRequests", "The request was throttled.",
                         **{"Retry-After": "0"})
        return error(503, "ServiceUnavailable", "The service is temporarily unavailable.")


def forbidden(workspace: WsKey) -> Callable[[Request], Reply | None]:
    """Every request to *workspace* answered 403 AuthorizationFailed (ARM's wording)."""

    def fault(request: Request) -> Reply | None:
        if ws_key(request) != workspace:
            return None
        return error(403, "AuthorizationFailed",
                     "The client 'rollout-sp' with object id '6f1c0e52-0000-0000-0000-"
                     "000000000000' does not have authorization to perform action "
                     "'Microsoft.OperationalInsights/workspaces/read' over scope "
                     f"'{request.path}' or the scope is invalid.")

    return fault


class FleetServer(AzureServer):
    def __init__(self, tmp_path: Path, *, latency: float = 0.0, page_size: int = 1000,
                 arm_budget: tuple[float, float] | None = None) -> None:
        super().__init__(tmp_path)
        self.latency = latency
        self.page_size = page_size
        #: (capacity, refill per second) of each ARM bucket; None: no rate-limit headers.
        self.arm_budget = arm_budget
        #: Subscriptions the identity sees (Resource Graph's default scope); None: all.
        self.visible_subscriptions: set[str] | None = None
        self.tenants: dict[str, str] = {}
        self.graph_queries: list[dict[str, Any]] = []
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._fleet_lock = threading.Lock()

    def __enter__(self) -> FleetServer:
        super().__enter__()
        return self

    def add_fleet_workspace(self, subscription_id: str, resource_group: str, name: str, *,
                            sentinel: bool = True, tenant_id: str | None = None) -> Workspace:
        """A workspace holding every table the pack reads, with the bundled schemas' columns."""
        ws = self.add_workspace(subscription_id, resource_group, name, sentinel=sentinel,
                                tables=pack_tables())
        if tenant_id:
            self.tenants[subscription_id.lower()] = tenant_id
        return ws

    @staticmethod
    def key(ws: Workspace) -> WsKey:
        return (ws.subscription_id.lower(), ws.resource_group.lower(), ws.name.lower())

    # -- what happened ----------------------------------------------------------------------

    def count(self, *, method: str | None = None, contains: str = "",
              workspace: WsKey | None = None, status: int | None = None) -> int:
        with self._fleet_lock:
            return sum(1 for request, code in self.replies
                       if (method is None or request.method == method)
                       and contains.lower() in request.path.lower()
                       and (workspace is None or ws_key(request) == workspace)
                       and (status is None or code == status))

    def touched(self, since: int = 0) -> set[str]:
        """Names of the workspaces that requests since reply number *since* went to."""
        by_customer = {w.customer_id: w.name for w in self.workspaces.values()}
        names: set[str] = set()
        for request, _ in self.replies[since:]:
            key = ws_key(request)
            if key is not None:
                names.add(key[2])
            names.update(name for cid, name in by_customer.items() if cid in request.path)
        return names

    def done_writes(self, workspace: WsKey | None = None) -> int:
        """PUTs and DELETEs that succeeded (to *workspace*, or anywhere)."""
        with self._fleet_lock:
            return sum(1 for request, code in self.replies
                       if request.method in ("PUT", "DELETE") and code < 300
                       and (workspace is None or ws_key(request) == workspace))

    # -- serving ----------------------------------------------------------------------------

    def _spend(self, request: Request) -> tuple[str, float] | None:
        key = ws_key(request)
        if self.arm_budget is None or key is None:
            return None
        capacity, refill = self.arm_budget
        kind = {"GET": "reads", "DELETE": "deletes"}.get(request.method, "writes")
        with self._fleet_lock:
            now = time.monotonic()
            tokens, at = self._buckets.get((key[0], kind), (capacity, now))
            tokens = min(capacity, tokens + (now - at) * refill) - 1
            self._buckets[(key[0], kind)] = (tokens, now)
        return kind, tokens

    def handle(self, request: Request) -> Reply:
        if self.latency:
            time.sleep(self.latency)
        budget = self._spend(request)
        if budget is not None and budget[1] < 0:
            reply = error(429, "TooManyRequests", "The subscription's request budget is spent.",
                          **{"Retry-After": "1"})
        else:
            reply = super().handle(request)
        if budget is not None:
            reply = Reply(reply.status, reply.body, {
                **reply.headers,
                f"x-ms-ratelimit-remaining-subscription-{budget[0]}": str(max(0, int(budget[1])))})
        return reply

    def route(self, request: Request) -> Reply:
        if request.path.lower() == "/providers/microsoft.resourcegraph/resources":
            return self._graph(request.body if isinstance(request.body, dict) else {})
        return super().route(request)

    def _graph(self, body: dict[str, Any]) -> Reply:
        self.graph_queries.append(body)
        query = str(body.get("query", "")).lower()
        if "microsoft.operationalinsights/workspaces" not in query:
            return error(400, "BadRequest", "query not understood by the test server")
        sentinel_only = ("securityinsights(" in query
                         and "microsoft.operationsmanagement/solutions" in query)
        scope = {s.lower() for s in body.get("subscriptions") or []} or self.visible_subscriptions
        rows = [{"id": w.path, "name": w.name, "subscriptionId": w.subscription_id,
                 "resourceGroup": w.resource_group, "location": w.location,
                 "tenantId": self.tenants.get(w.subscription_id.lower(),
                                              "72f988bf-86f1-41af-91ab-2d7cd011db47")}
                for w in sorted(self.workspaces.values(), key=lambda w: w.path.lower())
                if (scope is None or w.subscription_id.lower() in scope)
                and (w.sentinel or not sentinel_only)]
        options = body.get("options") or {}
        token = options.get("$skipToken")
        offset = int(base64.b64decode(token)) if token else 0
        size = min(int(options.get("$top") or 1000), self.page_size)
        page = rows[offset:offset + size]
        doc: dict[str, Any] = {"totalRecords": len(rows), "count": len(page),
                               "resultTruncated": "false", "facets": [], "data": page}
        if offset + size < len(rows):
            doc["$skipToken"] = base64.b64encode(str(offset + size).encode()).decode()
        return Reply(200, doc, {"x-ms-user-quota-remaining": "14",
                                "x-ms-user-quota-resets-after": "00:00:05"})


def client_kwargs(server: AzureServer) -> dict[str, Any]:
    """SDK keywords for tests: trust the server's CA and retry fast."""
    return {"connection_verify": str(server.ca_path), "retry_backoff_factor": 0.01,
            "retry_backoff_max": 0.05}
