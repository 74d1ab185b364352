"""Property-based tests (Hypothesis) where attackers reach: exclusion values, files, output.

Seeded and bounded by the ``ci`` profile in conftest.py (derandomized, no example database),
so a CI run is the same every time and writes nothing outside tmp_path.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import table_cells
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from sentinel_t1190 import api, render
from sentinel_t1190.engine import LocalEngine, LocalFile
from sentinel_t1190.errors import SentinelT1190Error
from sentinel_t1190.exclusions import Condition, Exclusion, apply
from sentinel_t1190.render import OutputFormat, RowFormatter
from sentinel_t1190.safe_text import FORMULA_START, HIDDEN, one_line

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)

#: Text an attacker controls: KQL and markup syntax, quotes, escapes, placeholders, line
#: breaks, non-ASCII letters, bidi and escape characters — and anything else.
_NASTY = st.sampled_from(["\"", "'", "\\", "\n", "\r", "\t", "{{StartTimeISO}}", "{", "}", "|",
                          "//", "*", "%", "_", "$", "[/]", "é", "Ä", "日", "\u202e", "\x1b",
                          "and", "or", "not(", ")", " "])
TEXT = st.lists(_NASTY | st.text(st.characters(blacklist_categories=("Cs",),
                                                blacklist_characters="\x00"), max_size=6),
                max_size=6).map("".join)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One folder for every example of a module (Hypothesis re-runs the test body)."""
    folder = tmp_path_factory.mktemp("properties")
    previous = tempfile.tempdir
    tempfile.tempdir = str(folder)  # the engine's own temporary files go here too
    yield folder
    tempfile.tempdir = previous


# --- exclusion values are literals -----------------------------------------------------------

_PYTHON = {
    "equals": lambda data, value: data.lower() == value.lower(),
    "contains": lambda data, value: value.lower() in data.lower(),
    "startswith": lambda data, value: data.lower().startswith(value.lower()),
    "endswith": lambda data, value: data.lower().endswith(value.lower()),
}
_QUERY = ("DeviceProcessEvents\n| where Timestamp > ago(1d)\n"
          "| project DeviceName, ProcessCommandLine\n")


@st.composite
def _value_and_lines(draw: st.DrawFn) -> tuple[str, list[str]]:
    value = draw(TEXT.filter(bool))
    lines = draw(st.lists(st.one_of(
        TEXT,
        st.just(value), st.just(value.upper()), st.just(value.swapcase()),
        st.tuples(TEXT, TEXT).map(lambda ab: ab[0] + value + ab[1]),
        st.just(value[:-1]), st.just(value[1:]),
    ), min_size=1, max_size=8))
    return value, lines


@settings(max_examples=200)
@given(op=st.sampled_from(sorted(_PYTHON)), case=_value_and_lines())
def test_an_exclusion_value_is_a_literal_to_the_engine(scratch: Path, op: str,
                                                       case: tuple[str, list[str]]) -> None:
    value, lines = case
    entry = Exclusion("fuzz", "r", "o", None, (Condition("command_line", op, (value,)),))
    query = apply(_QUERY, [entry], ["DeviceProcessEvents"])
    path = scratch / "DeviceProcessEvents.jsonl"
    path.write_text("".join(json.dumps({"Timestamp": "2026-03-01T11:00:00Z",
                                        "DeviceName": f"row{i}", "ProcessCommandLine": line})
                            + "\n" for i, line in enumerate(lines)), encoding="utf-8")
    with LocalEngine() as engine:
        engine.load([LocalFile("DeviceProcessEvents", path)], {})
        _, rows = engine.query(query, now=NOW)
        kept = sorted(row[0] for row in rows)
    expected = sorted(f"row{i}" for i, line in enumerate(lines)
                      if not _PYTHON[op](line, value))
    assert kept == expected, query


# --- file readers: any bytes are a result or a clean error ------------------------------------

_COLUMNS = ["Timestamp", "DeviceName", "AccountName", "InitiatingProcessFileName", "FileName",
            "ProcessCommandLine", "SHA256"]
_CELL = st.one_of(TEXT, st.sampled_from(["2026-03-01T11:00:00Z", "w3wp.exe", "cmd.exe", "",
                                          "2026-13-45T99:00:00", "-", "null", "1e999"]))
_CSV_TEXT = st.tuples(
    st.lists(st.sampled_from([*_COLUMNS, "Timestamp [UTC]", "x", ""]), min_size=1, max_size=9),
    st.lists(st.lists(_CELL, max_size=9), max_size=5),
).map(lambda t: "\n".join(",".join(json.dumps(c) if i % 2 else c for i, c in enumerate(row))
                          for row in [t[0], *t[1]]))
_JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _CELL,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from([*_COLUMNS, "tables", "columns", "rows", "name", "records"]), inner,
        max_size=5), max_leaves=20)
