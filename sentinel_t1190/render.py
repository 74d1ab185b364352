"""Every piece of output formatting: rich tables for people, JSON/NDJSON/CSV for machines."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from .hunt import HuntResult
    from .rules import Finding, Rule


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"


def _console(stream: IO[str]) -> Console:
    from rich.console import Console

    return Console(file=stream, soft_wrap=False, width=None if stream.isatty() else 200)


def write_json(document: Any, stream: IO[str]) -> None:
    json.dump(document, stream, indent=2, ensure_ascii=False, default=str)
    stream.write("\n")


def write_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: OutputFormat,
               stream: IO[str]) -> None:
    """Rows as NDJSON (one object a line) or CSV (header from *columns*)."""
    if fmt is OutputFormat.ndjson:
        for row in rows:
            stream.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    else:
        writer = csv.DictWriter(stream, fieldnames=list(columns), extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# --- rules ---------------------------------------------------------------------------------


def rules(items: Sequence[Rule], fmt: OutputFormat, stream: IO[str]) -> None:
    summaries = [r.summary() for r in items]
    if fmt is OutputFormat.json:
        write_json({"rules": summaries}, stream)
        return
    if fmt in (OutputFormat.ndjson, OutputFormat.csv):
        flat = [{**s, **{k: ",".join(s[k]) for k in ("tactics", "techniques", "tables")}}
                for s in summaries]
        cols = ["id", "name", "severity", "tactics", "techniques", "tables"]
        write_rows(flat if fmt is OutputFormat.csv else summaries, cols, fmt, stream)
        return
    from rich.table import Table

    table = Table(title=f"{len(items)} rule(s) in the pack")
    for col in ("id", "name", "severity", "tactics", "techniques", "tables"):
        table.add_column(col, overflow="fold")
    for s in summaries:
        table.add_row(s["id"], s["name"], s["severity"], ", ".join(s["tactics"]),
                      ", ".join(s["techniques"]), ", ".join(s["tables"]))
    _console(stream).print(table)


# --- validate ------------------------------------------------------------------------------


def findings(items: Sequence[Finding], checked: int, fmt: OutputFormat, stream: IO[str]) -> None:
    docs = [f.to_dict() for f in items]
    errors = sum(1 for f in items if f.level == "error")
    if fmt is OutputFormat.json:
        write_json({"checked": checked, "errors": errors, "warnings": len(items) - errors,
                    "findings": docs}, stream)
        return
    if fmt in (OutputFormat.ndjson, OutputFormat.csv):
        write_rows(docs, ["level", "code", "message", "path", "line", "rule_id"], fmt, stream)
        return
    console = _console(stream)
    for f in items:
        where = f"{f.path}:{f.line}" if f.line else (f.path or "-")
        style = "red" if f.level == "error" else "yellow"
        console.print(f"{where}: [{style}]{f.level}[/] [{f.code}] {f.message}", highlight=False,
                      markup=True)
    verdict = "[red]failed[/]" if errors else "[green]ok[/]"
    console.print(f"{checked} file(s) checked: {errors} error(s), {len(items) - errors} "
                  f"warning(s) — {verdict}")


# --- hunt ----------------------------------------------------------------------------------

_TABLE_COLUMNS = ("Timestamp", "DeviceName", "AccountName", "InitiatingProcessFileName",
                  "FileName", "ExploitEvidence", "ProcessCommandLine")


def hunt(results: Sequence[HuntResult], fmt: OutputFormat, stream: IO[str]) -> None:
    if fmt is OutputFormat.json:
        docs = [r.to_dict() for r in results]
        write_json(docs[0] if len(docs) == 1 else {"results": docs}, stream)
        return
    if fmt in (OutputFormat.ndjson, OutputFormat.csv):
        columns: list[str] = []
        for r in results:
            columns.extend(c for c in r.columns if c not in columns)
        rows = [row for r in results for row in r.findings]
        write_rows(rows, columns, fmt, stream)
        return
    console = _console(stream)
    for r in results:
        _hunt_table(r, console)


def _hunt_table(result: HuntResult, console: Console) -> None:
    from rich.table import Table

    window = result.window.to_dict()
    shown = [c for c in _TABLE_COLUMNS if c in result.columns] or result.columns[:7]
    table = Table(title=f"{result.rule.name}\n{window['start']} → {window['end']}: "
                        f"{len(result.findings)} finding(s)")
    for col in shown:
        width = 60 if col.endswith("CommandLine") else None
        table.add_column(col, overflow="fold", max_width=width)
    for row in result.findings:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in shown))
    console.print(table)
    summary = result.summary()["by_evidence"]
    if summary:
        counts = Table(title="by ExploitEvidence")
        counts.add_column("ExploitEvidence")
        counts.add_column("findings", justify="right")
        for label, n in summary.items():
            counts.add_row(label, str(n))
        console.print(counts)
    if not result.complete:
        console.print("[red]INCOMPLETE: some of the window was not searched (see warnings)[/]")


# --- export ----------------------------------------------------------------------------------


def exported(paths: Sequence[Path], folder: Path, stream: IO[str]) -> None:
    """Which files ``export --out`` wrote (the CLI passes stderr: stdout carries results)."""
    stream.write(f"wrote {len(paths)} file(s) to {folder}:\n")
    for path in paths:
        stream.write(f"  {path}\n")
