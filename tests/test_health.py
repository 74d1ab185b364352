"""`health` over recorded SentinelHealth / SecurityAlert / SecurityIncident rows.

The loopback Logs API runs the posted KQL with duckdb-kql over rows shaped like the real
tables (columns from the Microsoft Learn table references, see docs/health.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190 import detection
from sentinel_t1190.health import AUTO_DISABLED_REASON
from sentinel_t1190.rules import load_pack
from tests.identity import Identity
from tests.logs_server import LogsServer

CLOCK = "2026-03-01T12:00:00Z"
WS1 = "6a1b2c3d-0000-4000-8000-00000000aa01"
WS2 = "6a1b2c3d-0000-4000-8000-00000000aa02"
SEED = detection.RULE_ID
WEB_SHELL = "e7c48b62-1115-4cc1-8814-929c734334ff"
LOG4SHELL = "93f21a3b-92d8-4f8f-8cde-53f878f0bf3d"
OTHER = "11111111-2222-4333-8444-555555555555"  # a rule that is not the pack's
RESOURCE = ("/subscriptions/d0cfe6b2-9ac0-4464-9919-dccaee2e48c0/resourceGroups/rg/providers/"
            "Microsoft.OperationalInsights/workspaces/law/providers/"
            "Microsoft.SecurityInsights/alertRules/")


def values(columns: str, rows: list[tuple[Any, ...]]) -> str:
    def literal(value: Any) -> str:
        if value is None:
            return "NULL"
        return "'" + str(value).replace("'", "''") + "'"

    body = ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)
    return f"SELECT * FROM (VALUES {body}) t({columns})"


def health_rows() -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for day in range(1, 9):  # 8 successful runs of the seed rule, id in upper case
        rows.append((f"2026-02-{day + 10:02d} 10:00:00", SEED.upper(), "Success", ""))
    for day in (12, 15):
        rows.append((f"2026-02-{day:02d} 11:00:00", SEED, "Failure",
                     "The query execution timed out."))
    rows.append(("2026-01-02 10:00:00", SEED, "Failure", "outside the 30-day window"))
    rows.append(("2026-02-20 10:00:00", WEB_SHELL, "Success", ""))
    rows.append(("2026-02-21 10:00:00", WEB_SHELL, "Failure",
                 "A table referenced in the query wasn't found."))
    rows.append(("2026-02-22 10:00:00", WEB_SHELL, "Failure", AUTO_DISABLED_REASON))
    rows.append(("2026-02-22 10:00:00", OTHER, "Failure", "not ours"))
    return [(f"{t}", "Analytics Rule", "Scheduled", RESOURCE + rule, rule.split("-")[0],
             status, reason, json.dumps({"RuleId": rule.lower()}))
            for t, rule, status, reason in rows]


def alert(at: str, alert_id: str, *rules: str) -> tuple[Any, ...]:
    props = {"Analytic Rule Ids": json.dumps(list(rules)), "Analytic Rule Name": "x",
             "Query Period": "01:00:00"}
    return (at, alert_id, "ASI Scheduled Alerts", "Azure Sentinel", json.dumps(props))


def incident(at: str, number: int, status: str, classification: str, *rules: str
             ) -> tuple[Any, ...]:
    return (at, number, status, classification, json.dumps(list(rules)))


ALERTS = [
    alert("2026-02-11 10:01:00", "a1", SEED),
    alert("2026-02-11 10:30:00", "a1", SEED),  # the same alert again (status change)
    alert("2026-02-12 10:01:00", "a2", SEED.upper()),
    alert("2026-02-13 10:01:00", "a3", OTHER, SEED),
    alert("2026-02-13 10:01:00", "a4", OTHER),
    alert("2026-01-13 10:01:00", "a0", SEED),  # outside the window
    alert("2026-02-20 10:01:00", "w1", WEB_SHELL),
]
INCIDENTS = [
    incident("2026-02-11 10:02:00", 1, "New", "", SEED),
    incident("2026-02-11 12:00:00", 1, "Active", "", SEED),
    incident("2026-02-12 09:00:00", 1, "Closed", "TruePositive", SEED),
    incident("2026-02-12 10:02:00", 2, "Closed", "FalsePositive", SEED),
    incident("2026-02-14 10:02:00", 2, "Closed", "BenignPositive", SEED),  # reclassified
    incident("2026-02-13 10:02:00", 3, "New", "", SEED),
    incident("2026-02-13 11:00:00", 4, "Closed", "Undetermined", SEED),
    incident("2026-02-20 10:02:00", 5, "Closed", "TruePositive", WEB_SHELL, SEED),
    incident("2026-02-20 10:02:00", 6, "Closed", "FalsePositive", OTHER),
]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, identity: Identity) -> Iterator[LogsServer]:
    with LogsServer() as srv:
        srv.add_table(WS1, "SentinelHealth", values(
            "TimeGenerated, SentinelResourceType, SentinelResourceKind, SentinelResourceId, "
            "SentinelResourceName, Status, Reason, ExtendedProperties",
            health_rows()).replace("SELECT *", "SELECT * REPLACE (CAST(TimeGenerated AS "
                                   "TIMESTAMP) AS TimeGenerated)"))
        for ws in (WS1, WS2):
            srv.add_table(ws, "SecurityAlert", values(
                "TimeGenerated, SystemAlertId, ProviderName, ProductName, ExtendedProperties",
                ALERTS).replace("SELECT *", "SELECT * REPLACE (CAST(TimeGenerated AS "
                                "TIMESTAMP) AS TimeGenerated)"))
        srv.add_table(WS1, "SecurityIncident", values(
            "TimeGenerated, IncidentNumber, Status, Classification, RelatedAnalyticRuleIds",
            INCIDENTS).replace("SELECT *", "SELECT * REPLACE (CAST(TimeGenerated AS TIMESTAMP) "
                               "AS TimeGenerated, CAST(IncidentNumber AS INTEGER) AS "
                               "IncidentNumber, CAST(RelatedAnalyticRuleIds AS JSON) AS "
                               "RelatedAnalyticRuleIds)"))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", srv.ca_path)
        yield srv


def health(cli: Callable[..., Any], server: LogsServer, *args: str) -> Any:
    return cli("health", "--now", CLOCK, *args,
               env={"SENTINEL_LOGS_ENDPOINT": server.url, "REQUESTS_CA_BUNDLE": server.ca_path})


def rules_of(document: dict[str, Any], workspace: str) -> dict[str, dict[str, Any]]:
    [entry] = [w for w in document["workspaces"] if w["workspace"]["workspace_id"] == workspace]
    return {r["id"]: r for r in entry["rules"]}


def test_runs_failures_alerts_and_incidents_per_rule(server: LogsServer,
                                                     cli: Callable[..., Any]) -> None:
    result = health(cli, server, "--workspace-id", WS1, "--output", "json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["window"] == {"start": "2026-01-30T12:00:00Z", "end": CLOCK}
    rules = rules_of(document, WS1)
    seed = rules[SEED]
    assert (seed["runs"], seed["failures"], seed["state"]) == (10, 2, "healthy")
    assert seed["last_run"] == "2026-02-18T10:00:00Z"
    assert seed["last_failure"] == "2026-02-15T11:00:00Z"
    assert seed["failure_reasons"] == [{"reason": "The query execution timed out.",
                                        "count": 2}]
    assert seed["alerts"] == 3
    assert seed["incidents"] == {"total": 5, "true_positive": 2, "false_positive": 0,
                                 "benign_positive": 1, "undetermined": 1, "open": 1}
    assert seed["precision"] == round(2 / 3, 4)
    assert seed["alerts_per_day"] == 0.1
    assert seed["flags"] == []

    web_shell = rules[WEB_SHELL]
    assert (web_shell["runs"], web_shell["failures"]) == (3, 2)
    assert web_shell["state"] == "auto-disabled" and "auto-disabled" in web_shell["flags"]
    assert web_shell["alerts"] == 1
    assert web_shell["incidents"]["true_positive"] == 1 and web_shell["precision"] == 1.0

    log4shell = rules[LOG4SHELL]
    assert (log4shell["runs"], log4shell["state"], log4shell["alerts"]) == (0, "not-running", 0)
    assert log4shell["precision"] is None
    assert OTHER not in rules


def test_a_workspace_without_health_monitoring_says_so(server: LogsServer,
                                                       cli: Callable[..., Any]) -> None:
    result = health(cli, server, "--workspace-id", WS1, "--workspace-id", WS2,
                    "--output", "json")
    assert result.code == 0, result.stderr
    [entry] = [w for w in result.json()["workspaces"]
               if w["workspace"]["workspace_id"] == WS2]
    assert entry["workspace"]["health_monitoring"] is False
    assert {r["state"] for r in entry["rules"]} == {"unknown"}
    assert rules_of(result.json(), WS2)[SEED]["alerts"] == 3
    assert "health monitoring is not enabled" in result.stderr
    assert "no SecurityIncident table" in result.stderr


def test_fail_on_unhealthy_and_noisy(server: LogsServer, cli: Callable[..., Any]) -> None:
    only_seed = ("--workspace-id", WS1, "--rule", "web_server_child_process")
    assert health(cli, server, *only_seed, "--fail-on-unhealthy").code == 0
    noisy = health(cli, server, *only_seed, "--noisy-alerts-per-day", "0.05",
                   "--fail-on-unhealthy", "--output", "json")
    assert noisy.code == 1
    assert rules_of(noisy.json(), WS1)[SEED]["flags"] == ["noisy"]
    everything = health(cli, server, "--workspace-id", WS1, "--fail-on-unhealthy",
                        "--output", "json")
    assert everything.code == 1
    assert rules_of(everything.json(), WS1)[WEB_SHELL]["flags"] == ["auto-disabled"]


def test_markdown_and_table_show_every_rule(server: LogsServer, cli: Callable[..., Any]) -> None:
    markdown = health(cli, server, "--workspace-id", WS1, "--output", "markdown")
    assert markdown.code == 0
    rows = [line.split(" | ") for line in markdown.stdout.splitlines()
            if line.startswith("| ")]
    assert len(rows) == 1 + len(load_pack().rules)  # the header and every rule of the pack
    [seed] = [r for r in rows if r[0] == "| Web server process spawned a shell or attacker tool "
              "\\(T1190\\)"]
    assert seed[1:4] == ["healthy", "10", "2"] and seed[13] == "67\\%"
    table = health(cli, server, "--workspace-id", WS1)
    assert table.code == 0 and "timed out" in table.stdout


def test_bad_workspace_id_is_a_usage_error(server: LogsServer, cli: Callable[..., Any]) -> None:
    result = health(cli, server, "--workspace-id", "law-sentinel")
    assert result.code == 2 and result.stderr.startswith("error: ")


def test_a_fleet_from_targets_finds_each_workspace_id_through_arm(
        server: LogsServer, cli: Callable[..., Any], tmp_path: Path) -> None:
    from tests.azure_server import AzureServer

    with AzureServer(tmp_path) as arm:
        known = arm.add_workspace(name="law-health")
        missing = arm.add_workspace(name="law-gone")
        arm.workspaces.pop(missing.path.lower())  # deleted since the inventory was written
        # the Logs API knows the workspace by the customerId ARM reports for it
        server.workspaces[known.customer_id] = server.workspaces.pop(WS1)
        server.tables[known.customer_id] = server.tables.pop(WS1)
        targets = tmp_path / "targets.csv"
        targets.write_text("subscription_id,resource_group,workspace\n"
                           f"{known.subscription_id},{known.resource_group},{known.name}\n"
                           f"{missing.subscription_id},{missing.resource_group},{missing.name}\n")
        bundle = tmp_path / "ca-bundle.pem"
        bundle.write_text(Path(server.ca_path).read_text() + arm.ca_path.read_text())
        result = cli("health", "--now", CLOCK, "--targets", str(targets), "--output", "json",
                     "--fail-on-unhealthy",
                     env={"SENTINEL_ARM_ENDPOINT": arm.arm_endpoint,
                          "SENTINEL_LOGS_ENDPOINT": server.url,
                          "REQUESTS_CA_BUNDLE": str(bundle)})
    assert result.code == 1, result.stderr
    found, gone = result.json()["workspaces"]
    assert found["workspace"] == {"subscription_id": known.subscription_id,
                                  "resource_group": known.resource_group,
                                  "workspace": "law-health", "workspace_id": known.customer_id,
                                  "health_monitoring": True}
    assert {r["id"]: r["runs"] for r in found["rules"]}[SEED] == 10
    assert gone["error"] and gone["rules"] == []
    assert "law-gone" in result.stderr
