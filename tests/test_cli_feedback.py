"""Feedback on stderr for every outcome: why the exit code is 1, where --out wrote."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import ROOT


def test_fail_on_findings_says_why_it_exits_1(cli: Callable[..., Any]) -> None:
    run = cli("hunt", "--sample", "--fail-on-findings", "--output", "json")
    assert run.code == 1
    total = run.json()["summary"]["total"]
    assert total > 0
    assert f"exit 1: {total} finding(s) and --fail-on-findings" in run.stderr


def test_out_says_where_it_wrote(cli: Callable[..., Any], tmp_path: Path) -> None:
    out = tmp_path / "findings.json"
    run = cli("hunt", "--sample", "--output", "json", "--out", str(out))
    assert run.code == 0, run.stderr
    assert run.stdout == ""
    assert f"wrote {out}" in run.stderr
    assert '"findings"' in out.read_text(encoding="utf-8")


def test_validate_errors_say_why_they_exit_1(cli: Callable[..., Any]) -> None:
    run = cli("validate", str(ROOT / "tests/data/invalid/bad_severity.yaml"), "--output", "json")
    assert run.code == 1
    errors = run.json()["errors"]
    assert errors > 0
    assert f"exit 1: {errors} error(s) in the rule files" in run.stderr


def test_failing_fixture_cases_say_why_they_exit_1(cli: Callable[..., Any],
                                                   tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    assert cli("init", str(pack)).code == 0
    fixture = pack / "analytics/fixtures/sql_injection_in_request.yaml"
    text = fixture.read_text(encoding="utf-8")
    fixture.write_text(text.replace("ExploitEvidence: UNION-based SQLi, scStatus: '200'",
                                    "ExploitEvidence: Tautology SQLi, scStatus: '200'", 1),
                       encoding="utf-8")
    run = cli("test", "--pack", str(pack), "--rule", "sql_injection_in_request")
    assert run.code == 1
    assert "exit 1: 1 case(s) failed, 1 rule(s) failed" in run.stderr
