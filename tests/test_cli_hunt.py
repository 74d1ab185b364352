"""``hunt`` on the command line: bad input, the output contract, imports and progress."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from conftest import Run

from sentinel_t1190 import detection
from sentinel_t1190._version import __version__

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-27T12:00:00Z"
PROJECTED = ["Timestamp", "DeviceName", "AccountName", "FileName", "ProcessCommandLine",
             "InitiatingProcessFileName", "InitiatingProcessCommandLine",
             "InitiatingProcessParentFileName", "ExploitEvidence", "SHA256"]
NEEDED = [c for c in PROJECTED if c != "ExploitEvidence"]
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$")


def _csv(path: Path, rows: list[list[str]], header: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header or NEEDED)
        writer.writerows(rows)
    return path


GOOD_ROW = ["2026-11-27T10:00:00.1234567Z", "web-01", "DefaultAppPool", "cmd.exe", "cmd /c whoami",
            "w3wp.exe", "w3wp.exe -ap x", "svchost.exe", "ab" * 32]


def assert_input_error(run: Run, *parts: str) -> str:
    """Exit 2, nothing on stdout, one ``error:`` line on stderr that contains *parts*."""
    assert run.code == 2, (run.code, run.stdout, run.stderr)
    assert run.stdout == ""
    assert run.stderr.startswith("error: ")
    assert run.stderr.endswith("\n")
    assert run.stderr.count("\n") == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "Error: " not in run.stderr  # no DuckDB "Invalid Input Error: " leaking through
    for part in parts:
        assert part in run.stderr
    return run.stderr


# --- bad input: exit 2, one line, no traceback ----------------------------------------------


def test_missing_file(cli: Callable[..., Run], tmp_path: Path) -> None:
    path = tmp_path / "DeviceProcessEvents.csv"
    assert_input_error(cli("hunt", "--local", str(path)), str(path), "no such file")


def test_empty_file(cli: Callable[..., Run], tmp_path: Path) -> None:
    path = tmp_path / "DeviceProcessEvents.csv"
    path.write_bytes(b"")
    assert_input_error(cli("hunt", "--local", str(path)), str(path), "empty")


def test_header_only_is_not_an_error(cli: Callable[..., Run], tmp_path: Path) -> None:
    path = _csv(tmp_path / "DeviceProcessEvents.csv", [])
    run = cli("hunt", "--local", str(path), "--now", NOW, "-o", "json")
    assert run.code == 0
    assert run.json()["summary"] == {"total": 0, "by_evidence": {}}


def test_wrong_columns_lists_the_missing_ones(cli: Callable[..., Run], tmp_path: Path) -> None:
    # FileName decides which rows match; SHA256 and AccountName are only shown.
    header = [c for c in NEEDED if c not in ("SHA256", "AccountName", "FileName")]
    path = _csv(tmp_path / "DeviceProcessEvents.csv", [GOOD_ROW[:2] + GOOD_ROW[4:-1]], header)
    line = assert_input_error(cli("hunt", "--local", str(path)), str(path))
    assert line.rstrip().endswith("missing columns the DeviceProcessEvents query needs: "
                                  "FileName")


def test_shown_only_columns_missing_are_null_with_a_warning(
        cli: Callable[..., Run], tmp_path: Path) -> None:
    header = [c for c in NEEDED if c not in ("SHA256", "AccountName")]
    path = _csv(tmp_path / "DeviceProcessEvents.csv", [GOOD_ROW[:2] + GOOD_ROW[3:-1]], header)
    run = cli("hunt", "--local", str(path), "--now", NOW, "-o", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    [finding] = doc["findings"]
    assert finding["AccountName"] is None and finding["SHA256"] is None
    assert finding["ExploitEvidence"] == "Shell Spawned"
    assert doc["warnings"] == [f"{path}: no AccountName, SHA256 column(s); the "
                               "DeviceProcessEvents query only shows them, so they are null "
                               "in the findings"]


def test_a_file_of_another_table(cli: Callable[..., Run], tmp_path: Path) -> None:
    path = _csv(tmp_path / "W3CIISLog.csv", [["2026-11-27", "GET", "/"]],
                ["date", "csMethod", "csUriStem"])
    assert_input_error(cli("hunt", "--local", str(path)), f"{path} holds W3CIISLog",
                       "reads DeviceProcessEvents")


@pytest.mark.parametrize("name", ["DeviceProcessEvents.csv", "DeviceProcessEvents.parquet",
                                  "DeviceProcessEvents.json", "DeviceProcessEvents.jsonl",
                                  "DeviceProcessEvents.csv.gz"])
def test_binary_garbage(cli: Callable[..., Run], tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(bytes(range(256)) * 40 + b"\x00\xff" * 500)
    assert_input_error(cli("hunt", "--local", str(path)), str(path))


def test_not_utf8_csv(cli: Callable[..., Run], tmp_path: Path) -> None:
    path = tmp_path / "DeviceProcessEvents.csv"
    path.write_bytes((",".join(NEEDED) + "\n" + ",".join(GOOD_ROW).replace("web-01", "Jos\xe9")
                      + "\n").encode("latin-1"))
    assert_input_error(cli("hunt", "--local", str(path)), str(path), "utf-8")


def test_unparseable_timestamp_names_file_column_and_value(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    path = _csv(tmp_path / "DeviceProcessEvents.csv",
                [GOOD_ROW, ["yesterday\nnoon", *GOOD_ROW[1:]]])
    assert_input_error(cli("hunt", "--local", str(path), "--now", NOW), str(path),
                       "column Timestamp", "unparseable timestamp 'yesterday noon'")


def test_unparseable_timestamp_found_while_streaming_rows(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    """The bad value sits far past the first batch: DuckDB raises while rows are iterated."""
    path = tmp_path / "DeviceProcessEvents.csv"
    _csv(path, [GOOD_ROW] * 60_000 + [["31/12/2026 25:00", *GOOD_ROW[1:]]])
    assert_input_error(cli("hunt", "--local", str(path), "--now", NOW, "-o", "json"),
                       str(path), "column Timestamp", "'31/12/2026 25:00'")


def test_local_time_export_is_refused(cli: Callable[..., Run], tmp_path: Path) -> None:
    path = _csv(tmp_path / "DeviceProcessEvents.csv",
                [["11/27/2026, 10:00:00.123 AM", *GOOD_ROW[1:]]],
                ["Timestamp [Local Time]", *NEEDED[1:]])
    assert_input_error(cli("hunt", "--local", str(path)), str(path), "Timestamp in local time",
                       "UTC")


@pytest.mark.parametrize(("args", "parts"), [
    (["--timespan", "abc"], ["not a duration: 'abc'"]),
    (["--timespan", "0h"], ["--timespan must be positive"]),
    (["--timespan", "-5d"], ["not a duration: '-5d'"]),
    (["--timespan", "P"], ["not a duration"]),
    (["--timespan", "99999999d"], ["--timespan '99999999d' reaches back before year 1"]),
    (["--timespan", "9999999999d"], ["duration too long: '9999999999d'"]),
    (["--start", "2026-11-27T10:00:00Z", "--end", "2026-11-26T10:00:00Z"],
     ["the window is empty", "2026-11-27T10:00:00Z", "2026-11-26T10:00:00Z"]),
    (["--start", "2026-11-27T10:00:00Z", "--end", "2026-11-27T10:00:00Z"], ["window is empty"]),
    (["--start", "2026-11-20T10:00:00Z", "--timespan", "7d"], ["not both"]),
    (["--start", "last tuesday"], ["not a date and time: 'last tuesday'"]),
    (["--now", "tomorrow"], ["not a date and time: 'tomorrow'"]),
    (["--rule", "no-such-rule"], ["--rule 'no-such-rule' matches no rule",
                                  detection.RULE_ID]),
])
def test_bad_options(cli: Callable[..., Run], tmp_path: Path, args: list[str],
                     parts: list[str]) -> None:
    path = _csv(tmp_path / "DeviceProcessEvents.csv", [GOOD_ROW])
    assert_input_error(cli("hunt", "--local", str(path), *args), *parts)


def test_unknown_table(cli: Callable[..., Run], tmp_path: Path) -> None:
    path = _csv(tmp_path / "events.csv", [GOOD_ROW])
    assert_input_error(cli("hunt", "--local", f"NoSuchTable={path}"),
                       "unknown table 'NoSuchTable'", "DeviceProcessEvents")


def test_table_without_path(cli: Callable[..., Run]) -> None:
    assert_input_error(cli("hunt", "--local", "DeviceProcessEvents="), "give a file")


@pytest.mark.parametrize("name", ["DeviceProcessEvents.xlsx", "DeviceProcessEvents",
                                  "DeviceProcessEvents.parquet.gz"])
def test_unsupported_file_type(cli: Callable[..., Run], tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 not really")
    assert_input_error(cli("hunt", "--local", str(path)), str(path))


def test_folder_given_as_file(cli: Callable[..., Run], tmp_path: Path) -> None:
    assert_input_error(cli("hunt", "--local", str(tmp_path)), str(tmp_path), "is a folder")


def test_no_source(cli: Callable[..., Run]) -> None:
    assert_input_error(cli("hunt"), "nothing to hunt", "--local", "--sample")


def test_sample_and_local_together(cli: Callable[..., Run], tmp_path: Path) -> None:
    path = _csv(tmp_path / "DeviceProcessEvents.csv", [GOOD_ROW])
    assert_input_error(cli("hunt", "--sample", "--local", str(path)), "not both")


def test_debug_adds_the_traceback(cli: Callable[..., Run], tmp_path: Path) -> None:
    run = cli("hunt", "--local", str(tmp_path / "nope.csv"), "--debug")
    assert run.code == 2
    assert "Traceback" in run.stderr
    assert run.stderr.rstrip().splitlines()[-1].startswith("error: ")


# --- the output contract (shared/DESIGN.md §3) ---------------------------------------------


def test_sample_json_shape(cli: Callable[..., Run]) -> None:
    run = cli("hunt", "--sample", "--output", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert list(doc) == ["schema_version", "rule", "source", "window", "complete", "warnings",
                         "summary", "findings"]
    assert doc["rule"] == {"id": detection.RULE_ID, "name": doc["rule"]["name"]}
    assert "T1190" in doc["rule"]["name"]
    assert doc["source"]["kind"] == "sample"
    assert set(doc["window"]) == {"start", "end"}
    assert all(ISO_Z.match(v) for v in doc["window"].values())
    assert doc["complete"] is True
    assert doc["warnings"] == []
    assert set(doc["summary"]["by_evidence"]) == set(detection.LABELS)
    assert doc["summary"]["total"] == len(doc["findings"]) == sum(
        doc["summary"]["by_evidence"].values())
    for row in doc["findings"]:
        assert list(row) == PROJECTED
        assert ISO_Z.match(row["Timestamp"])
        assert doc["window"]["start"] < row["Timestamp"] <= doc["window"]["end"].replace(
            "Z", ".999999Z")
    stamps = [row["Timestamp"] for row in doc["findings"]]
    assert stamps == sorted(stamps, reverse=True)


def test_sample_table_has_all_five_labels(cli: Callable[..., Run]) -> None:
    run = cli("hunt", "--sample")
    assert run.code == 0
    for label in detection.LABELS:
        assert label in run.stdout
    assert "finding(s)" in run.stdout


def test_table_output_fits_a_sensible_width_when_piped(cli: Callable[..., Run]) -> None:
    run = cli("hunt", "--sample")
    widths = [len(line) for line in run.stdout.splitlines()]
    assert max(widths) <= 160
    # Timestamps (to the second, for people) stay whole on one line.
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", run.stdout, re.MULTILINE)
    assert "Time (UTC)" in run.stdout


def test_ndjson_is_one_finding_per_line(cli: Callable[..., Run]) -> None:
    doc = cli("hunt", "--sample", "-o", "json").json()
    run = cli("hunt", "--sample", "-o", "ndjson")
    lines = run.stdout.splitlines()
    assert len(lines) == doc["summary"]["total"]
    assert [json.loads(line) for line in lines] == doc["findings"]


def test_csv_header_is_the_projected_columns(cli: Callable[..., Run]) -> None:
    doc = cli("hunt", "--sample", "-o", "json").json()
    run = cli("hunt", "--sample", "-o", "csv")
    reader = csv.reader(io.StringIO(run.stdout))
    assert next(reader) == PROJECTED
    rows = list(reader)
    assert rows == [["" if row[c] is None else str(row[c]) for c in PROJECTED]
                    for row in doc["findings"]]


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv", "table"])
def test_out_writes_the_file_and_nothing_on_stdout(
    cli: Callable[..., Run], tmp_path: Path, fmt: str
) -> None:
    target = tmp_path / f"findings.{fmt}"
    run = cli("hunt", "--sample", "-o", fmt, "--out", str(target))
    assert run.code == 0
    assert run.stdout == ""
    assert target.read_text(encoding="utf-8") == cli("hunt", "--sample", "-o", fmt).stdout
    assert not list(tmp_path.glob(".*partial"))


def test_out_to_a_missing_folder(cli: Callable[..., Run], tmp_path: Path) -> None:
    assert_input_error(cli("hunt", "--sample", "--out", str(tmp_path / "no" / "x.json")),
                       "cannot write")


def test_fail_on_findings(cli: Callable[..., Run], tmp_path: Path) -> None:
    assert cli("hunt", "--sample", "--fail-on-findings", "-o", "json").code == 1
    assert cli("hunt", "--sample", "-o", "json").code == 0
    path = _csv(tmp_path / "DeviceProcessEvents.csv", [GOOD_ROW])
    quiet = cli("hunt", "--local", str(path), "--now", "2027-01-01T00:00:00Z",
                "--fail-on-findings", "-o", "json")
    assert quiet.code == 0
    assert quiet.json()["summary"]["total"] == 0
    found = cli("hunt", "--local", str(path), "--now", NOW, "--fail-on-findings", "-o", "json")
    assert found.code == 1
    assert found.json()["summary"] == {"total": 1, "by_evidence": {"Shell Spawned": 1}}


def test_rules_json_shape(cli: Callable[..., Run]) -> None:
    run = cli("rules", "--output", "json")
    assert run.code == 0
    [rule] = [r for r in run.json()["rules"] if r["id"] == detection.RULE_ID]
    # the contract's keys, in its order; later additions (short_id…) may stand between
    contract = ["id", "name", "severity", "tactics", "techniques", "tables"]
    assert [key for key in rule if key in contract] == contract
    assert rule["tactics"] == ["InitialAccess"]
    assert rule["techniques"] == ["T1190"]
    assert rule["tables"] == ["DeviceProcessEvents"]


def test_version(cli: Callable[..., Run]) -> None:
    run = cli("--version")
    assert run.code == 0
    assert run.stdout.strip() == f"sentinel-t1190 {__version__}"


# --- no azure.* on the offline paths; progress only on a terminal --------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_help_imports_no_azure_module() -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "sentinel_t1190", "--help"],
                          capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "hunt" in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")]
    assert "sentinel_t1190.cli.app" in imported  # the check sees real imports
    assert [m for m in imported if m == "azure" or m.startswith("azure.")] == []


_MODULES_AFTER = (
    "import sys\nfrom sentinel_t1190.cli.app import app\n"
    "try:\n    app(sys.argv[1:])\nexcept SystemExit as exit:\n    code = exit.code\n"
    "loaded = sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.'))\n"
    "print(loaded, 'duckdb' in sys.modules, code, file=sys.stderr)\n"
)


@pytest.mark.parametrize(("args", "duckdb_used"), [
    (["--help"], False), (["hunt", "--help"], False), (["rules"], False),
    (["hunt", "--sample", "-o", "json"], True), (["hunt", "--local", "{file}", "-o", "json"], True),
])
def test_offline_commands_import_no_azure_module(
    tmp_path: Path, args: list[str], duckdb_used: bool
) -> None:
    path = _csv(tmp_path / "DeviceProcessEvents.csv", [GOOD_ROW])
    argv = [a.format(file=path) for a in args]
    done = subprocess.run([sys.executable, "-c", _MODULES_AFTER, *argv, "--now", NOW]
                          if "--local" in argv else [sys.executable, "-c", _MODULES_AFTER, *argv],
                          capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120)
    assert done.stderr.splitlines()[-1] == f"[] {duckdb_used} 0"


def _big_file(path: Path, rows: int) -> Path:
    """A DeviceProcessEvents CSV of *rows* rows (some matching), written by DuckDB."""
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT strftime(TIMESTAMP '2026-11-27 11:59:59' - i * INTERVAL 1 SECOND,
                                          '%Y-%m-%dT%H:%M:%S.%f') || '0Z' AS Timestamp,
                       'host-' || (i % 97) AS DeviceName, 'svc' AS AccountName,
                       CASE WHEN i % 1000 = 0 THEN 'cmd.exe' ELSE 'conhost.exe' END AS FileName,
                       'cmd /c echo ' || i AS ProcessCommandLine,
                       'w3wp.exe' AS InitiatingProcessFileName,
                       'w3wp.exe -ap pool' AS InitiatingProcessCommandLine,
                       'svchost.exe' AS InitiatingProcessParentFileName,
                       md5(i::VARCHAR) AS SHA256
                FROM range({rows}) t(i)) TO '{path}' (HEADER, DELIMITER ',')""")
    con.close()
    return path


