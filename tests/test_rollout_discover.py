"""--discover: Azure Resource Graph through the real ResourceGraphClient, pages and all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190.azure import resourcegraph
from sentinel_t1190.azure.clouds import resolve_cloud
from sentinel_t1190.azure.credentials import default_credential
from sentinel_t1190.azure.resourcegraph import QueryPacer, discover_workspaces, parse_workspace_id
from sentinel_t1190.deploy import Target
from sentinel_t1190.errors import AuthError, AzureServiceError, InputError
from sentinel_t1190.rules import load_pack
from sentinel_t1190.targets import target_key
from tests.azure_server import Reply, fail
from tests.fleet_server import FleetServer, client_kwargs
from tests.identity import Identity

OWN = "00000000-0000-0000-0000-00000000000a"
DELEGATED = "00000000-0000-0000-0000-00000000000b"  # a customer's, delegated via Lighthouse
HIDDEN = "00000000-0000-0000-0000-00000000000c"  # not visible to the identity
CUSTOMER_TENANT = "dddddddd-0000-0000-0000-000000000000"


@pytest.fixture
def server(tmp_path: Path, identity: Identity) -> Iterator[FleetServer]:
    with FleetServer(tmp_path, page_size=7) as fleet:
        for i in range(10):
            fleet.add_fleet_workspace(OWN, f"rg-{i % 2}", f"soc-{i:02d}")
        fleet.add_fleet_workspace(OWN, "rg-0", "logs-only-1", sentinel=False)
        fleet.add_fleet_workspace(OWN, "rg-1", "logs-only-2", sentinel=False)
        for i in range(8):
            fleet.add_fleet_workspace(DELEGATED, "customer-rg", f"cust-{i:02d}",
                                      tenant_id=CUSTOMER_TENANT)
        for i in range(5):
            fleet.add_fleet_workspace(HIDDEN, "rg", f"hidden-{i:02d}")
        fleet.visible_subscriptions = {OWN, DELEGATED}
        yield fleet


def graph(server: FleetServer) -> Any:
    cloud = resolve_cloud("AzureCloud", arm_endpoint=server.arm_endpoint)
    return resourcegraph.graph_client(default_credential(cloud), cloud, **client_kwargs(server))


def fast_pacer() -> QueryPacer:
    return QueryPacer(sleep=lambda seconds: None)


def test_discovers_sentinel_workspaces_in_every_visible_subscription_across_pages(
        server: FleetServer) -> None:
    with graph(server) as client:
        found = discover_workspaces(client, pacer=fast_pacer())
    names = [t.workspace for t in found]
    assert len(found) == 18
    assert found == sorted(found, key=target_key) and len(set(names)) == 18
    assert {t.subscription_id for t in found} == {OWN, DELEGATED}
    assert not any(n.startswith(("logs-only", "hidden")) for n in names)
    assert Target(DELEGATED, "customer-rg", "cust-03") in found
    assert all(t.tenant_id is None for t in found)  # Lighthouse: the identity's own tenant
    # 18 rows at 7 a page: three POSTs, each after the first carrying the previous token.
    queries = server.graph_queries
    assert len(queries) == 3
    assert "subscriptions" not in queries[0]  # no scope: everything the identity sees
    assert queries[0]["options"]["$top"] == 1000
    assert queries[0]["options"]["resultFormat"] == "objectArray"
    assert "$skipToken" not in queries[0]["options"]
    assert queries[1]["options"]["$skipToken"] and queries[2]["options"]["$skipToken"]
    assert "SecurityInsights(" in queries[0]["query"]
    assert "microsoft.operationsmanagement/solutions" in queries[0]["query"]


def test_subscription_filter_and_a_throttled_page_is_retried(server: FleetServer) -> None:
    server.inject(fail(429, times=1, method="POST", contains="resourcegraph",
                       code="RateLimiting", headers={"Retry-After": "0"}))
    with graph(server) as client:
        found = discover_workspaces(client, subscriptions=[DELEGATED], pacer=fast_pacer())
    assert [t.workspace for t in found] == [f"cust-{i:02d}" for i in range(8)]
    assert server.count(method="POST", contains="resourcegraph", status=429) == 1
    assert server.graph_queries[-1]["subscriptions"] == [DELEGATED]


def test_access_denied_is_an_auth_error(server: FleetServer) -> None:
    server.inject(fail(403, times=-1, contains="resourcegraph", code="AuthorizationFailed",
                       message="no read access"))
    with graph(server) as client, pytest.raises(AuthError, match="403"):
        discover_workspaces(client, pacer=fast_pacer())


def test_rollout_and_status_discover_through_the_cli(
        server: FleetServer, cli: Callable[..., Any], tmp_path: Path) -> None:
    plan = cli("rollout", "--discover", "--dry-run", "--report", str(tmp_path / "p.json"),
               "--output", "json", env=server.env)
    assert plan.code == 0, plan.stderr
    assert plan.json()["summary"]["would-create"] == 18
    assert server.done_writes() == 0
    status = cli("status", "--discover", "--subscription-id", DELEGATED, "--output", "json",
                 env=server.env)
    assert status.code == 1  # nothing deployed yet: every rule missing
    doc = status.json()
    rules = len(load_pack().rules)  # every rule of the pack, in each workspace
    assert doc["summary"]["total"] == 8 and doc["summary"]["rules_missing"] == 8 * rules


def test_nothing_found_is_an_input_error(server: FleetServer, cli: Callable[..., Any]) -> None:
    run = cli("rollout", "--discover", "--subscription-id", HIDDEN.replace("c", "e"),
              env=server.env)
    assert run.code == 2 and "found no Sentinel-enabled workspace" in run.stderr


def test_pacer_keeps_to_fifteen_queries_per_five_seconds_and_obeys_the_quota_header() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = QueryPacer(clock=lambda: now[0], sleep=sleep)
    for _ in range(15):
        pacer.acquire()
    assert slept == []
    now[0] += 1.0
    pacer.acquire()  # the 16th within the window waits for the first to age out
    assert slept == [pytest.approx(4.0)]
    pacer.observe({"x-ms-user-quota-remaining": "0", "x-ms-user-quota-resets-after": "00:00:03"})
    pacer.acquire()
    assert slept[-1] == pytest.approx(3.0)
    pacer.observe({"x-ms-user-quota-remaining": "9", "x-ms-user-quota-resets-after": "00:00:03"})


def test_workspace_ids_are_parsed_strictly() -> None:
    target = parse_workspace_id("/subscriptions/00000000-0000-0000-0000-00000000000A/"
                                "resourceGroups/My-RG/providers/Microsoft.OperationalInsights/"
                                "workspaces/My-WS")
    assert target == Target("00000000-0000-0000-0000-00000000000a", "My-RG", "My-WS")
    with pytest.raises(InputError, match="not a Log Analytics workspace"):
        parse_workspace_id("/subscriptions/x/resourceGroups/g/providers/Microsoft.Compute/"
                           "virtualMachines/vm")


def test_discovery_denied_exits_3_through_the_cli(server: FleetServer,
                                                  cli: Callable[..., Any]) -> None:
    server.inject(fail(403, times=-1, contains="resourcegraph", code="AuthorizationFailed",
                       message="no read access"))
    run = cli("rollout", "--discover", env=server.env)
    assert run.code == 3
    assert run.stderr.startswith("error: Resource Graph: access denied (403)")
    assert "needs Reader on the subscriptions" in run.stderr  # the role, not a generic hint


def test_a_truncated_result_is_an_error_not_a_short_list(server: FleetServer) -> None:
    def truncated(request: Any) -> Reply | None:
        if "resourcegraph" not in request.path.lower():
            return None
        return Reply(200, {"totalRecords": 5000, "count": 1000, "resultTruncated": "true",
                           "facets": [], "data": []})

    server.inject(truncated)
    with graph(server) as client, pytest.raises(AzureServiceError, match="truncated"):
        discover_workspaces(client, pacer=fast_pacer())