#: Saved Logs API / Event Hub answers, well-formed or nearly (the shapes the readers unwrap).
_COLUMN = st.fixed_dictionaries({"name": st.sampled_from(_COLUMNS), "type": st.sampled_from(
    ["string", "datetime", "long"])})
_TABLE = st.fixed_dictionaries({
    "columns": st.one_of(st.lists(st.one_of(_COLUMN, _JSON_VALUE), max_size=5), _JSON_VALUE),
    "rows": st.one_of(st.lists(st.one_of(st.lists(_CELL, max_size=5), _JSON_VALUE), max_size=4),
                      _JSON_VALUE)})
_ANSWER = st.one_of(
    st.fixed_dictionaries({"tables": st.one_of(st.lists(st.one_of(_TABLE, _JSON_VALUE),
                                                        max_size=3), _JSON_VALUE)}),
    st.fixed_dictionaries({"records": st.lists(st.one_of(
        st.dictionaries(st.sampled_from(_COLUMNS), _CELL), _JSON_VALUE), max_size=4)}))
_CONTENT = st.one_of(
    st.binary(max_size=300),
    _ANSWER.map(lambda v: json.dumps(v).encode()),
    _CSV_TEXT.map(str.encode),
    _JSON_VALUE.map(lambda v: json.dumps(v).encode()),
    st.lists(_JSON_VALUE, max_size=4).map(
        lambda vs: "\n".join(json.dumps(v) for v in vs).encode()),
    st.tuples(st.sampled_from(["#Software: IIS\n#Fields: date time cs-uri-stem c-ip\n",
                               "#Fields: date time\n", ""]), TEXT).map(
        lambda t: (t[0] + t[1]).encode()),
)
_NAMES = ["DeviceProcessEvents.csv", "DeviceProcessEvents.tsv", "DeviceProcessEvents.json",
          "DeviceProcessEvents.jsonl", "DeviceProcessEvents.parquet", "u_ex260301.log",
          "DeviceProcessEvents.csv.gz"]


@settings(max_examples=300)
@given(name=st.sampled_from(_NAMES), content=_CONTENT)
def test_any_file_is_a_result_or_a_clean_error(scratch: Path, name: str,
                                               content: bytes) -> None:
    import gzip

    path = scratch / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    try:
        results = api.hunt_local([str(path)], now=NOW, timespan="7d")
    except SentinelT1190Error as exc:
        assert str(exc).strip(), "an error needs a message"
        return
    for result in results:
        json.dumps(result.to_dict(), default=str)  # a result is always printable as JSON


# --- output: tables and CSV of any text -------------------------------------------------------


@settings(max_examples=300)
@given(command_line=TEXT, device=TEXT, width=st.integers(40, 200))
def test_a_findings_table_shows_any_text_visibly_on_one_line(command_line: str, device: str,
                                                             width: int) -> None:
    row = {"Timestamp": "2026-03-01T11:00:00Z", "DeviceName": device,
           "InitiatingProcessFileName": "w3wp.exe", "FileName": "cmd.exe",
           "ProcessCommandLine": command_line}
    stream = io.StringIO()
    console = render._console(stream)
    console.width = width
    render._print_findings(console, list(row), [row])
    text = stream.getvalue()
    lines = text.splitlines()
    assert len(lines) == 4 and not lines[3].strip(), text  # header, rule, one row, blank
    for line in lines:
        assert cell_len(line) <= width, line
    for ch in text:  # no control, format (bidi), separator or surrogate character
        assert ch == "\n" or unicodedata.category(ch) not in HIDDEN, repr(ch)
    for header, value in (("Command line", command_line), ("Device", device)):
        if header in lines[0]:
            [shown] = table_cells(text, header)
            full = one_line(value).strip()
            assert shown == full or (shown.endswith("…") and full.startswith(
                shown[:-1].rstrip())), (shown, full)


@settings(max_examples=300)
@given(cells=st.lists(st.one_of(TEXT, st.integers(), st.none()), min_size=1, max_size=6),
       raw=st.booleans())
def test_csv_cells_round_trip_neutralised_or_raw(cells: list[Any], raw: bool) -> None:
    columns = [f"c{i}" for i in range(len(cells))]
    formatter = RowFormatter(OutputFormat.csv, columns, raw_csv=raw)
    batch = io.StringIO()
    render.write_rows([dict(zip(columns, cells, strict=True))], columns, OutputFormat.csv,
                      batch, raw_csv=raw)
    for text in (formatter.header() + formatter.rows([cells]), batch.getvalue()):
        header, row = list(csv.reader(io.StringIO(text, newline="")))
        assert header == columns
        for got, cell in zip(row, cells, strict=True):
            shown = "" if cell is None else str(cell)
            risky = isinstance(cell, str) and cell.startswith(FORMULA_START)
            assert got == ("'" + shown if risky and not raw else shown)
            # Text never reaches a spreadsheet as a formula; numbers stay numbers.
            assert raw or not isinstance(cell, str) or not got.startswith(FORMULA_START)
