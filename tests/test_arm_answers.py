"""Malformed or hostile ARM and Resource Graph answers, through the real SDK clients against
the loopback fleet server: a named AzureServiceError (exit 4) for that target, never a
traceback, never a silent empty result; Retry-After past the cap fails in bounded time; paging
that never ends is detected (issue 10, item 3)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sentinel_t1190 as st
from sentinel_t1190.azure import arm, resourcegraph
from sentinel_t1190.azure.clouds import resolve_cloud
from sentinel_t1190.azure.credentials import default_credential
from sentinel_t1190.azure.resourcegraph import QueryPacer, discover_workspaces
from sentinel_t1190.deploy import Target
from sentinel_t1190.errors import AzureServiceError, ExitCode
from tests.azure_server import Reply, Request, Workspace, answer, error
from tests.fleet_server import FleetServer, client_kwargs
from tests.identity import Identity

SUB = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
def server(tmp_path: Path, identity: Identity) -> Iterator[FleetServer]:
    with FleetServer(tmp_path) as fleet:
        yield fleet


@pytest.fixture
def ws(server: FleetServer) -> Workspace:
    return server.add_fleet_workspace(SUB, "rg", "ws-one")


def workspace(server: FleetServer, ws: Workspace, **kwargs: Any) -> arm.SentinelWorkspaceClient:
    cloud = resolve_cloud("AzureCloud", arm_endpoint=server.arm_endpoint,
                          logs_endpoint=server.logs_endpoint)
    return arm.workspace_client(default_credential(cloud), cloud, ws.subscription_id,
                                ws.resource_group, ws.name, **{**client_kwargs(server), **kwargs})


RULE = {"kind": "Scheduled", "properties": {"displayName": "x"}}
SCHEMA_COLUMNS = [{"name": "ColumnName", "type": "string"},
                  {"name": "ColumnType", "type": "string"}]


def schema(columns: list[dict[str, str]], rows: list[list[Any]]) -> Reply:
    return Reply(200, {"tables": [{"name": "PrimaryResult", "columns": columns,
                                   "rows": rows}]})


CALLS: dict[str, Callable[[arm.SentinelWorkspaceClient], Any]] = {
    "get": lambda c: c.get_rule("abc"),
    "list": lambda c: c.list_rules(),
    "put": lambda c: c.put_rule("abc", RULE),
    "delete": lambda c: c.delete_rule("abc"),
    "workspace": lambda c: c.workspace_info(),
    "onboarding": lambda c: c.sentinel_onboarded(),
    "getschema": lambda c: c.table_schema("DeviceProcessEvents"),
}
#: (call, method, path part, answer)
MALFORMED: dict[str, tuple[str, str, str, Reply]] = {
    "get: empty body": ("get", "GET", "alertRules/abc", Reply(200, raw=b"")),
    "get: {}": ("get", "GET", "alertRules/abc", Reply(200, raw=b"{}")),
    "get: null": ("get", "GET", "alertRules/abc", Reply(200, raw=b"null")),
    "get: an array": ("get", "GET", "alertRules/abc", Reply(200, raw=b"[1]")),
    "get: HTML": ("get", "GET", "alertRules/abc", Reply(200, raw=b"<html>proxy</html>")),
    "get: properties not an object": ("get", "GET", "alertRules/abc",
                                      Reply(200, {"kind": "Scheduled", "properties": [1]})),
    "put: empty body": ("put", "PUT", "alertRules/abc", Reply(200, raw=b"")),
    "put: {}": ("put", "PUT", "alertRules/abc", Reply(201, raw=b"{}")),
    "delete: HTML": ("delete", "DELETE", "alertRules/abc", Reply(200, raw=b"<html>")),
    "list: empty body": ("list", "GET", "alertRules", Reply(200, raw=b"")),
    "list: null": ("list", "GET", "alertRules", Reply(200, raw=b"null")),
    "list: an array": ("list", "GET", "alertRules", Reply(200, raw=b"[1]")),
    "list: value not a list": ("list", "GET", "alertRules", Reply(200, {"value": "x"})),
    "list: value of numbers": ("list", "GET", "alertRules", Reply(200, {"value": [1]})),
    "list: nextLink a number": ("list", "GET", "alertRules",
                                Reply(200, {"value": [], "nextLink": 5})),
    "list: nextLink to another host": (
        "list", "GET", "alertRules",
        Reply(200, {"value": [], "nextLink": "https://attacker.example/steal?x=1"})),
    "workspace: empty body": ("workspace", "GET", "workspaces/ws-one", Reply(200, raw=b"")),
    "workspace: {}": ("workspace", "GET", "workspaces/ws-one", Reply(200, raw=b"{}")),
    "workspace: an array": ("workspace", "GET", "workspaces/ws-one", Reply(200, raw=b"[]")),
    "workspace: customerId not a GUID": (
        "workspace", "GET", "workspaces/ws-one",
        Reply(200, {"properties": {"customerId": "../../x"}})),
    "onboarding: empty body": ("onboarding", "GET", "onboardingStates", Reply(200, raw=b"")),
    "getschema: one column": ("getschema", "POST", "/query",
                              schema(SCHEMA_COLUMNS[:1], [["Timestamp"]])),
    "getschema: ragged row": ("getschema", "POST", "/query",
                              schema(SCHEMA_COLUMNS, [["Timestamp", "datetime"], ["x"]])),
    "getschema: a number for a type": ("getschema", "POST", "/query",
                                       schema(SCHEMA_COLUMNS, [["Timestamp", 5]])),
    "getschema: {}": ("getschema", "POST", "/query", Reply(200, raw=b"{}")),
    "getschema: no tables": ("getschema", "POST", "/query", Reply(200, {"tables": []})),
    "getschema: empty body": ("getschema", "POST", "/query", Reply(200, raw=b"")),
}


@pytest.mark.parametrize("call,method,where,reply", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_arm_answer_is_a_named_service_error(
        server: FleetServer, ws: Workspace, call: str, method: str, where: str,
        reply: Reply) -> None:
    server.inject(answer(reply, times=-1, method=method, contains=where))
    with workspace(server, ws) as client, \
            pytest.raises(AzureServiceError, match="unreadable answer from Azure") as info:
        CALLS[call](client)
    assert type(info.value) is AzureServiceError and info.value.exit_code == ExitCode.SERVICE
    assert "ws-one" in str(info.value)  # names the target
    assert not any("attacker" in r.headers.get("host", "") for r in server.requests)


def _looping_pages(server: FleetServer, ws: Workspace, cycle: int) -> Callable[
        [Request], Reply | None]:
    """Alert rule pages whose nextLink goes 1 -> 2 -> ... -> *cycle* -> 1 again."""
    base = (f"{server.arm_endpoint}{ws.path}/providers/Microsoft.SecurityInsights/alertRules"
            f"?api-version={st.alert_rule.API_VERSION}")

    def fault(request: Request) -> Reply | None:
        if request.method != "GET" or not request.path.lower().endswith("/alertrules"):
            return None
        page = int(request.query.get("page", "1"))
        following = page % cycle + 1
        link = base if following == 1 else f"{base}&page={following}"
        return Reply(200, {"value": [], "nextLink": link})

    return fault


@pytest.mark.parametrize("cycle", [1, 3], ids=["nextLink to itself", "nextLink cycle"])
def test_paging_that_never_ends_is_detected(server: FleetServer, ws: Workspace,
                                            cycle: int) -> None:
    server.inject(_looping_pages(server, ws, cycle))
    with workspace(server, ws) as client, \
            pytest.raises(AzureServiceError, match="paging would never end"):
        client.list_rules()
    assert len(server.calls("GET", "/alertRules")) == cycle


def test_pages_are_followed_and_joined(server: FleetServer, ws: Workspace) -> None:
    for name in ("a", "b", "c"):
        ws.rules[name] = {"name": name, "kind": "Scheduled", "properties": {"n": name}}
    first = Reply(200, {"value": [ws.rules["a"]], "nextLink": (
        f"{server.arm_endpoint}{ws.path}/providers/Microsoft.SecurityInsights/alertRules"
        f"?api-version={st.alert_rule.API_VERSION}&page=2")})
    server.inject(answer(first, method="GET", contains="/alertRules"))
    with workspace(server, ws) as client:
        assert [r["name"] for r in client.list_rules()] == ["a", "a", "b", "c"]


# --- Retry-After -----------------------------------------------------------------------------


def test_retry_after_past_the_cap_fails_the_target_at_once(server: FleetServer,
                                                           ws: Workspace) -> None:
    server.inject(lambda r: error(429, "TooManyRequests", "slow down", **{"Retry-After": "3600"}))
    started = time.monotonic()
    with workspace(server, ws, retry_total=3) as client, \
            pytest.raises(AzureServiceError, match="asked to wait 3600 s") as info:
        client.list_rules()
    assert time.monotonic() - started < 30
    assert "--max-retry-after" in str(info.value) and "ws-one" in str(info.value)
    assert len(server.requests) == 1  # not retried


def test_retry_after_within_the_cap_is_waited_and_retried(server: FleetServer,
                                                          ws: Workspace) -> None:
    server.inject(answer(error(429, "TooManyRequests", "slow down", **{"Retry-After": "1"}),
                         contains="/alertRules"))
    started = time.monotonic()
    with workspace(server, ws, max_retry_after=1.5) as client:
        assert client.list_rules() == []
    assert time.monotonic() - started >= 1.0
    assert len(server.calls("GET", "/alertRules")) == 2


def test_a_rollout_throttled_for_an_hour_at_one_target_fails_only_that_target(
        server: FleetServer, tmp_path: Path) -> None:
    slow = server.add_fleet_workspace(SUB, "rg", "ws-throttled")
    fine = server.add_fleet_workspace(SUB, "rg", "ws-fine")
    server.inject(lambda r: error(429, "TooManyRequests", "slow down",
                                  **{"Retry-After": "3600"}) if "ws-throttled" in r.path
                  else None)
    started = time.monotonic()
    report = st.run_rollout(
        [Target(SUB, "rg", w.name) for w in (slow, fine)],
        credential=default_credential(resolve_cloud()),
        arm_endpoint=server.arm_endpoint, logs_endpoint=server.logs_endpoint,
        report_path=tmp_path / "report.json", max_retry_after=60, **client_kwargs(server))
    assert time.monotonic() - started < 60
    by_name = {t.target.workspace: t for t in report.targets}
    assert by_name["ws-fine"].status.value == "created"
    failed = by_name["ws-throttled"]
    assert failed.status.value == "failed"
    assert "asked to wait 3600 s" in (failed.error or "")


# --- Resource Graph --------------------------------------------------------------------------


def graph(server: FleetServer, **kwargs: Any) -> Any:
    cloud = resolve_cloud("AzureCloud", arm_endpoint=server.arm_endpoint)
    return resourcegraph.graph_client(default_credential(cloud), cloud,
                                      **{**client_kwargs(server), **kwargs})


GRAPH = "/providers/Microsoft.ResourceGraph/resources"
GRAPH_MALFORMED = {
    "empty body": Reply(200, raw=b""),
    "{}": Reply(200, raw=b"{}"),
    "HTML": Reply(200, raw=b"<html>"),
    "data a table": Reply(200, {"data": {"columns": [], "rows": []}, "count": 0}),
    "a row without an id": Reply(200, {"data": [{"name": "ws"}], "count": 1}),
    "a row that is no object": Reply(200, {"data": ["ws"], "count": 1}),
    "an id that is no workspace": Reply(200, {"data": [{"id": "/subscriptions/x"}]}),
}


@pytest.mark.parametrize("reply", GRAPH_MALFORMED.values(), ids=GRAPH_MALFORMED.keys())
def test_a_malformed_resource_graph_answer_is_an_error_not_a_short_fleet(
        server: FleetServer, ws: Workspace, reply: Reply) -> None:
    server.inject(answer(reply, times=-1, contains=GRAPH))
    with graph(server) as client, pytest.raises(AzureServiceError, match="Resource Graph"):
        discover_workspaces(client, pacer=QueryPacer(sleep=lambda s: None))


def test_resource_graph_retry_after_past_the_cap_fails_at_once(server: FleetServer,
                                                               ws: Workspace) -> None:
    server.inject(answer(error(429, "RateLimiting", "slow", **{"Retry-After": "3600"}),
                         times=-1, contains=GRAPH))
    started = time.monotonic()
    with graph(server, max_retry_after=10) as client, \
            pytest.raises(AzureServiceError, match="asked to wait 3600 s"):
        discover_workspaces(client, pacer=QueryPacer(sleep=lambda s: None), max_wait=10)
    assert time.monotonic() - started < 30 and len(server.calls("POST", GRAPH)) == 1


def test_a_quota_reset_past_the_cap_is_not_waited_for() -> None:
    slept: list[float] = []
    pacer = QueryPacer(clock=lambda: 100.0, sleep=slept.append)
    pacer.observe({"x-ms-user-quota-remaining": "0",
                   "x-ms-user-quota-resets-after": "01:00:00"})
    with pytest.raises(AzureServiceError, match="resets in 3600 s"):
        pacer.acquire(max_wait=120)
    assert slept == []
