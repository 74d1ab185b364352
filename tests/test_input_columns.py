"""Telemetry files whose columns are ambiguous are refused, naming the columns."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run

NOW = "2026-11-27T12:00:00Z"
ROW = "2026-11-27T10:00:00Z,web-01,web-02,w3wp.exe,cmd.exe,cmd /c whoami,x"


def _one_error_line(run: Run) -> str:
    assert run.code == 2, (run.code, run.stdout, run.stderr, run.exception)
    assert run.stdout == "" and run.stderr.startswith("error: ")
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    return run.stderr


@pytest.mark.parametrize(("header", "named"), [
    ("Timestamp,DeviceName,DeviceName", "'DeviceName', 'DeviceName'"),
    ("Timestamp,DeviceName,devicename", "'DeviceName', 'devicename'"),
    ("Timestamp [UTC],DeviceName,Timestamp", "'Timestamp [UTC]', 'Timestamp'"),
])
@pytest.mark.parametrize("name", ["DeviceProcessEvents.csv", "DeviceProcessEvents.csv.gz",
                                  "DeviceProcessEvents.tsv"])
def test_a_header_naming_a_column_twice_is_an_error(cli: Callable[..., Run], tmp_path: Path,
                                                    header: str, named: str,
                                                    name: str) -> None:
    columns = ",InitiatingProcessFileName,FileName,ProcessCommandLine,AccountName"
    text = f"{header}{columns}\n{ROW}\n"
    if name.endswith(".tsv"):
        text = text.replace(",", "\t")
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    stderr = _one_error_line(cli("hunt", "--local", str(path), "--now", NOW))
    assert f"{path}: the header names a column more than once: {named}" in stderr


def test_a_logs_api_answer_naming_a_column_twice_is_an_error(cli: Callable[..., Run],
                                                              tmp_path: Path) -> None:
    names = ["Timestamp", "DeviceName", "DeviceName", "InitiatingProcessFileName", "FileName"]
    answer = {"tables": [{"name": "PrimaryResult",
                          "columns": [{"name": n, "type": "string"} for n in names],
                          "rows": [["2026-11-27T10:00:00Z", "a", "b", "w3wp.exe", "cmd.exe"]]}]}
    path = tmp_path / "DeviceProcessEvents.json"
    path.write_text(json.dumps(answer), encoding="utf-8")
    stderr = _one_error_line(cli("hunt", "--local", str(path), "--now", NOW))
    assert "the answer names a column more than once: 'DeviceName'" in stderr


@pytest.mark.parametrize("tables", [[1], [{"columns": 5}], [{"columns": [], "rows": [7]}]])
def test_malformed_logs_api_answers_are_clean_errors(cli: Callable[..., Run], tmp_path: Path,
                                                     tables: list[object]) -> None:
    path = tmp_path / "DeviceProcessEvents.json"
    path.write_text(json.dumps({"tables": tables}), encoding="utf-8")
    assert "Logs API answer" in _one_error_line(cli("hunt", "--local", str(path), "--now", NOW))


def test_an_unreadable_timestamp_with_no_finding_is_a_clean_error(cli: Callable[..., Run],
                                                                  tmp_path: Path) -> None:
    # Found by test_properties: the "no row in the window" hint read the column unguarded.
    rows = [{"Timestamp": "", "DeviceName": "", "InitiatingProcessFileName": "",
             "FileName": "", "ProcessCommandLine": "", "AccountName": "", "SHA256": ""},
            {"Timestamp": "x[/]", "DeviceName": ""}]
    path = tmp_path / "DeviceProcessEvents.jsonl"
    path.write_text(json.dumps({"records": rows}), encoding="utf-8")
    stderr = _one_error_line(cli("hunt", "--local", str(path), "--now", NOW))
    assert "column Timestamp: unparseable timestamp 'x[/]'" in stderr
