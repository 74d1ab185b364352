"""Local hunt output written by DuckDB: byte for byte what the Python writers write.

Findings stay in the engine and DuckDB renders each row as its NDJSON line, CSV record or
JSON object. The reference is the standard library's writers (``json.dumps``, ``json.dump
(indent=2)``, ``csv``) over the same rows read back as Python values.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import Run

from sentinel_t1190 import api, detection, render
from sentinel_t1190.output_schemas import versioned
from sentinel_t1190.render import OutputFormat
from sentinel_t1190.safe_text import csv_text
from sentinel_t1190.schema import table_schema
from sentinel_t1190.stored import StoredFindings

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NOW_TEXT = "2026-11-27T12:00:00Z"

#: Text a row of telemetry may carry: every control character, JSON and CSV specials,
#: escapes that look like JSON's own, non-ASCII (and beyond the BMP), formulas, empties.
NASTY = [
    *(f"a{chr(c)}b" for c in range(0x20)), "\x7f", "tab\tand\r\nline", 'say "hi", then',
    "back\\slash", "\\u000B literally", "\\\\u000b", "ñandú ✓ 😀 \u2028\u2029 \ufeff",
    "=cmd|' /C calc'!A0", "", " lead and trail ", "comma,only", "quote\"only", "nl\nonly",
    "/forward/slash", "\x00nul", "{\"json\": [1, 2]}",
]


def _python_ndjson(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)


def _python_csv(rows: list[dict[str, Any]], columns: list[str], raw: bool = False) -> str:
    """What safe_text.csv_text writes: the csv module's text, formulas neutralised unless
    *raw*, cells holding a carriage return quoted."""
    return csv_text([columns, *([r.get(c) for c in columns] for r in rows)], raw=raw)


def _stored(con: duckdb.DuckDBPyConnection, select: str) -> StoredFindings:
    relation = con.sql(select)
    relation.create("findings")
    return StoredFindings(con, "findings", relation.columns, [str(t) for t in relation.types])


def _assert_same_as_python(stored: StoredFindings) -> None:
    rows = list(stored.dicts())
    assert len(rows) == stored.total
    assert "".join(stored.ndjson()) == _python_ndjson(rows)
    header = [*stored.columns, "Absent"]
    for raw in (False, True):
        assert _python_csv(rows, header, raw) == ",".join(header) + "\n" + "".join(
            stored.csv(header, raw=raw))
    pad = "    "
    items = [i for batch in stored.json_items(pad) for i in batch]
    doc = json.dumps({"findings": rows}, indent=2, ensure_ascii=False, default=str)
    if rows:
        assert doc == '{\n  "findings": [\n' + pad + (",\n" + pad).join(items) + "\n  ]\n}"


TYPED = """
    SELECT * FROM (VALUES {values}) AS v(Text, Number, Flag, Moment, Zoned, Doc, Huge, Small)
