"""Every piece of output formatting: rich tables for people, JSON/NDJSON/CSV for machines."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from .hunt import HuntResult
    from .rules import Finding, Rule


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"


#: Width of tables written to a pipe or file (CI logs, ``less``, ``--out``): room for a hunt's
#: seven columns with a readable command line; on a terminal, the terminal's width.
PIPE_WIDTH = 160


def _console(stream: IO[str]) -> Console:
    from rich.console import Console

    return Console(file=stream, soft_wrap=False,
                   width=None if stream.isatty() else PIPE_WIDTH)


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
    from rich.markup import escape

    console = _console(stream)
    for f in items:
        where = f"{f.path}:{f.line}" if f.line else (f.path or "-")
        style = "red" if f.level == "error" else "yellow"
        console.print(f"{escape(where)}: [{style}]{f.level}[/] {escape(f'[{f.code}]')} "
                      f"{escape(f.message)}", highlight=False, markup=True)
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


#: Short headers for people; timestamps never fold, other cells fold within a width.
_TABLE_HEADERS = {"Timestamp": "Timestamp (UTC)", "DeviceName": "Device",
                  "AccountName": "Account", "InitiatingProcessFileName": "Parent",
                  "FileName": "Process", "ExploitEvidence": "Evidence",
                  "ProcessCommandLine": "Command line"}
_NO_WRAP = {"Timestamp"}
_MAX_WIDTHS = {"DeviceName": 24, "AccountName": 16, "InitiatingProcessFileName": 16,
               "FileName": 14, "ExploitEvidence": 12}


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if column == "Timestamp" and len(text) > 19 and text[10] == "T":
        return text[:19].replace("T", " ")  # to the second; JSON/CSV keep the full value
    return text


def _hunt_table(result: HuntResult, console: Console) -> None:
    from rich.table import Table

    window = result.window.to_dict()
    shown = [c for c in _TABLE_COLUMNS if c in result.columns]
    if len(shown) < 4:  # another rule's columns (companion rules): its first ones
        shown = [c for c in result.columns if c != "FileHashAlgorithm"][:8]
    table = Table(title=f"{result.rule.name}\n{window['start']} → {window['end']}: "
                        f"{len(result.findings)} finding(s)")
    for col in shown:
        if col in _NO_WRAP:
            table.add_column(_TABLE_HEADERS.get(col, col), no_wrap=True)
        else:
            table.add_column(_TABLE_HEADERS.get(col, col), overflow="fold",
                             max_width=_MAX_WIDTHS.get(col, 60))
    for row in result.findings:
        table.add_row(*(_cell(c, row.get(c)) for c in shown))
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


# --- test ----------------------------------------------------------------------------------


def rule_tests(document: dict[str, Any], fmt: OutputFormat, stream: IO[str]) -> None:
    """``test`` results (``ruletest.summary``): JSON, or per-case lines with diffs."""
    if fmt is OutputFormat.json:
        write_json(document, stream)
        return
    if fmt in (OutputFormat.ndjson, OutputFormat.csv):
        rows = [{"rule_id": r["rule"]["id"], "rule": r["rule"]["name"], "case": c["name"],
                 "kind": c["kind"], "passed": c["passed"], "error": c["error"]}
                for r in document["rules"] for c in r["cases"]]
        write_rows(rows, ["rule_id", "rule", "case", "kind", "passed", "error"], fmt, stream)
        return
    console = _console(stream)
    for r in document["rules"]:
        mark = "[green]PASS[/]" if r["passed"] else "[red]FAIL[/]"
        console.print(f"{mark} {r['rule']['name']} ({r['rule']['id']})", highlight=False)
        for problem in r["problems"]:
            console.print(f"    [red]{problem}[/]", highlight=False)
        for c in r["cases"]:
            sign = "[green]ok[/]  " if c["passed"] else "[red]FAIL[/]"
            console.print(f"  {sign} {c['kind']}: {c['name']}", highlight=False)
            if c["error"]:
                console.print(f"       error: {c['error']}", highlight=False, markup=False)
            for label, rows in (("- expected, not found", c["missing"]),
                                ("+ found, not expected", c["unexpected"])):
                for row in rows:
                    console.print(f"       {label}: {json.dumps(row, default=str)}",
                                  highlight=False, markup=False)
    s = document["summary"]
    verdict = "[green]passed[/]" if document["passed"] else "[red]failed[/]"
    console.print(f"{s['rules']} rule(s), {s['cases']} case(s): {s['cases_failed']} case(s) "
                  f"failed, {s['rules_failed']} rule(s) failed — {verdict}", highlight=False)
