"""Attacker-controlled text in output (DESIGN §7): literal in tables, visible control
characters, inert CSV cells — for telemetry, rule names and service messages."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, squashed, table_column

from sentinel_t1190 import render, reports
from sentinel_t1190.render import OutputFormat
from sentinel_t1190.rules import load_rule
from sentinel_t1190.safe_text import csv_cell, visible

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-27T12:00:00Z"
HEADER = ["Timestamp", "DeviceName", "AccountName", "FileName", "ProcessCommandLine",
          "InitiatingProcessFileName", "InitiatingProcessCommandLine",
          "InitiatingProcessParentFileName", "SHA256"]
#: What attackers put on a command line: markup-like PowerShell, a closing tag alone, an OSC
#: title sequence, a screen clear and a right-to-left override.
HOSTILE = ("powershell -c iex ([char]105+[convert]::ToInt32('1')) [/] [bold]x[/bold] "
           "\x1b]0;pwned\x07 \x1b[2J \u202egnp.exe")


def _hunt_file(tmp_path: Path, command_line: str, account: str = "DefaultAppPool") -> Path:
    path = tmp_path / "DeviceProcessEvents.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerow(["2026-11-27T10:00:00Z", "web-01", account, "powershell.exe",
                         command_line, "w3wp.exe", "w3wp.exe -ap x", "svchost.exe", "ab" * 32])
    return path


def _no_raw_controls(text: str) -> None:
    for ch in ("\x1b", "\x07", "\u202e", "\r"):
        assert ch not in text


# --- the visible scheme ---------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "shown"), [
    ("a\x1b[31mb", "a<U+001B>[31mb"),
    ("\u202egnp.exe", "<U+202E>gnp.exe"),
    ("x\u2066y\u2069", "x<U+2066>y<U+2069>"),
    ("zero\u200bwidth", "zero<U+200B>width"),
    ("bell\x07 del\x7f c1\x9b", "bell<U+0007> del<U+007F> c1<U+009B>"),
    ("cr\rlf\nline\u2028sep", "cr<U+000D>lf\nline<U+2028>sep"),
    ("tab\tkept", "tab\tkept"),
    ("plain [char]105 café ✓ 日本", "plain [char]105 café ✓ 日本"),
])
def test_visible(raw: str, shown: str) -> None:
    assert visible(raw) == shown


@pytest.mark.parametrize(("value", "cell"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+cmd", "'+1+cmd"),
    ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("cmd /c =x", "cmd /c =x"), ("", ""), (None, None), (-5, -5), (1.5, 1.5),
])
def test_csv_cell(value: Any, cell: Any) -> None:
    assert csv_cell(value) == cell


# --- hunt: the cases ----------------------------------------------------------------

#: Room for a whole hostile command line (tables cut longer cells with "…").
WIDE = {"COLUMNS": "300"}


def test_table_prints_markup_and_powershell_literally(cli: Callable[..., Run],
                                                      tmp_path: Path) -> None:
    path = _hunt_file(tmp_path, "powershell -c [/] [char]105 [convert]::FromBase64String('x')",
                      account="[bold]admin[/]")
    run = cli("hunt", "--local", str(path), "--now", NOW, env=WIDE)
    assert run.code == 0, (run.stderr, run.exception)
    assert table_column(run.stdout, "Command line") == squashed(
        "powershell -c [/] [char]105 [convert]::FromBase64String('x')")
    assert table_column(run.stdout, "Account") == squashed("[bold]admin[/]")


def test_table_shows_escape_and_bidi_characters(cli: Callable[..., Run], tmp_path: Path) -> None:
    run = cli("hunt", "--local", str(_hunt_file(tmp_path, HOSTILE)), "--now", NOW, env=WIDE)
    assert run.code == 0, (run.stderr, run.exception)
    _no_raw_controls(run.stdout)
    assert table_column(run.stdout, "Command line") == squashed(
        "powershell -c iex ([char]105+[convert]::ToInt32('1')) [/] [bold]x[/bold] "
        "<U+001B>]0;pwned<U+0007> <U+001B>[2J <U+202E>gnp.exe")


def test_json_keeps_the_value_exactly(cli: Callable[..., Run], tmp_path: Path) -> None:
    run = cli("hunt", "--local", str(_hunt_file(tmp_path, HOSTILE)), "--now", NOW, "-o", "json")
    assert run.json()["findings"][0]["ProcessCommandLine"] == HOSTILE


@pytest.mark.parametrize("formula", ["=cmd|' /C calc'!A0", "+1+cmd", "-1+cmd", "@SUM(1)"])
def test_csv_neutralises_formulas_unless_raw(cli: Callable[..., Run], tmp_path: Path,
                                             formula: str) -> None:
    path = _hunt_file(tmp_path, formula)
    safe = cli("hunt", "--local", str(path), "--now", NOW, "-o", "csv")
    raw = cli("hunt", "--local", str(path), "--now", NOW, "-o", "csv", "--csv-raw")
    assert safe.code == raw.code == 0, safe.stderr
    [safe_row] = csv.DictReader(io.StringIO(safe.stdout))
    [raw_row] = csv.DictReader(io.StringIO(raw.stdout))
    assert safe_row["ProcessCommandLine"] == "'" + formula
    assert raw_row["ProcessCommandLine"] == formula
    assert safe_row["DeviceName"] == raw_row["DeviceName"] == "web-01"


def test_csv_rows_written_by_the_streaming_formatter_are_neutralised() -> None:
    formatter = render.RowFormatter(OutputFormat.csv, ["=a", "b"], {"WorkspaceId": "@w"})
    text = formatter.header() + formatter.rows([["=1+1", 2], ["ok", "-x"]])
    assert list(csv.reader(io.StringIO(text))) == [
        ["'=a", "b", "WorkspaceId"], ["'=1+1", "2", "'@w"], ["ok", "'-x", "'@w"]]
    raw = render.RowFormatter(OutputFormat.csv, ["a"], raw_csv=True)
    assert raw.rows([["=1+1"]]) == "=1+1\n"


# --- rule names and service messages --------------------------------------------------------


def _rule_named(tmp_path: Path, name: str) -> Any:
    source = (ROOT / "analytics" / "web_server_child_process.yaml").read_text(encoding="utf-8")
    head, _, tail = source.partition("\nname: ")
    path = tmp_path / "rule.yaml"
    path.write_text(f"{head}\nname: {json.dumps(name)}\n{tail.partition(chr(10))[2]}",
                    encoding="utf-8")
    rule, problems = load_rule(path)
    assert rule is not None, problems
    return rule


BRACKETED = "[/] shell [red]from[/red] w3wp \x1b[5m\u202e"


def _printed(write: Callable[[io.StringIO], None]) -> str:
    stream = io.StringIO()
    write(stream)
    text = stream.getvalue()
    _no_raw_controls(text)
    return text


def test_rule_names_in_the_rules_table(tmp_path: Path) -> None:
    rule = _rule_named(tmp_path, BRACKETED)
    shown = _printed(lambda s: render.rules([rule], OutputFormat.table, s))
    assert table_column(shown, "name") == squashed(
        "[/] shell [red]from[/red] w3wp <U+001B>[5m<U+202E>")


def test_rule_names_and_problems_in_test_results() -> None:
    doc = {"rules": [{"rule": {"id": "x", "name": BRACKETED}, "passed": False,
                      "problems": ["fixture [/] broken"],
                      "cases": [{"name": "case [b]", "kind": "match", "passed": False,
                                 "error": "boom [/]\x1b[2J", "missing": [], "unexpected": []}]}],
           "summary": {"rules": 1, "cases": 1, "cases_failed": 1, "rules_failed": 1},
           "passed": False}
    lines = _printed(lambda s: render.rule_tests(doc, OutputFormat.table, s)).splitlines()
    assert lines[:4] == ["FAIL [/] shell [red]from[/red] w3wp <U+001B>[5m<U+202E> (x)",
                         "    fixture [/] broken", "  FAIL match: case [b]",
                         "       error: boom [/]<U+001B>[2J"]


def test_live_summary_with_bracketed_rule_name_and_service_error() -> None:
    doc = {"rule": {"id": "x", "name": BRACKETED},
           "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
           "complete": False,
           "summary": {"total": 1, "by_evidence": {"[Shell]": 1}, "by_device": {"[dev]\x1b": 1},
                       "devices": {"[dev]\x1b": {"first_seen": "[a]", "last_seen": "[b]"}}},
           "workspaces": [{"id": "ws", "status": "failed", "findings": 0, "queries": 1,
                           "errors": ["BadArgumentError: [/] near 'x' \u202e"]}]}
    shown = _printed(lambda s: render.hunt_live_summary(doc, s))
    assert shown.startswith("[/] shell [red]from[/red] w3wp <U+001B>[5m<U+202E>\n")
    assert table_column(shown, "ExploitEvidence") == "[Shell]"
    assert table_column(shown, "device") == "[dev]<U+001B>"
    assert table_column(shown, "first seen") == "[a]"
    assert table_column(shown, "detail") == squashed("BadArgumentError: [/] near 'x' <U+202E>")


def test_service_errors_in_fleet_and_deploy_tables() -> None:
    fleet = {"targets": [{"subscription_id": "s", "resource_group": "[rg]", "workspace": "w",
                          "status": "failed", "error": "Conflict: [/] \x1b[2J", "rules": []}],
             "summary": {"total": 1, "failed": 1}}
    shown = _printed(lambda s: render.rollout_report(fleet, OutputFormat.table, s))
    assert table_column(shown, "error / reason") == squashed("Conflict: [/] <U+001B>[2J")
    assert table_column(shown, "resource group") == "[rg]"
    deploy = {"workspace": {"workspace": "[w]", "resource_group": "g"},
              "rules": [{"id": "[id]", "name": BRACKETED, "action": "refused",
                         "reason": "table [x] missing \x07", "changes": []}]}
    shown = _printed(lambda s: render.rule_report(deploy, "action", "deploy",
                                                   OutputFormat.table, s))
    assert "workspace [w] (resource group g)" in shown
    assert table_column(shown, "rule") == "[id]"
    assert table_column(shown, "details") == squashed("table [x] missing <U+0007>")


def test_backtest_report_with_a_bracketed_rule_name() -> None:
    row = {"Timestamp": "2026-01-01T00:00:00Z", "DeviceName": "[d]", "AccountName": "a",
           "FileName": "cmd.exe", "ProcessCommandLine": "cmd [/]\x1b[2J\nnext"}
    doc = {"baseline": {"kind": "folder", "path": "[base]"},
           "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
           "complete": True, "warnings": [],
           "summary": {"added": 1, "removed": 0, "unchanged": 0},
           "rules": [{"id": "x", "name": BRACKETED, "status": "changed", "added": [row],
                      "removed": [], "unchanged": 0, "exclusions": []}]}
    shown = _printed(lambda s: reports.backtest(doc, reports.ReportFormat.table, s))
    assert f"added: 1 finding(s) of {visible(BRACKETED)}" in shown
    assert "against pack folder [base]" in shown
    assert table_column(shown, "ProcessCommandLine") == "cmd[/]<U+001B>[2J<U+000A>next"
    markdown = reports.backtest_markdown(doc)
    assert ("finding(s) of [/] shell [red]from[/red] w3wp &lt;U+001B&gt;[5m&lt;U+202E&gt;"
            "</summary>") in markdown


def test_log_records_are_one_line_with_control_characters_shown() -> None:
    import logging

    from sentinel_t1190.cli.common import _OneLineFormatter

    record = logging.LogRecord("sentinel_t1190.http", logging.INFO, __file__, 1,
                               "GET %s -> %s", ("https://x/a\nb", "5\x1b[2J00"), None)
    assert _OneLineFormatter().format(record) == "info: GET https://x/a<U+000A>b -> " \
                                                 "5<U+001B>[2J00"