"""


def _typed_values() -> str:
    rows = []
    for i, text in enumerate([*NASTY, None]):
        literal = "NULL" if text is None else "'" + text.replace("'", "''") + "'"
        rows.append(
            f"({literal}::VARCHAR, {i * 7 - 20}::BIGINT, "
            f"{'NULL' if i % 3 == 2 else 'true' if i % 3 else 'false'}::BOOLEAN, "
            f"TIMESTAMP '2026-01-15 11:59:31' + INTERVAL {i * 1234567} MICROSECOND, "
            f"TIMESTAMPTZ '2026-01-15 11:59:31.5+05:30' + INTERVAL {i} HOUR, "
            f"'{{\"k\": {i}}}'::JSON, {10**30 + i}::HUGEINT, NULL::INTEGER)")
    rows.append("(NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1::INTEGER)")
    rows.append("('x', 0, true, TIMESTAMP '0999-03-04 05:06:07.000089', "
                "TIMESTAMPTZ '0001-01-01 00:00:00+00', NULL, 0, 0)")
    rows.append("('y', 1, false, TIMESTAMP '9999-12-31 23:59:59.999999', NULL, 'null'::JSON, "
                "-1, -1)")
    return ", ".join(rows)


def test_every_type_and_text_as_python_writes_it() -> None:
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        stored = _stored(con, TYPED.format(values=_typed_values()))
        assert stored.in_sql
        _assert_same_as_python(stored)


def test_other_types_are_written_by_python() -> None:
    with duckdb.connect() as con:
        stored = _stored(con, "SELECT i / 3 AS Ratio, [i, 2] AS Pair, 'a,b' AS Text "
                              "FROM range(10) t(i)")
        assert not stored.in_sql
        _assert_same_as_python(stored)


def test_nothing_found_and_no_columns() -> None:
    with duckdb.connect() as con:
        stored = _stored(con, "SELECT 'a' AS Text WHERE false")
        assert stored.total == 0
        assert "".join(stored.ndjson()) == "" and "".join(stored.csv(["Text"])) == ""
        con.execute("CREATE TABLE single AS SELECT NULL::VARCHAR AS Only UNION ALL SELECT ''")
        single = StoredFindings(con, "single", ["Only"], ["VARCHAR"])
        _assert_same_as_python(single)
        # a record of one empty field is quoted by the csv module
        rows = list(single.dicts())
        assert "Only\n" + "".join(single.csv(["Only"])) == _python_csv(rows, ["Only"])


# --- through the CLI, on a dataset of hostile telemetry ---------------------------------------


def _telemetry(path: Path, rows: int) -> None:
    """*rows* events of web servers spawning listed children, hostile text in every column."""
    parents, children = detection.WEB_SERVER_PARENTS, detection.SUSPICIOUS_CHILDREN
    with duckdb.connect() as con:
        con.execute("CREATE TABLE nasty (i BIGINT, t VARCHAR)")
        con.executemany("INSERT INTO nasty VALUES (?, ?)", list(enumerate([*NASTY, None])))
        n = len(NASTY) + 1
        con.execute(f"""
            COPY (SELECT
                TIMESTAMP '2026-11-27 12:00:00' - INTERVAL (i * 61 + 1) SECOND
                    - INTERVAL (i * 7919 % 1000000) MICROSECOND AS Timestamp,
                (SELECT t FROM nasty WHERE nasty.i = r.i % {n}) AS DeviceName,
                (SELECT t FROM nasty WHERE nasty.i = (r.i + 3) % {n}) AS AccountName,
                {list(children)}[r.i % {len(children)} + 1] AS FileName,
                (SELECT t FROM nasty WHERE nasty.i = (r.i + 5) % {n}) AS ProcessCommandLine,
                {list(parents)}[r.i % {len(parents)} + 1] AS InitiatingProcessFileName,
                (SELECT t FROM nasty WHERE nasty.i = (r.i + 7) % {n})
                    AS InitiatingProcessCommandLine,
                (SELECT t FROM nasty WHERE nasty.i = (r.i + 9) % {n})
                    AS InitiatingProcessParentFileName,
                (SELECT t FROM nasty WHERE nasty.i = (r.i + 11) % {n}) AS SHA256
            FROM range({rows}) r(i)) TO '{path}' (FORMAT parquet)""")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "DeviceProcessEvents.parquet"
    _telemetry(path, 120)
    return path


SHELL_RULE = detection.RULE_ID
#: A rule reading a table no file holds: an empty result next to a full one.
OTHER_RULE = "web_shell_file_in_web_root"


def _run(cli: Callable[..., Run], path: Path, fmt: str, *rules: str,
         more: tuple[Path, ...] = (), options: tuple[str, ...] = ()) -> str:
    """The output, read from --out as bytes (the test runner's stdout turns CR LF into LF)."""
    out = path.with_name(f"out-{fmt}-{len(rules)}")
    run = cli("hunt", "--local", str(path), *map(str, more), "--now", NOW_TEXT, "-o", fmt,
              "--out", str(out), *(a for r in rules for a in ("-r", r)), *options)
    assert run.code == 0, run.stderr
    assert run.stdout == ""
    return out.read_bytes().decode("utf-8")


def test_cli_output_is_byte_for_byte_the_python_writers(
        hostile: Path, cli: Callable[..., Run]) -> None:
    [result] = api.hunt_local([str(hostile)], now=NOW)
    rows = result.findings
    assert len(rows) == 120  # all in the window
    assert _run(cli, hostile, "ndjson") == _python_ndjson(rows)
    assert _run(cli, hostile, "csv") == _python_csv(rows, result.columns)
    assert _run(cli, hostile, "csv", options=("--csv-raw",)) == _python_csv(
        rows, result.columns, raw=True)
    expected = json.dumps(versioned(result.to_dict()), indent=2, ensure_ascii=False,
                          default=str) + "\n"
    assert _run(cli, hostile, "json") == expected


def test_several_rules_one_empty(hostile: Path, cli: Callable[..., Run], tmp_path: Path
                                 ) -> None:
    files = tmp_path / "DeviceFileEvents.parquet"
    columns = ", ".join(f'NULL::VARCHAR AS "{c}"' for c in table_schema("DeviceFileEvents")
                        .columns if c != "Timestamp")
    with duckdb.connect() as con:  # one event, a week before the window
        con.execute(f"COPY (SELECT TIMESTAMP '2026-11-20 00:00:00' AS Timestamp, {columns}) "
                    f"TO '{files}' (FORMAT parquet)")
    results = api.hunt_local([str(hostile), str(files)], now=NOW,
                             rule_ids=[SHELL_RULE, OTHER_RULE])
    assert results[0].findings and not results[1].findings
    docs = [r.to_dict() for r in results]
    expected = json.dumps(versioned({"results": docs}), indent=2, ensure_ascii=False,
                          default=str) + "\n"
    rules = (SHELL_RULE, OTHER_RULE)
    assert _run(cli, hostile, "json", *rules, more=(files,)) == expected
    columns = list(dict.fromkeys([*results[0].columns, *results[1].columns]))
    assert _run(cli, hostile, "csv", *rules, more=(files,)) == _python_csv(
        results[0].findings, columns)
    assert _run(cli, hostile, "ndjson", *rules, more=(files,)) == _python_ndjson(
        results[0].findings)


def test_large_tables_show_the_first_rows_and_count_the_rest(
        tmp_path: Path, cli: Callable[..., Run]) -> None:
    path = tmp_path / "DeviceProcessEvents.parquet"
    _telemetry(path, render.TABLE_ROWS + 37)
    with api.hunt_local_stored([str(path)], now=NOW - timedelta(0)) as [result]:
        total = result.total
    assert total > render.TABLE_ROWS
    out = _run(cli, path, "table")
    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)  ", out, re.MULTILINE)
    assert len(stamps) == render.TABLE_ROWS
    assert f"… and {total - render.TABLE_ROWS:,} more finding(s) not shown" in out
    assert f"--output ndjson, csv or json with --out FILE writes all {total:,}." in out
    assert f"{total:,} finding(s)" in out


def test_render_of_a_library_result_matches(hostile: Path) -> None:
    """Results holding their findings in a list (``api.hunt_local``) render the same."""
    [listed] = api.hunt_local([str(hostile)], now=NOW)
    for fmt in (OutputFormat.json, OutputFormat.ndjson, OutputFormat.csv):
        with api.hunt_local_stored([str(hostile)], now=NOW) as stored:
            streamed = io.StringIO()
            render.hunt(stored, fmt, streamed)
        plain = io.StringIO()
        render.hunt([listed], fmt, plain)
        assert streamed.getvalue() == plain.getvalue()
