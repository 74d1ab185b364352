"""Hunts in Defender XDR (Graph runHuntingQuery) and Azure Data Explorer, from the CLI down.

The CLI, our code, the real azure-core pipeline / azure-kusto-data client and the real
DefaultAzureCredential (a fake ``az`` on PATH: tests/identity.py) talk to loopback servers
(tests/xdr_servers.py) that run the posted KQL with duckdb-kql over the bundled sample. The
expected rows are the seed rule's own KQL run by the local engine over the same file.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sentinel_t1190 import api
from sentinel_t1190.azure import credentials
from sentinel_t1190.azure.clouds import resolve_cloud
from sentinel_t1190.azure.graph import DefenderHuntingClient
from sentinel_t1190.render import OutputFormat
from sentinel_t1190.sample import sample_files
from sentinel_t1190.timespan import parse_instant
from tests.xdr_servers import GraphServer, KustoServer, Scripted

CLOCK = "2026-01-15T12:00:00Z"
THROTTLED = {"error": {"code": "TooManyRequests", "message": "The request was throttled: "
                       "the tenant reached 45 calls per minute"}}


def local_rows(cli: Callable[..., Any], timespan: str) -> list[dict[str, Any]]:
    run = cli("hunt", "--local", sample_files()[0], "--timespan", timespan, "--now", CLOCK,
              "--output", "json")
    assert run.code == 0, run.stderr
    rows: list[dict[str, Any]] = run.json()["findings"]
    assert rows, "the sample must hold findings in the window"
    return rows


@pytest.fixture
def graph(identity: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphServer]:
    with GraphServer() as server:
        server.add_csv(sample_files()[0])
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
        monkeypatch.setenv("SENTINEL_GRAPH_ENDPOINT", server.url)
        yield server


@pytest.fixture
def adx(identity: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[KustoServer]:
    with KustoServer() as server:
        server.add_csv(sample_files()[0])
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
        yield server


def defender(cli: Callable[..., Any], *args: str) -> Any:
    return cli("hunt", "--defender", "--now", CLOCK, *args)


def cluster(cli: Callable[..., Any], server: KustoServer, *args: str) -> Any:
    return cli("hunt", "--cluster", server.url, "--database", server.database, "--now", CLOCK,
               *args)


# --- Defender XDR ------------------------------------------------------------------------


def test_defender_hunt_returns_the_seed_rows_and_labels(
        cli: Callable[..., Any], graph: GraphServer, identity: Any) -> None:
    run = defender(cli, "--timespan", "7d", "--output", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["findings"] == local_rows(cli, "7d")
    assert doc["complete"] is True
    assert doc["source"]["kind"] == "defender"
    assert doc["summary"]["total"] == len(doc["findings"])
    # the window went in day slices as the requests' Timespan, each with a Graph token
    spans = sorted(q.body["Timespan"].split("/") for q in graph.hunting_queries())
    assert len(spans) == 7
    assert spans[0][0] == "2026-01-08T12:00:00.000000Z"
    assert spans[-1][1] == "2026-01-15T12:00:00.000000Z"
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(q.headers["Authorization"].startswith("Bearer ey")
               for q in graph.hunting_queries())
    assert {r.resource for r in identity.token_requests} == {"https://graph.microsoft.com"}


def test_defender_row_cap_splits_without_loss_or_duplicates(
        cli: Callable[..., Any], graph: GraphServer) -> None:
    # Advanced hunting cuts answers at its cap without an error: an answer that long is
    # split. The real cap is 100,000 rows; here server and client agree on 4.
    graph.row_cap = 4
    cloud = resolve_cloud(graph_endpoint=graph.url)
    sink = io.StringIO()
    with DefenderHuntingClient(cloud, credentials.default_credential(cloud),
                               row_cap=4) as client:
        [result] = api.hunt_defender(lambda _rule: sink, OutputFormat.ndjson, client=client,
                                     timespan="7d", now=parse_instant(CLOCK))
    assert result.complete
    rows = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert rows == local_rows(cli, "7d")
    keys = [(r["Timestamp"], r["DeviceName"], r["ProcessCommandLine"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert len(graph.hunting_queries()) > 2


def test_defender_result_size_400_splits(cli: Callable[..., Any], graph: GraphServer) -> None:
    graph.size_cap = 5  # HTTP 400 "exceeded the allowed result size"
    run = defender(cli, "--timespan", "7d", "--output", "json")
    assert run.code == 0, run.stderr
    assert run.json()["findings"] == local_rows(cli, "7d")
    assert any(q.status == 400 for q in graph.hunting_queries())


def test_defender_429_first_still_succeeds(cli: Callable[..., Any], graph: GraphServer) -> None:
    graph.add_reply(Scripted(429, THROTTLED, {"Retry-After": "0"}))
    run = defender(cli, "--timespan", "7d", "--output", "json")
    assert run.code == 0, run.stderr
    assert run.json()["findings"] == local_rows(cli, "7d")
    statuses = [q.status for q in graph.hunting_queries()]
    assert statuses.count(429) == 1 and statuses.count(200) == 7  # seven day slices


def test_defender_forbidden_names_the_permission(
        cli: Callable[..., Any], graph: GraphServer) -> None:
    graph.add_reply(Scripted(403, {"error": {"code": "Forbidden", "message": "Missing role"}},
                             times=10))
    run = defender(cli, "--timespan", "1d")
    assert run.code == 3
    assert "ThreatHunting.Read.All" in run.stderr
    assert "Traceback" not in run.stderr


def test_defender_refuses_tables_and_windows_it_does_not_have(
        cli: Callable[..., Any], graph: GraphServer) -> None:
    run = defender(cli, "--rule", "sql_injection_in_request", "--timespan", "1d")
    assert run.code == 2
    assert "W3CIISLog" in run.stderr and "--workspace-id" in run.stderr
    run = defender(cli, "--timespan", "45d")
    assert run.code == 2
    assert "30 days" in run.stderr and "--cluster" in run.stderr
    assert graph.hunting_queries() == []


def test_defender_streams_ndjson(cli: Callable[..., Any], graph: GraphServer) -> None:
    run = defender(cli, "--timespan", "7d", "--output", "ndjson")
    assert run.code == 0, run.stderr
    assert [json.loads(line) for line in run.stdout.splitlines()] == local_rows(cli, "7d")


def test_defender_signed_out_is_one_line_exit_3(
        cli: Callable[..., Any], graph: GraphServer, identity: Any) -> None:
    identity.log_out()
    run = defender(cli, "--timespan", "1d")
    assert run.code == 3, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert graph.hunting_queries() == []


# --- Azure Data Explorer -----------------------------------------------------------------


def test_cluster_hunt_returns_the_seed_rows_and_labels(
        cli: Callable[..., Any], adx: KustoServer, identity: Any) -> None:
    run = cluster(cli, adx, "--timespan", "30d", "--output", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["findings"] == local_rows(cli, "30d")
    assert doc["complete"] is True
    assert doc["source"] == {"kind": "adx", "cluster": adx.url, "database": adx.database,
                             "table_map": {}}
    query = adx.queries()[0]
    assert query.body["db"] == adx.database
    assert "servertimeout" in query.body["properties"]
    assert query.headers["Authorization"].startswith("Bearer ey")
    assert identity.token_requests


def test_cluster_row_cap_splits_without_loss_or_duplicates(
        cli: Callable[..., Any], adx: KustoServer) -> None:
    adx.row_cap = 4  # E_QUERY_RESULT_SET_TOO_LARGE past the cap
    run = cluster(cli, adx, "--timespan", "30d", "--output", "json")
    assert run.code == 0, run.stderr
    rows = run.json()["findings"]
    assert rows == local_rows(cli, "30d")
    keys = [(r["Timestamp"], r["DeviceName"], r["ProcessCommandLine"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert len(adx.queries()) > 2


def test_cluster_429_first_still_succeeds(cli: Callable[..., Any], adx: KustoServer) -> None:
    adx.add_reply(Scripted(429, {"error": {"code": "TooManyRequests", "message": "throttled"}},
                           {"Retry-After": "0"}))
    run = cluster(cli, adx, "--timespan", "30d", "--output", "json")
    assert run.code == 0, run.stderr
    assert run.json()["findings"] == local_rows(cli, "30d")
    statuses = [q.status for q in adx.queries()]
    assert statuses.count(429) == 1 and statuses.count(200) == 30  # thirty day slices


def test_cluster_table_map_reads_renamed_archives(
        cli: Callable[..., Any], adx: KustoServer) -> None:
    adx.table = "ArchivedProcessEvents"
    run = cluster(cli, adx, "--timespan", "30d", "--output", "json")
    assert run.code == 4  # the cluster has no DeviceProcessEvents
    assert "SEM0100" in run.stderr or "rejected" in run.stderr
    run = cluster(cli, adx, "--timespan", "30d", "--output", "json",
                  "--table-map", "DeviceProcessEvents=ArchivedProcessEvents")
    assert run.code == 0, run.stderr
    assert run.json()["findings"] == local_rows(cli, "30d")
    assert "ArchivedProcessEvents" in adx.queries()[-1].body["csl"]


@pytest.mark.parametrize("args, message", [
    (("--database", "x"), "--database goes with --cluster"),
    (("--cluster", "https://c.kusto.windows.net"), "--cluster needs --database"),
    (("--cluster", "http://c", "--database", "d"), "https://"),
    (("--defender", "--workspace-id", "11111111-1111-1111-1111-111111111111"), "give one of"),
    (("--defender", "--sample"), "not both"),
    (("--cluster", "https://c", "--database", "d", "--table-map", "x"), "TABLE=CLUSTER_TABLE"),
])
def test_source_option_errors(cli: Callable[..., Any], identity: Any,
                              args: tuple[str, ...], message: str) -> None:
    run = cli("hunt", *args)
    assert run.code == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_defender_5xx_is_retried(cli: Callable[..., Any], graph: GraphServer) -> None:
    graph.add_reply(Scripted(503, {"error": {"code": "ServiceUnavailable", "message": "busy"}},
                             {"Retry-After": "0"}))
    run = defender(cli, "--timespan", "1d", "--output", "json")
    assert run.code == 0, run.stderr
    assert [q.status for q in graph.hunting_queries()] == [503, 200]


@pytest.mark.parametrize("body", [{}, {"schema": []}, {"results": []},
                                  {"schema": "x", "results": [1]}])
def test_defender_malformed_answer_is_a_failure_not_complete(
        cli: Callable[..., Any], graph: GraphServer, body: dict[str, Any]) -> None:
    graph.add_reply(Scripted(200, body, times=5))
    run = defender(cli, "--timespan", "1d", "--output", "json")
    assert run.code == 4, run.stderr
    assert "schema and results" in run.stderr
    assert "Traceback" not in run.stderr


def test_cluster_rejected_query_names_the_database(
        cli: Callable[..., Any], adx: KustoServer) -> None:
    run = cli("hunt", "--cluster", adx.url, "--database", "Nope", "--now", CLOCK,
              "--timespan", "1d")
    assert run.code == 4
    assert "database Nope" in run.stderr and "does not exist" in run.stderr


@pytest.mark.parametrize("source", ["graph", "adx"])
@pytest.mark.parametrize("how", ["env", "flag"])
def test_tokens_come_from_the_tenant_asked_for(
        cli: Callable[..., Any], identity: Any, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest, how: str, source: str) -> None:
    server = request.getfixturevalue(source)
    tenant = "3f0c6e5a-1b2d-4c8e-9a7f-6d5e4c3b2a10"
    identity.guest_of(tenant)
    args: tuple[str, ...] = ("--tenant-id", tenant) if how == "flag" else ()
    if how == "env":
        monkeypatch.setenv("AZURE_TENANT_ID", tenant)
    run = (defender(cli, "--timespan", "1d", *args) if source == "graph"
           else cluster(cli, server, "--timespan", "1d", *args))
    assert run.code == 0, run.stderr
    assert identity.tenants_asked() == {tenant}
