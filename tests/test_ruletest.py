"""`test`: fixture cases through the local engine with the deployed KQL."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from sentinel_t1190 import api, detection
from sentinel_t1190.rules import load_pack
from sentinel_t1190.ruletest import fixtures_path, load_cases

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