def test_progress_on_a_terminal_only(tmp_path: Path) -> None:
    import pty

    path = _big_file(tmp_path / "DeviceProcessEvents.csv", 150_000)
    assert path.stat().st_size > 16 * 1024 * 1024
    args = [sys.executable, "-m", "sentinel_t1190", "hunt", "--local", str(path), "--now", NOW,
            "-o", "json"]
    leader, follower = pty.openpty()
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=follower, cwd=ROOT,
                          env={**_env(), "TERM": "xterm", "COLUMNS": "100"}) as proc:
        os.close(follower)
        out, _ = proc.communicate(timeout=300)
        terminal = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            terminal += chunk
        os.close(leader)
    assert proc.returncode == 0
    assert b"Hunting" in terminal
    assert json.loads(out)["summary"]["total"] == 87  # i = 0, 1000, ..., 86000: the last 24 h
    piped = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=_env(),
                           timeout=300)
    assert piped.returncode == 0
    assert piped.stderr == ""
    assert json.loads(piped.stdout) == json.loads(out)


@pytest.mark.parametrize("args", [("hunt", "--output", "xml"), ("hunt", "--bogus"),
                                  ("rules", "extra-arg")])
def test_usage_errors_are_one_line(cli: Callable[..., Run], args: tuple[str, ...]) -> None:
    run = cli(*args)
    assert run.code == 2
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr
    assert f"see 'sentinel-t1190 {args[0]} --help'" in run.stderr
