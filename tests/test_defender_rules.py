"""deploy/status/remove --defender: the pack as Defender XDR custom detection rules.

From the CLI through our code, the real azure-core pipeline and the real
DefaultAzureCredential (a fake ``az``: tests/identity.py) to a loopback Graph
(tests/xdr_servers.GraphServer) that keeps detection rules as Graph beta does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import duckdb_kql
import pytest

from sentinel_t1190 import detection_rule
from sentinel_t1190.rules import load_pack
from sentinel_t1190.sample import sample_files
from tests.conftest import assert_schema
from tests.xdr_servers import GraphServer

EXPRESSIBLE = ("web_server_child_process", "web_shell_file_in_web_root")
PICK = [arg for short in EXPRESSIBLE for arg in ("--rule", short)]


@pytest.fixture
def graph(identity: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphServer]:
    with GraphServer() as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
        monkeypatch.setenv("SENTINEL_GRAPH_ENDPOINT", server.url)
        yield server


def ours(graph: GraphServer) -> dict[str, dict[str, Any]]:
    return {detection_rule.rule_id_of(r) or "": r for r in graph.rules.values()
            if detection_rule.rule_id_of(r)}


def test_deploy_creates_then_writes_nothing_then_sees_drift_then_removes(
        cli: Callable[..., Any], graph: GraphServer) -> None:
    foreign = graph.add_foreign_rule("SOC's own detection")
    run = cli("deploy", "--defender", *PICK, "--output", "json")
    assert run.code == 0, run.stderr
    assert [r["action"] for r in run.json()["rules"]] == ["created", "created"]
    assert run.json()["workspace"]["kind"] == "defender"
    assert_schema(run.json(), "deploy")
    deployed = ours(graph)
    assert len(deployed) == 2
    seed = deployed[load_pack().select(["web_server_child_process"])[0].id]
    query = seed["queryCondition"]["queryText"]
    assert "| project Timestamp, DeviceId, ReportId, DeviceName" in query
    assert seed["schedule"]["period"] == "1H"
    template = seed["detectionAction"]["alertTemplate"]
    assert template["severity"] == "high" and template["mitreTechniques"] == ["T1190"]
    assert template["impactedAssets"][0]["identifier"] == "deviceId"
    assert seed["detectionAction"]["responseActions"] == []

    writes = len(graph.rule_writes())
    run = cli("deploy", "--defender", *PICK, "--output", "json")
    assert run.code == 0, run.stderr
    assert [r["action"] for r in run.json()["rules"]] == ["unchanged", "unchanged"]
    assert len(graph.rule_writes()) == writes  # a second deploy writes nothing

    run = cli("status", "--defender", *PICK, "--output", "json")
    assert run.code == 0, run.stderr
    assert [r["state"] for r in run.json()["rules"]] == ["in-sync", "in-sync"]
    graph.edit_rule(seed["id"], {"queryCondition": {"queryText": query.replace(
        '"w3wp.exe", ', "")}, "schedule": {"period": "24H"}})
    run = cli("status", "--defender", *PICK, "--output", "json")
    assert run.code == 1
    assert_schema(run.json(), "status")
    drifted = run.json()["rules"][0]
    assert drifted["state"] == "drifted"
    assert {c["field"] for c in drifted["changes"]} == {"queryCondition.queryText",
                                                        "schedule.period"}
    assert "w3wp.exe" in drifted["changes"][0]["diff"]["unified"]
    assert "not in sync" in run.stderr or "drifted" in run.stderr

    run = cli("deploy", "--defender", *PICK, "--output", "json")
    assert [r["action"] for r in run.json()["rules"]] == ["updated", "unchanged"]
    assert cli("status", "--defender", *PICK).code == 0

    run = cli("remove", "--defender", *PICK, "--yes", "--output", "json")
    assert run.code == 0, run.stderr
    assert [r["action"] for r in run.json()["rules"]] == ["deleted", "deleted"]
    assert_schema(run.json(), "remove")
    assert list(graph.rules) == [foreign]  # someone else's rule is never touched
    run = cli("remove", "--defender", *PICK, "--yes", "--output", "json")
    assert [r["action"] for r in run.json()["rules"]] == ["absent", "absent"]


def test_rules_defender_cannot_run_are_refused_with_the_reason(
        cli: Callable[..., Any], graph: GraphServer) -> None:
    run = cli("deploy", "--defender", "--output", "json")
    assert run.code == 1  # refused rules fail the deploy unless --allow-refused
    actions = {r["short_id"]: (r["action"], r["reason"]) for r in run.json()["rules"]}
    assert actions["sql_injection_in_request"][0] == "refused"
    assert "W3CIISLog" in actions["sql_injection_in_request"][1]
    assert {s for s, (a, _) in actions.items() if a == "created"} >= set(EXPRESSIBLE)
    assert "refused" in run.stderr
    assert cli("deploy", "--defender", "--allow-refused").code == 0


def test_dry_run_writes_nothing_and_isolation_only_when_asked(
        cli: Callable[..., Any], graph: GraphServer) -> None:
    run = cli("deploy", "--defender", *PICK, "--dry-run", "--output", "json")
    assert [r["action"] for r in run.json()["rules"]] == ["would-create", "would-create"]
    assert graph.rule_writes() == []
    run = cli("deploy", "--defender", "--rule", "web_server_child_process", "--isolate-device")
    assert run.code == 0, run.stderr
    assert "isolate" in run.stderr
    [rule] = graph.rules.values()
    assert rule["detectionAction"]["responseActions"][0]["@odata.type"].endswith(
        "isolateDeviceResponseAction")
    assert cli("deploy", "--isolate-device", "-g", "g").code == 2


def test_forbidden_names_the_graph_permission(cli: Callable[..., Any], graph: GraphServer,
                                              identity: Any) -> None:
    identity.log_out()
    run = cli("status", "--defender", "--rule", "web_server_child_process")
    assert run.code == 3
    assert len(run.stderr.strip().splitlines()) == 1


def test_defender_query_returns_the_columns_custom_detections_need() -> None:
    # The variant runs on the local engine over the sample and keeps every seed finding.
    [rule] = load_pack().select(["web_server_child_process"])
    con = duckdb_kql.connect()
    con.execute("CREATE TABLE DeviceProcessEvents AS SELECT * REPLACE (CAST(Timestamp AS "
                f"TIMESTAMP) AS Timestamp) FROM read_csv('{sample_files()[0]}', "
                "header = true, all_varchar = true)")
    query = detection_rule.defender_query(rule).replace("ago(24h)", "datetime(2020-01-01)")
    relation = duckdb_kql.kql(con, query)
    assert relation.columns[:3] == ["Timestamp", "DeviceId", "ReportId"]
    assert "ExploitEvidence" in relation.columns
    assert len(relation.fetchall()) > 30


@pytest.mark.parametrize("frequency, period", [("5m", "1H"), ("1h", "1H"), ("2h", "3H"),
                                               ("12h", "12H"), ("1d", "24H"), ("7d", "24H")])
def test_frequency_rounds_up_to_an_allowed_period(frequency: str, period: str) -> None:
    from dataclasses import replace

    [rule] = load_pack().select(["web_server_child_process"])
    changed = replace(rule, data={**rule.data, "queryFrequency": frequency})
    assert detection_rule.schedule_period(changed) == period


def test_doctor_checks_defender_and_names_the_missing_permission(
        cli: Callable[..., Any], graph: GraphServer) -> None:
    from tests.xdr_servers import Scripted

    graph.add_csv(sample_files()[0])
    run = cli("doctor", "--defender", "--output", "json")
    assert run.code == 0, run.stdout + run.stderr
    checks = {c["check"]: c for c in run.json()["checks"]}
    assert checks["defender hunting"]["status"] == "ok"
    assert checks["defender rules"]["status"] == "ok"
    assert run.json()["cloud"]["graph_endpoint"] == graph.url

    graph.add_reply(Scripted(403, {"error": {"code": "Forbidden", "message": "no role"}},
                             times=5))
    run = cli("doctor", "--defender", "--output", "json")
    assert run.code == 1
    failed = {c["check"]: c for c in run.json()["checks"]}["defender hunting"]
    assert failed["status"] == "failed"
    assert "ThreatHunting.Read.All" in failed["hint"]
