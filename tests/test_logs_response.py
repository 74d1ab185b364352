"""The streaming parser of Logs API bodies, and the batch NDJSON/CSV row formatter."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190.logs_response import (
    ResponseFormatError,
    normalize_datetime,
    parse_chunks,
)
from sentinel_t1190.render import OutputFormat, RowFormatter

REFERENCE = Path(__file__).parent / "data" / "azure"
TRICKY = [
    ["2026-01-10T11:59:31.8731150Z", "web],[01", 'cmd.exe /c "echo ],[ %s %d"', None, 3,
     "ünïcode ✓ \\ back\\slash", "tab\tnew\nline\x00nul", True, 1.5],
    ["2026-01-10T11:59:31Z", "", "]]},{", "", -1, "]", "[", False, 0.0],
]
COLUMNS = [{"name": f"c{i}", "type": t} for i, t in enumerate(
    ["datetime", "string", "string", "string", "long", "string", "string", "bool", "real"])]


def body(rows: list[list[Any]], error: dict[str, Any] | None = None,
         compact: bool = True) -> bytes:
    doc: dict[str, Any] = {"tables": [{"name": "PrimaryResult", "columns": COLUMNS,
                                       "rows": rows}]}
    if error:
        doc["error"] = error
    seps = (",", ":") if compact else (", ", ": ")
    return json.dumps(doc, separators=seps, ensure_ascii=False).encode()


def parse(data: bytes, chunk: int, batch: int = 64) -> tuple[list[list[Any]], Any]:
    got: list[list[Any]] = []
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    result = parse_chunks(chunks, got.extend, batch_chars=batch)
    return got, result


def expected(rows: list[list[Any]]) -> list[list[Any]]:
    return [[normalize_datetime(r[0]), *r[1:]] for r in rows]


@pytest.mark.parametrize("chunk", [1, 7, 100, 1 << 20])
@pytest.mark.parametrize("compact", [True, False])
def test_rows_survive_any_chunking(chunk: int, compact: bool) -> None:
    rows = [list(r) for r in TRICKY] * 40
    got, result = parse(body(rows, compact=compact), chunk)
    assert got == expected(rows)
    assert result.rows == len(rows) and result.error is None
    assert result.columns == [c["name"] for c in COLUMNS]
    assert result.types[0] == "datetime"


def test_partial_error_after_the_rows_is_kept() -> None:
    recording = json.loads((REFERENCE / "azure-sdk-assets-monitor-query" / (
        "test_logs_client.pyTestLogsClienttest_logs_single_query_with_partial_success.json"
    )).read_text())
    response = recording["Entries"][-1]["ResponseBody"]
    got, result = parse(json.dumps(response).encode(), 5)
    assert got == [[2]]
    assert result.columns == ["percentile_x_50"]
    assert result.error is not None and result.error["code"] == "PartialError"
    assert "E_OVERFLOW" in result.error["details"][0]["innererror"]["message"]


def test_the_reference_success_example() -> None:
    example = json.loads((REFERENCE / "loganalytics-dataplane-v1" /
                          "oms-post-example.json").read_text())
    response = example["responses"]["200"]["body"]
    got, result = parse(json.dumps(response).encode(), 13)
    assert len(got) == 2 and got[0][1] == "ContosoSQLSrv1"
    assert got[0][2] == "2017-08-24T06:59:59.000000Z"  # datetime normalised
    assert result.columns[:3] == ["TenantId", "Computer", "TimeGenerated"]
    assert result.error is None


def test_an_empty_result_table_is_a_result() -> None:
    got, result = parse(body([]), 3)
    assert got == [] and result.rows == 0 and len(result.columns) == len(COLUMNS)
    assert result.tables == 1


TWO_COLUMNS = '"columns":[{"name":"a","type":"string"},{"name":"b","type":"string"}]'
MALFORMED = {
    "empty body": ("", "empty"),
    "whitespace": ("  \n", "empty"),
    "empty object": ("{}", "no result table"),
    "no tables": ('{"tables":[]}', "no result table"),
    "tables null": ('{"tables":null}', "no result table"),
    "tables not a list": ('{"tables":7}', "no result table"),
    "table not an object": ('{"tables":[7]}', "no result table"),
    "only an error": ('{"error":{"code":"BadThing","message":"nope"}}',
                      "no result table.*BadThing: nope"),
    "error not an object": ('{"tables":[{' + TWO_COLUMNS + ',"rows":[]}],"error":"x"}',
                            "error is not an object"),
    "no columns": ('{"tables":[{"name":"t","rows":[]}]}', "no columns"),
    "zero columns": ('{"tables":[{"columns":[],"rows":[]}]}', "no columns"),
    "nameless column": ('{"tables":[{"columns":[{"type":"string"}],"rows":[]}]}',
                        "unreadable column"),
    "column name not text": ('{"tables":[{"columns":[{"name":1}],"rows":[]}]}',
                             "unreadable column"),
    "columns not a list": ('{"tables":[{"columns":{"name":"a"},"rows":[["x"]]}]}',
                           "no columns"),
    "no rows array": ('{"tables":[{' + TWO_COLUMNS + '}]}', "no rows array"),
    "rows null": ('{"tables":[{' + TWO_COLUMNS + ',"rows":null}]}', "no rows array"),
    "too few cells": ('{"tables":[{' + TWO_COLUMNS + ',"rows":[["x","y"],["x"]]}]}',
                      "row 2 .* 1 cells for 2 columns"),
    "too many cells": ('{"tables":[{' + TWO_COLUMNS + ',"rows":[["x","y","z"]]}]}',
                       "row 1 .* 3 cells for 2 columns"),
    "row not an array": ('{"tables":[{' + TWO_COLUMNS + ',"rows":[{"a":1}]}]}',
                         "not an array"),
    "rows in the second table": ('{"tables":[{' + TWO_COLUMNS + '},{' + TWO_COLUMNS
                                 + ',"rows":[["x","y"]]}]}', "not those of its first table"),
    "escaped rows key": ('{"tables":[{' + TWO_COLUMNS + ',"\\u0072ows":[["x","y"]]}]}',
                         "rows could not be read"),
    "datetime that is no date": ('{"tables":[{"columns":[{"name":"T","type":"datetime"}],'
                                 '"rows":[["yesterday"]]}]}', "'T' holds 'yesterday'"),
}


@pytest.mark.parametrize("text,message", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("chunk", [1, 1 << 20])
def test_malformed_answers_are_refused_never_complete(text: str, message: str,
                                                     chunk: int) -> None:
    with pytest.raises(ResponseFormatError, match=message):
        parse(text.encode(), chunk, batch=8)


def test_truncated_or_garbage_bodies_raise() -> None:
    data = body([list(r) for r in TRICKY])
    with pytest.raises(ResponseFormatError):
        parse(data[:-30], 10)
    with pytest.raises(ResponseFormatError):
        parse(b"<html>proxy error</html>", 10)


def test_dynamic_columns_fall_back_to_exact_decoding() -> None:
    columns = [{"name": "a", "type": "dynamic"}, {"name": "b", "type": "long"}]
    rows = [[[1, 2], 1], [["x"], 2], [{"k": [3]}, 3]] * 50
    data = json.dumps({"tables": [{"name": "t", "columns": columns, "rows": rows}]},
                      separators=(",", ":")).encode()
    got: list[list[Any]] = []
    parse_chunks([data[i:i + 9] for i in range(0, len(data), 9)], got.extend, batch_chars=40)
    assert got == rows


@pytest.mark.parametrize(("text", "want"), [
    ("2026-01-10T11:59:31.8731150Z", "2026-01-10T11:59:31.873115Z"),
    ("2026-01-10T11:59:31Z", "2026-01-10T11:59:31.000000Z"),
    ("2026-01-10T11:59:31.5Z", "2026-01-10T11:59:31.500000Z"),
    ("2026-01-10T12:59:31+01:00", "2026-01-10T11:59:31.000000Z"),
    (None, None),
])
def test_normalize_datetime(text: str | None, want: str | None) -> None:
    assert normalize_datetime(text) == want


def test_ndjson_formatter_matches_json_dumps_row_by_row() -> None:
    names = [c["name"] for c in COLUMNS]
    formatter = RowFormatter(OutputFormat.ndjson, names, {"WorkspaceId": "w%s"})
    text = formatter.rows(TRICKY)
    lines = text.splitlines(keepends=True)
    assert len(lines) == 2 and text.endswith("\n")
    for line, row in zip(lines, TRICKY, strict=True):
        assert json.loads(line) == {**dict(zip(names, row, strict=True)), "WorkspaceId": "w%s"}
    assert formatter.rows([]) == ""


def test_csv_formatter() -> None:
    names = [c["name"] for c in COLUMNS]
    formatter = RowFormatter(OutputFormat.csv, names, {"WorkspaceId": "w1"})
    text = formatter.header() + formatter.rows(TRICKY)
    records = list(csv.reader(io.StringIO(text)))
    assert records[0] == [*names, "WorkspaceId"]
    assert records[1][2] == 'cmd.exe /c "echo ],[ %s %d"' and records[1][-1] == "w1"
    assert len(records) == 3


def ndjson(rows: list[list[Any]], names: list[str], extra: dict[str, Any] | None = None) -> str:
    return "".join(json.dumps({**dict(zip(names, r, strict=True)), **(extra or {})},
                              ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)


@pytest.mark.parametrize("extra", [None, {"WorkspaceId": "w\"1 ✓"}])
@pytest.mark.parametrize("typed", [False, True])
def test_ndjson_is_byte_for_byte_json_dumps(extra: dict[str, Any] | None, typed: bool) -> None:
    # str/int/bool/None go through orjson, floats through the standard library: same bytes
    names = [c["name"] for c in COLUMNS]
    types = [c["type"] for c in COLUMNS] if typed else None
    no_floats = [[*r[:-1], 7] for r in TRICKY] + [["", "\u2028\x7f", "😀", None, 2**63, "", "",
                                                   False, -(2**63)]]
    for rows in (no_floats, TRICKY, [[*r[:-1], 1e-05] for r in TRICKY]):
        formatter = RowFormatter(OutputFormat.ndjson, names, extra, types)
        assert formatter.rows(rows) == ndjson(rows, names, extra)
        assert formatter.encode(rows) == ndjson(rows, names, extra).encode()
    assert "1e-05" in formatter.rows(rows)  # Python's float repr, not orjson's 0.00001


def test_ndjson_values_orjson_refuses_still_encode() -> None:
    names = ["a", "b"]
    rows: list[list[Any]] = [[2**64, "x"], [-(2**63) - 1, [1, {"k": None}]]]
    assert RowFormatter(OutputFormat.ndjson, names).rows(rows) == ndjson(rows, names)
    dup = RowFormatter(OutputFormat.ndjson, ["WorkspaceId"], {"WorkspaceId": "w"})
    assert dup.rows([["v"]]) == '{"WorkspaceId":"v","WorkspaceId":"w"}\n'


def test_rows_orjson_refuses_take_the_exact_path() -> None:
    # NaN and a lone surrogate escape are what Python's json reads and orjson does not
    head = json.dumps({"tables": [{"name": "t", "columns": COLUMNS[:3]}]})[:-3]
    rows = ['["2026-01-10T11:59:31.8731150Z", "a", "\\ud800"]', '[null, "NaN", "b"]',
            '["2026-01-10T11:59:31Z", "c", "ü"]'] * 30
    data = (head + ', "rows": [' + ", ".join(rows) + "]}]}").encode()
    data = data.replace(b'"NaN"', b"NaN")
    got, result = parse(data, 50, batch=200)
    assert got == expected(json.loads(data)["tables"][0]["rows"])
    assert result.rows == 90 and got[0][2] == "\ud800" and got[1][1] != got[1][1]  # NaN


def test_invalid_utf8_is_a_format_error() -> None:
    data = body([list(r) for r in TRICKY] * 20).replace("ünïcode".encode(), b"\xff\xfe")
    for batch in (64, 1 << 20):
        with pytest.raises(ResponseFormatError, match="UTF-8"):
            parse(data, 100, batch=batch)
