"""The local engine's DuckDB budget, and reading large CSV without sniffing all of it."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from sentinel_t1190.engine import DEFAULT_MEMORY_LIMIT, LocalEngine, resolve_files

QUERY = ('DeviceProcessEvents | where InitiatingProcessFileName =~ "w3wp.exe" '
         "| project ReportId, ProcessCommandLine | sort by ProcessCommandLine asc")


@pytest.fixture(scope="module")
def wide_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60,000 rows with 640-character command lines in one row group."""
    path = tmp_path_factory.mktemp("budget") / "DeviceProcessEvents.parquet"
    duckdb.connect().execute(
        "COPY (SELECT TIMESTAMP '2026-01-15 11:00:00' AS Timestamp, i AS ReportId, "
        "CASE WHEN i % 100 = 0 THEN 'w3wp.exe' ELSE 'svchost.exe' END "
        "AS InitiatingProcessFileName, 'cmd.exe' AS FileName, "
        "repeat(md5(i::VARCHAR), 20) AS ProcessCommandLine FROM range(60000) t(i)) "
        f"TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 100000)")
    return path


def _run(engine: LocalEngine, path: Path) -> list[tuple[object, ...]]:
    engine.load(resolve_files([str(path)], "DeviceProcessEvents"), {})
    _, rows = engine.query(QUERY)
    return list(rows)


def test_query_within_the_budget_keeps_it(wide_parquet: Path) -> None:
    with LocalEngine() as engine:
        rows = _run(engine, wide_parquet)
        assert engine.limited
        limit = engine.con.execute("SELECT current_setting('memory_limit')").fetchone()
    budget = duckdb.connect()
    budget.execute(f"SET memory_limit = '{DEFAULT_MEMORY_LIMIT}'")
    assert len(rows) == 600
    assert limit == budget.execute("SELECT current_setting('memory_limit')").fetchone()


def test_query_over_the_budget_runs_again_without_it(wide_parquet: Path) -> None:
    with LocalEngine(memory_limit=None) as engine:
        expected = _run(engine, wide_parquet)
    with LocalEngine(memory_limit="8MB") as engine:
        rows = _run(engine, wide_parquet)
        assert not engine.limited  # it ran out of the 8 MB and lifted the budget
    assert rows == expected
    assert len(rows) == 600 and str(rows[0][1]) < str(rows[-1][1])


def test_csv_with_a_quoted_newline_past_the_sniffer_sample(tmp_path: Path) -> None:
    path = tmp_path / "DeviceProcessEvents.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Timestamp", "ReportId", "InitiatingProcessFileName", "FileName",
                         "ProcessCommandLine"])
        for i in range(30_000):
            writer.writerow(["2026-01-15T11:00:00.0000000Z", i, "svchost.exe", "a.exe", "plain"])
        writer.writerow(["2026-01-15T11:00:00.0000000Z", 30_000, "w3wp.exe", "cmd.exe",
                         'cmd.exe /c "echo a, b"\nwhoami'])
    with LocalEngine() as engine:
        rows = _run(engine, path)
    assert rows == [(30_000, 'cmd.exe /c "echo a, b"\nwhoami')]


def test_json_runs_under_duckdbs_default_limit(tmp_path: Path) -> None:
    # DuckDB's JSON reader wants 512 MiB of buffers up front: more than the budget.
    path = tmp_path / "DeviceProcessEvents.json"
    path.write_text('[{"Timestamp": "2026-01-15T11:00:00Z", "ReportId": 1, '
                    '"InitiatingProcessFileName": "W3WP.EXE", "FileName": "cmd.exe", '
                    '"ProcessCommandLine": "cmd.exe /c whoami"}]', encoding="utf-8")
    with LocalEngine() as engine:
        rows = _run(engine, path)
        assert not engine.limited
    assert rows == [(1, "cmd.exe /c whoami")]
