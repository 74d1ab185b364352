"""`test`: fixture cases through the local engine with the deployed KQL."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190 import api, detection
from sentinel_t1190.compile import deployed_query
from sentinel_t1190.lineage import table_uses
from sentinel_t1190.rules import Pack, Rule, load_pack
from sentinel_t1190.ruletest import (
    Case,
    CaseResult,
    fixtures_path,
    load_cases,
    run_case,
    unseen_events,
)

ROOT = Path(__file__).resolve().parent.parent


def test_pack_passes_with_a_positive_and_negative_case_per_rule(cli: Callable) -> None:
    run = cli("test", "-o", "json")
    assert run.code == 0, run.stdout
    doc = run.json()
    assert doc["passed"] is True
    assert doc["summary"]["rules"] == 5
    assert doc["summary"]["cases_failed"] == 0
    for rule in doc["rules"]:
        kinds = {c["kind"] for c in rule["cases"]}
        assert kinds == {"positive", "negative"}, rule["rule"]
        assert all(c["passed"] for c in rule["cases"])
    seed = next(r for r in doc["rules"] if r["rule"]["id"] == detection.RULE_ID)
    labels = {e.get("ExploitEvidence") for c in seed["cases"] for e in c["expected"]}
    assert set(detection.LABELS) <= labels


def test_rule_option_selects_one_rule(cli: Callable) -> None:
    run = cli("test", "--rule", "sql_injection_in_request", "-o", "json")
    assert run.code == 0
    assert [r["rule"]["id"] for r in run.json()["rules"]] == [
        "427d2c25-b200-43f2-8d98-fc3686ec3258"]


def _copy(tmp_path: Path) -> Path:
    for folder in ("analytics", "hunting"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path / "analytics" / "fixtures" / "web_server_child_process.yaml"


def test_changed_expectation_fails_with_a_diff(tmp_path: Path) -> None:
    fixtures = _copy(tmp_path)
    text = fixtures.read_text()
    fixtures.write_text(text.replace(
        "{DeviceName: exch-01, FileName: whoami.exe, ExploitEvidence: Reconnaissance}",
        "{DeviceName: exch-01, FileName: whoami.exe, ExploitEvidence: Shell Spawned}", 1))
    doc = api.test_rules([detection.RULE_ID], pack=load_pack(tmp_path))
    assert doc["passed"] is False
    [rule] = doc["rules"]
    [failed] = [c for c in rule["cases"] if not c["passed"]]
    assert failed["name"] == "every ExploitEvidence label"
    assert failed["missing"] == [
        {"DeviceName": "exch-01", "FileName": "whoami.exe", "ExploitEvidence": "Shell Spawned"}]
    [extra] = failed["unexpected"]
    assert extra["DeviceName"] == "exch-01" and extra["ExploitEvidence"] == "Reconnaissance"


def test_cli_exit_1_and_readable_diff(tmp_path: Path, cli: Callable, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fixtures = _copy(tmp_path)
    fixtures.write_text(fixtures.read_text().replace("DeviceName: n4,", "DeviceName: n4x,", 1)
                        .replace("InitiatingProcessFileName: explorer.exe, FileName: cmd.exe",
                                 "InitiatingProcessFileName: w3wp.exe, FileName: cmd.exe", 1))
    monkeypatch.setattr("sentinel_t1190.rules.default_pack_dir", lambda: tmp_path)
    run = cli("test", "--rule", detection.RULE_ID)
    assert run.code == 1
    assert "FAIL negative: near misses that in~ must not match" in run.stdout
    assert '+ found, not expected: {"Timestamp": "2026-03-01T11:00:00.000000Z", ' \
           '"DeviceName": "n4x"' in run.stdout
    assert "1 case(s) failed" in run.stdout


def test_rule_without_negative_case_fails(tmp_path: Path) -> None:
    fixtures = _copy(tmp_path)
    text = fixtures.read_text()
    fixtures.write_text(text.split("  - name: near misses")[0])
    [rule] = load_pack(tmp_path).select([detection.RULE_ID])
    _, problems = load_cases(rule)
    assert problems == ["needs at least one negative case (`expect_none: true`)"]
    doc = api.test_rules([detection.RULE_ID], pack=load_pack(tmp_path))
    assert doc["passed"] is False
    assert doc["rules"][0]["problems"] == problems


def test_rule_without_fixtures_fails(tmp_path: Path) -> None:
    fixtures = _copy(tmp_path)
    fixtures.unlink()
    doc = api.test_rules([detection.RULE_ID], pack=load_pack(tmp_path))
    assert doc["passed"] is False
    [problem] = doc["rules"][0]["problems"]
    assert problem.startswith("no fixtures:") and str(fixtures) in problem


def test_malformed_case_is_reported(tmp_path: Path) -> None:
    fixtures = _copy(tmp_path)
    fixtures.write_text(fixtures.read_text().replace("expect_none: true", "expect_none: false", 1))
    [rule] = load_pack(tmp_path).select([detection.RULE_ID])
    assert fixtures_path(rule) == fixtures
    _, problems = load_cases(rule)
    assert any("give either `expect`" in p for p in problems)


def test_exclusions_are_applied_in_tests(tmp_path: Path) -> None:
    fixtures = _copy(tmp_path)
    (fixtures.parent.parent / "exclusions" / "web_server_child_process.yaml").write_text(
        "exclusions:\n  - name: hcw\n    reason: r\n    owner: o\n"
        "    command_line: {contains: HybridConfigurationWizard}\n")
    doc = api.test_rules([detection.RULE_ID], pack=load_pack(tmp_path))
    [failed] = [c for r in doc["rules"] for c in r["cases"] if not c["passed"]]
    assert failed["name"].startswith("the five false-positive classes")
    assert failed["missing"] == [
        {"DeviceName": "exch-01.corp.example", "ExploitEvidence": "Shell Spawned"}]
    assert failed["unexpected"] == []


# --- events the rule can never see ----------------------------------------------------------


def _pack_with(tmp_path: Path, stem: str, fixtures_text: str) -> Pack:
    _copy(tmp_path)
    (tmp_path / "analytics" / "fixtures" / f"{stem}.yaml").write_text(fixtures_text)
    return load_pack(tmp_path)


@pytest.mark.parametrize(("stem", "table", "events"), [
    ("sql_injection_in_request", "W3CIISLog", 8),
    ("web_shell_file_in_web_root", "DeviceFileEvents", 9),
])
def test_the_two_vacuous_fixture_files_are_reported(
        tmp_path: Path, stem: str, table: str, events: int) -> None:
    pack = _pack_with(tmp_path, stem, (ROOT / "tests" / "data" / "vacuous" / f"{stem}.yaml")
                      .read_text())
    doc = api.test_rules([stem], pack=pack)
    assert doc["passed"] is False
    [failed] = [c for c in doc["rules"][0]["cases"] if not c["passed"]]
    assert failed["kind"] == "negative" and failed["got"] == []
    error = failed["error"]
    assert error.startswith("events the rule can never see: ")
    numbers = re.findall(rf"(?:{table} event\(s\) |, )(\d+) \(", error)
    assert numbers == [str(n) for n in range(1, events + 1)], error
    assert "outside the query's window" in error and "at now 2026-03-01T12:00:00Z" in error


QUERY = """let Web = W3CIISLog | where TimeGenerated > ago(1h) | where csUriQuery has "x";
let Net = DeviceNetworkEvents | where Timestamp between (datetime(2026-03-01T10:00:00Z) .. now())
    | where RemotePort == 1389;
union Web, Net
| project TimeGenerated, Computer, RemotePort"""
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _case(events: dict[str, list[dict[str, Any]]], outside: bool = False) -> Case:
    return Case("c", NOW, events, (), outside_window=outside)


def test_unseen_events_by_window_table_and_column() -> None:
    uses = table_uses(QUERY)
    assert unseen_events(_case({
        "W3CIISLog": [{"TimeGenerated": "2026-03-01T11:00:01Z", "csUriQuery": "x", "cip": "a"}],
        "DeviceNetworkEvents": [{"Timestamp": "2026-03-01T10:00:00Z", "RemotePort": 1}],
    }), uses) == []
    problems = unseen_events(_case({
        "W3CIISLog": [{"TimeGenerated": "2026-03-01T11:00:00Z", "csUriQuery": "x"},
                      {"csUriQuery": "x"}, {"TimeGenerated": "2026-03-01T11:30:00Z",
                                             "csUriQuerry": "x", "RemotePort": 1}],
        "DeviceNetworkEvents": [{"Timestamp": "2026-03-01T09:59:59Z", "RemotePort": 1,
                                 "LocalPort": 1389}],
        "DeviceProcessEvents": [{"Timestamp": "2026-03-01T11:30:00Z"}],
    }), uses)
    assert problems == [
        "W3CIISLog event(s) 3: the query does not read column csUriQuerry",
        "W3CIISLog event(s) 3: the query does not read column RemotePort",
        "W3CIISLog event(s) 1 (2026-03-01T11:00:00Z): outside the query's window "
        "(TimeGenerated > 2026-03-01T11:00:00Z at now 2026-03-01T12:00:00Z)",
        "W3CIISLog event(s) 2 (null): no TimeGenerated, so outside the query's window "
        "(TimeGenerated > 2026-03-01T11:00:00Z at now 2026-03-01T12:00:00Z)",
        "DeviceNetworkEvents event(s) 1: the query does not read column LocalPort",
        "DeviceNetworkEvents event(s) 1 (2026-03-01T09:59:59Z): outside the query's window "
        "(Timestamp >= 2026-03-01T10:00:00Z at now 2026-03-01T12:00:00Z)",
        "DeviceProcessEvents: the query does not read this table, so it never sees these "
        "1 event(s)",
    ]


def test_outside_window_case_must_be_outside() -> None:
    uses = table_uses(QUERY)
    old = {"TimeGenerated": "2026-03-01T11:00:00Z", "csUriQuery": "x"}
    assert unseen_events(_case({"W3CIISLog": [old]}, outside=True), uses) == []
    assert unseen_events(_case({"W3CIISLog": [old, {**old, "TimeGenerated": "2026-03-01T11:59"}]},
                               outside=True), uses) == [
        "W3CIISLog event(s) 2: inside the query's window, in a case marked outside_window"]


def test_outside_window_only_on_negative_cases(tmp_path: Path) -> None:
    fixtures = _copy(tmp_path)
    fixtures.write_text(fixtures.read_text().replace(
        "  - name: every ExploitEvidence label\n",
        "  - name: every ExploitEvidence label\n    outside_window: true\n", 1))
    [rule] = load_pack(tmp_path).select([detection.RULE_ID])
    _, problems = load_cases(rule)
    assert any("`outside_window: true` marks a negative case" in p for p in problems)


def test_cli_reports_an_event_moved_onto_the_window_edge(tmp_path: Path, cli: Callable,
                                                         monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fixtures = _copy(tmp_path)
    fixtures.write_text(fixtures.read_text().replace(
        "{Timestamp: 2026-03-01T11:00:00Z, DeviceName: n1,",
        "{Timestamp: 2026-02-28T12:00:00Z, DeviceName: n1,", 1))
    monkeypatch.setattr("sentinel_t1190.rules.default_pack_dir", lambda: tmp_path)
    run = cli("test", "--rule", detection.RULE_ID, "-o", "json")
    assert run.code == 1
    [failed] = [c for r in run.json()["rules"] for c in r["cases"] if not c["passed"]]
    assert failed["name"] == "near misses that in~ must not match"
    assert failed["error"] == (
        "events the rule can never see: DeviceProcessEvents event(s) 1 (2026-02-28T12:00:00Z): "
        "outside the query's window (Timestamp > 2026-02-28T12:00:00Z at now "
        "2026-03-01T12:00:00Z)")


# --- every negative case can fail -----------------------------------------------------------


def _firing_events(rule: Rule, cases: list[Case], query: str) -> dict[str, dict[str, Any]]:
    """Per table: a positive event that alone makes the rule report a finding."""
    firing: dict[str, dict[str, Any]] = {}
    for case in cases:
        for table, rows in case.events.items():
            for row in rows:
                if table in firing:
                    break
                alone = replace(case, events={table: [row]}, expect=({"_": 1},))
                if run_case(rule, alone, query).got:
                    firing[table] = dict(row)
    return firing


def _run_with(rule: Rule, case: Case, query: str, table: str,
              rows: list[dict[str, Any]]) -> CaseResult:
    """*case* with *rows* as its events of *table*."""
    return run_case(rule, replace(case, events={**case.events, table: rows}), query)


def test_every_negative_case_fails_when_a_positive_event_takes_each_events_place() -> None:
    """Proof that each negative case can fail, over every rule in the pack.

    Each event of each negative case is replaced by a positive event of the same table that
    carries the negative event's time columns: the rule must then report each of them (the
    place is one the rule sees). In an ``outside_window`` case it must still report nothing.
    A table's events are swapped all at once; one by one only to name the failing event.
    """
    offenders: list[str] = []
    for rule in load_pack().rules:
        cases, problems = load_cases(rule)
        assert not problems, problems
        query = deployed_query(rule)
        uses = table_uses(query)
        firing = _firing_events(rule, [c for c in cases if c.positive], query)
        for case in (c for c in cases if not c.positive):
            for table, rows in case.events.items():
                if table not in firing:
                    offenders.append(f"{rule.name}: no positive event of {table} fires alone")
                    continue
                times = {b.column for w in uses[table].windows for b in w}
                swapped = [{**firing[table], **{c: row.get(c) for c in times}} for row in rows]

                whole = _run_with(rule, case, query, table, swapped)
                if whole.error is None and len(whole.unexpected) == (
                        0 if case.outside_window else len(rows)):
                    continue
                for number in range(1, len(rows) + 1):
                    one = _run_with(rule, case, query, table,
                                    [*rows[:number - 1], swapped[number - 1], *rows[number:]])
                    if one.error or bool(one.unexpected) == case.outside_window:
                        offenders.append(f"{rule.name} / {case.name}: {table} event {number} "
                                         f"{'is seen' if case.outside_window else 'cannot fail'}"
                                         f" ({one.error or 'no finding'})")
    assert not offenders, "\n".join(offenders)
