"""Every piece of output formatting: rich tables for people, JSON/NDJSON/CSV for machines."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from itertools import chain, repeat
from operator import itemgetter
from typing import IO, TYPE_CHECKING, Any

from .safe_text import csv_text, literal, markup, visible

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console
    from rich.text import Text

    from .deploy import DeployResult, RemoveResult, StatusResult
    from .hunt import HuntResult
    from .rules import Finding, Rule


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"
    #: deploy / status / remove only (plans for pull-request comments).
    markdown = "markdown"


#: Width of tables written to a pipe or file (CI logs, ``less``, ``--out``) unless ``COLUMNS``
#: says otherwise: room for a hunt's key columns and a readable command line. On a terminal,
#: the terminal's width.
PIPE_WIDTH = 160


def _console(stream: IO[str]) -> Console:
    from rich.console import Console

    return Console(file=stream, soft_wrap=False, width=None if stream.isatty() else _pipe_width())


def _pipe_width() -> int:
    import os

    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and 40 <= int(columns) <= 1000 else PIPE_WIDTH


def write_json(document: dict[str, Any], stream: IO[str]) -> None:
    """A JSON document, ``schema_version`` first (its schema: sentinel_t1190/output_schemas)."""
    from .output_schemas import versioned

    json.dump(versioned(document), stream, indent=2, ensure_ascii=False, default=str)
    stream.write("\n")


def write_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: OutputFormat,
               stream: IO[str], *, raw_csv: bool = False) -> None:
    """Rows as NDJSON (one object a line) or CSV (header from *columns*).

    CSV cells a spreadsheet would run as formulas are neutralised unless *raw_csv*.
    """
    if fmt is OutputFormat.ndjson:
        for row in rows:
            stream.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    else:
        stream.write(csv_text(chain([columns], ([row.get(c) for c in columns] for row in rows)),
                               raw=raw_csv))


# --- rules ---------------------------------------------------------------------------------


def rules(items: Sequence[Rule], fmt: OutputFormat, stream: IO[str]) -> None:
    summaries = [r.summary() for r in items]
    if fmt is OutputFormat.json:
        write_json({"rules": summaries}, stream)
        return

    def flat(separator: str) -> list[dict[str, Any]]:  # the list fields as one text each
        return [{**s, **{k: separator.join(s[k]) for k in ("tactics", "techniques", "tables")}}
                for s in summaries]

    if fmt in (OutputFormat.ndjson, OutputFormat.csv):
        cols = ["id", "short_id", "name", "severity", "tactics", "techniques", "tables"]
        write_rows(flat(",") if fmt is OutputFormat.csv else summaries, cols, fmt, stream)
        return
    from .table_layout import Col, fitted_table

    # The short id first (what --rule takes and people read), the GUID when there is room.
    shown = [Col("short_id", "rule", 22, 32), Col("name", "name", 24, flex=True),
            Col("severity", "severity", 8, 13), Col("tables", "tables", 12, 60),
            Col("techniques", "techniques", 10, 30), Col("tactics", "tactics", 10, 40),
            Col("id", "id", 36, 36)]
    console = _console(stream)
    console.print(f"{len(items)} rule(s) in the pack", markup=False, highlight=False)
    console.print(fitted_table(shown, flat(", "), console.width, wrap=True))


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
        console.print(f"{markup(where)}: [{style}]{f.level}[/] {markup(f'[{f.code}]')} "
                      f"{markup(f.message)}", highlight=False, markup=True)
    verdict = "[red]failed[/]" if errors else "[green]ok[/]"
    console.print(f"{checked} file(s) checked: {errors} error(s), {len(items) - errors} "
                  f"warning(s) — {verdict}")


# --- hunt ----------------------------------------------------------------------------------

#: Rows a findings table shows; its footer counts the rest (JSON, NDJSON and CSV hold all).
TABLE_ROWS = 1000


def hunt(results: Sequence[HuntResult], fmt: OutputFormat, stream: IO[str], *,
         raw_csv: bool = False) -> None:
    """Local hunt results; findings kept in the engine are written out a batch at a time."""
    if fmt is OutputFormat.json:
        if len(results) == 1:
            _hunt_document(results[0], stream, "")
            stream.write("\n")
        elif results:
            from .output_schemas import SCHEMA_VERSION

            stream.write(f'{{\n  "schema_version": {SCHEMA_VERSION},\n  "results": [\n    ')
            for i, r in enumerate(results):
                stream.write(",\n    " if i else "")
                _hunt_document(r, stream, "    ")
            stream.write("\n  ]\n}\n")
        else:
            write_json({"results": []}, stream)
        return
    if fmt is OutputFormat.ndjson:
        for r in results:
            if r.stored is not None:
                stream.writelines(r.stored.ndjson())
            else:
                write_rows(r.findings, r.columns, fmt, stream)
        return
    if fmt is OutputFormat.csv:
        columns: list[str] = []
        for r in results:
            columns.extend(c for c in r.columns if c not in columns)
        stream.write(csv_text([columns], raw=raw_csv))
        for r in results:
            if r.stored is not None:
                stream.writelines(r.stored.csv(columns, raw=raw_csv))
            else:
                stream.write(csv_text(([row.get(c) for c in columns] for row in r.findings),
                                      raw=raw_csv))
        return
    console = _console(stream)
    for r in results:
        _hunt_table(r, console)


def _hunt_document(result: HuntResult, stream: IO[str], pad: str) -> None:
    """*result* as ``json.dump(indent=2)`` writes it at the depth of *pad*, no final newline;
    at the top (no *pad*) it is the whole document and carries ``schema_version``."""
    from .output_schemas import versioned

    head = json.dumps(versioned(result.head()) if not pad else result.head(), indent=2,
                      ensure_ascii=False, default=str)
    stream.write(head.removesuffix("\n}").replace("\n", "\n" + pad)
                 + ",\n" + pad + '  "findings": [')
    item_pad = pad + "    "
    if result.stored is not None:
        batches = result.stored.json_items(item_pad)
    else:
        batches = iter([[json.dumps(row, indent=2, ensure_ascii=False, default=str)
                         .replace("\n", "\n" + item_pad) for row in result.findings]])
    first = True
    for items in batches:
        if items:
            stream.write(("\n" if first else ",\n") + item_pad
                         + (",\n" + item_pad).join(items))
            first = False
    stream.write("]\n" + pad + "}" if first else "\n" + pad + "  ]\n" + pad + "}")


def _cell(column: str, value: Any) -> str:
    text = "" if value is None else str(value)
    if column in _TIME_COLUMNS and len(text) > 19 and text[10] == "T":
        text = text[:19].replace("T", " ")  # to the second; JSON/CSV keep the full value
    return text


_TIME_COLUMNS = {"Timestamp", "TimeGenerated"}


def _print_findings(console: Console, columns: Sequence[str],
                    rows: Iterable[dict[str, Any]]) -> None:
    """Findings as one line per row, fitted to the console (see ``table_layout``), then a
    blank line."""
    from .table_layout import fitted_table, view

    console.print(fitted_table(view(columns), rows, console.width, _cell))
    console.print()


def _heading(console: Console, name: str, window: dict[str, Any], total: int) -> None:
    """What a findings table is about, before its rows: the rule, the window, the count."""
    console.print(f"[bold]{markup(name)}[/]\n{markup(window['start'])} → "
                  f"{markup(window['end'])}: {total:,} finding(s)", highlight=False)


def _more_rows(console: Console, shown: int, total: int) -> None:
    """A table's footer when it shows only the first rows: how many more, and how to get them."""
    if total > shown:
        console.print(f"… and {total - shown:,} more finding(s) not shown: "
                      f"--output ndjson, csv or json with --out FILE writes all {total:,}.",
                      markup=False, highlight=False)


def _hunt_table(result: HuntResult, console: Console) -> None:
    from rich.table import Table

    _heading(console, result.rule.name, result.window.to_dict(), result.total)
    if result.total:
        _print_findings(console, result.columns, list(result.rows(TABLE_ROWS)))
    _more_rows(console, TABLE_ROWS, result.total)
    summary = result.summary()["by_evidence"]
    if summary:
        counts = Table(title="by ExploitEvidence")
        counts.add_column("ExploitEvidence")
        counts.add_column("findings", justify="right")
        for label, n in summary.items():
            counts.add_row(literal(label), str(n))
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
        console.print(f"{mark} {markup(r['rule']['name'])} ({markup(r['rule']['id'])})",
                      highlight=False)
        for problem in r["problems"]:
            console.print(f"    [red]{markup(problem)}[/]", highlight=False)
        for c in r["cases"]:
            sign = "[green]ok[/]  " if c["passed"] else "[red]FAIL[/]"
            console.print(f"  {sign} {markup(c['kind'])}: {markup(c['name'])}", highlight=False)
            if c["error"]:
                console.print(f"       error: {visible(c['error'])}", highlight=False,
                              markup=False)
            for label, rows in (("- expected, not found", c["missing"]),
                                ("+ found, not expected", c["unexpected"])):
                for row in rows:
                    console.print(f"       {label}: {json.dumps(row, default=str)}",
                                  highlight=False, markup=False)
    s = document["summary"]
    verdict = "[green]passed[/]" if document["passed"] else "[red]failed[/]"
    console.print(f"{s['rules']} rule(s), {s['cases']} case(s): {s['cases_failed']} case(s) "
                  f"failed, {s['rules_failed']} rule(s) failed — {verdict}", highlight=False)


# --- live hunts: rows streamed as they arrive ------------------------------------------------


def _json_token_encoder() -> Any:
    # "\x00" as the item separator: JSON escapes every control character inside strings, so
    # a raw NUL in the output can only be a separator between two encoded values.
    return json.JSONEncoder(ensure_ascii=False, separators=("\x00", ":"), default=str).encode


class RowFormatter:
    """Encode batches of rows (lists in *columns* order) as NDJSON lines or CSV records.

    *extra* columns (e.g. ``WorkspaceId``) get the same value on every row of a formatter.
    NDJSON is encoded a batch at a time without Python-level work per value: with orjson
    (one ``dict(zip())`` per row, in C, then ``orjson.dumps``) when every value is a str, int,
    bool or None, else with the standard library (all values in one C-level ``json`` call,
    interleaved with the pre-encoded keys by list-slice assignment). Both give the same bytes
    as ``json.dumps(row_dict, ensure_ascii=False, separators=(",", ":"))``; floats always take
    the standard-library path, whose ``repr`` (``1e-05``) orjson does not write. *types* are
    the Logs API column types: columns of a type that cannot hold floats are not scanned.
    CSV cells a spreadsheet would run as formulas are neutralised unless *raw_csv*.
    """

    def __init__(self, fmt: OutputFormat, columns: Sequence[str],
                 extra: dict[str, Any] | None = None,
                 types: Sequence[str] | None = None, *, raw_csv: bool = False) -> None:
        if fmt not in (OutputFormat.ndjson, OutputFormat.csv):
            raise ValueError(f"rows stream as ndjson or csv, not {fmt}")
        self.fmt = fmt
        self.columns = list(columns)
        self.extra = dict(extra or {})
        self.raw_csv = raw_csv
        self._encode = _json_token_encoder()
        keys = [json.dumps(c, ensure_ascii=False) + ":" for c in self.columns]
        tail = "".join("," + json.dumps(k, ensure_ascii=False) + ":"
                       + json.dumps(v, ensure_ascii=False, default=str)
                       for k, v in self.extra.items())
        self._end = tail + "}\n"
        self._colkeys = keys
        # the text before each value; a row's first key also closes the previous line
        self._first = "{" + keys[0] if keys else ""
        self._keys = [self._end + "{" + keys[0], *("," + k for k in keys[1:])] if keys else []
        self._empty = "{" + tail.removeprefix(",") + "}\n"
        # orjson: dict keys must be unique, and the extra values plain
        names = [*self.columns, *self.extra]
        self._names = names if len(set(names)) == len(names) and all(
            type(v) in _PLAIN for v in self.extra.values()) and self.columns else None
        self._tail = list(self.extra.values())
        self._scan = [itemgetter(i) for i, t in enumerate(
            types if types is not None and len(types) == len(self.columns)
            else [""] * len(self.columns)) if t not in _NO_FLOATS]

    def header(self) -> str:
        """The CSV header line ('' for NDJSON)."""
        if self.fmt is not OutputFormat.csv:
            return ""
        return csv_text([[*self.columns, *self.extra]], raw=self.raw_csv)

    def rows(self, rows: Sequence[Sequence[Any]]) -> str:
        fast = self._orjson_lines(rows)
        return fast.decode("utf-8") if fast is not None else self._text(rows)

    def encode(self, rows: Sequence[Sequence[Any]]) -> bytes:
        """:meth:`rows` as UTF-8."""
        fast = self._orjson_lines(rows)
        return fast if fast is not None else self._text(rows).encode("utf-8")

    def _orjson_lines(self, rows: Sequence[Sequence[Any]]) -> bytes | None:
        if self.fmt is not OutputFormat.ndjson or self._names is None or not rows:
            return None
        if set(map(len, rows)) != {len(self.columns)}:
            raise ValueError("a row does not have one value per column")
        for get in self._scan:
            if not set(map(type, map(get, rows))) <= _PLAIN:
                return None
        import orjson

        cells = map(chain, rows, repeat(self._tail)) if self._tail else rows
        try:
            return b"\n".join(map(orjson.dumps, map(dict, map(
                zip, repeat(self._names), cells)))) + b"\n"
        except orjson.JSONEncodeError:  # an int beyond 64 bits, a lone surrogate
            return None

    def _text(self, rows: Sequence[Sequence[Any]]) -> str:
        if not rows:
            return ""
        if self.fmt is OutputFormat.csv:
            tail = list(self.extra.values())
            return csv_text([[*r, *tail] for r in rows] if tail else rows, raw=self.raw_csv)
        width = len(self.columns)
        if set(map(len, rows)) != {width}:
            raise ValueError("a row does not have one value per column")
        if width == 0:
            return self._empty * len(rows)
        tokens = self._encode(list(chain.from_iterable(rows)))[1:-1].split("\x00")
        if len(tokens) != width * len(rows):  # a list or object value holding the separator
            value = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                                     default=str).encode
            return "".join("{" + ",".join(map(str.__add__, self._colkeys, map(value, r)))
                           + self._end for r in rows)
        parts = self._keys * len(rows)
        parts[0] = self._first
        text = [""] * (2 * len(tokens))
        text[0::2] = parts
        text[1::2] = tokens
        text.append(self._end)
        return "".join(text)


#: Types orjson writes exactly as ``json.dumps`` does (bool and None included).
_PLAIN = frozenset({str, int, bool, type(None)})
#: Logs API column types whose cells (decoded from JSON) are never floats, lists or dicts.
_NO_FLOATS = frozenset({"string", "datetime", "guid", "timespan", "bool", "boolean", "int",
                        "long"})




def hunt_live_document(doc: dict[str, Any], findings_ndjson: IO[str], stream: IO[str], *,
                       top: bool = True) -> None:
    """The hunt JSON document with its findings copied from an NDJSON file, line by line.

    Memory does not grow with the number of findings: *doc* holds everything but them.
    A *top* document (not one of several under ``results``) carries ``schema_version``.
    """
    from .output_schemas import versioned

    head_doc = {k: v for k, v in doc.items() if k != "findings"}
    head = json.dumps(versioned(head_doc) if top else head_doc, indent=2, ensure_ascii=False,
                      default=str)
    stream.write(head[:-2] + ',\n  "findings": [')
    first = True
    for line in findings_ndjson:
        stream.write(("\n    " if first else ",\n    ") + line.rstrip("\n"))
        first = False
    stream.write("\n  ]\n}\n" if not first else "]\n}\n")


def hunt_live_summary(doc: dict[str, Any], stream: IO[str], *, heading: bool = True) -> None:
    """People's view of a live hunt: window, completeness, counts per workspace and label
    (after a *heading* with the rule and window, unless the rows table printed it)."""
    from rich.table import Table

    console = _console(stream)
    summary = doc["summary"]
    if heading:
        _heading(console, doc["rule"]["name"], doc["window"], summary["total"])
    for title, key in (("by ExploitEvidence", "by_evidence"), ("by device", "by_device"),
                       ("by parent process", "by_parent")):
        counts = summary.get(key) or {}
        if not counts:
            continue
        table = Table(title=title)
        table.add_column(title.removeprefix("by "))
        table.add_column("findings", justify="right")
        if key == "by_device":
            table.add_column("first seen")
            table.add_column("last seen")
        for label, n in counts.items():
            seen = summary.get("devices", {}).get(label, {})
            extra = [seen.get("first_seen", ""), seen.get("last_seen", "")] \
                if key == "by_device" else []
            table.add_row(literal(label), str(n), *map(literal, extra))
        console.print(table)
    workspaces = Table(title="workspaces")
    for col in ("workspace", "status", "findings", "queries", "detail"):
        workspaces.add_column(col, overflow="fold")
    for ws in doc.get("workspaces", []):
        workspaces.add_row(literal(ws["id"]), literal(ws["status"]), str(ws["findings"]),
                           str(ws["queries"]), literal("; ".join(ws.get("errors", []))))
    console.print(workspaces)
    if not doc["complete"]:
        console.print("[red]INCOMPLETE: some of the window was not searched (see warnings)[/]")


def hunt_live_table_rows(doc: dict[str, Any], findings_ndjson: IO[str], stream: IO[str],
                         limit: int = TABLE_ROWS) -> None:
    """The first *limit* findings as a table (the full set: --output ndjson/csv/json)."""
    from itertools import islice

    rows = [json.loads(line) for line in islice(findings_ndjson, limit)]
    console = _console(stream)
    total = doc["summary"]["total"]
    _heading(console, doc["rule"]["name"], doc["window"], total)
    if rows:
        _print_findings(console, list(rows[0]), rows)
        _more_rows(console, limit, total)
    hunt_live_summary(doc, stream, heading=False)


def hunt_live(docs: Sequence[tuple[dict[str, Any], IO[str]]], fmt: OutputFormat,
              stream: IO[str]) -> None:
    """Live hunt results whose findings wait in NDJSON spools: JSON documents or tables.

    (NDJSON and CSV were written to *stream* while the hunt ran.)
    """
    for _, spool in docs:
        spool.seek(0)
    if fmt is OutputFormat.json:
        if len(docs) == 1:
            hunt_live_document(*docs[0], stream)
            return
        from .output_schemas import SCHEMA_VERSION

        stream.write(f'{{"schema_version": {SCHEMA_VERSION}, "results": [\n')
        for i, (doc, spool) in enumerate(docs):
            if i:
                stream.write(",\n")
            hunt_live_document(doc, spool, stream, top=False)
        stream.write("]}\n")
        return
    if fmt is OutputFormat.table:
        for doc, spool in docs:
            hunt_live_table_rows(doc, spool, stream)


# --- export ----------------------------------------------------------------------------------


def exported(paths: Sequence[Path], folder: Path, stream: IO[str]) -> None:
    """Which files ``export --out`` wrote (the CLI passes stderr: stdout carries results)."""
    stream.write(f"wrote {len(paths)} file(s) to {folder}:\n")
    for path in paths:
        stream.write(f"  {path}\n")


# --- deploy / status / remove ------------------------------------------------------------------


def deploy_result(result: DeployResult, fmt: OutputFormat, stream: IO[str]) -> None:
    rule_report(result.to_dict(), "action", "deploy", fmt, stream)


def status_result(result: StatusResult, fmt: OutputFormat, stream: IO[str]) -> None:
    rule_report(result.to_dict(), "state", "status", fmt, stream)


def remove_result(result: RemoveResult, fmt: OutputFormat, stream: IO[str]) -> None:
    rule_report(result.to_dict(), "action", "remove", fmt, stream)


_STYLES = {"created": "green", "updated": "green", "unchanged": "dim", "in-sync": "green",
           "deleted": "green", "absent": "dim", "would-create": "cyan", "would-update": "cyan",
           "refused": "red", "failed": "red", "drifted": "yellow", "missing": "yellow",
           "disabled": "yellow", "auto-disabled": "red"}


def _short(value: Any, width: int = 70) -> str:
    text = "(absent)" if value is None else value if isinstance(value, str) else json.dumps(
        value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


_DIFF_STYLES = {"-": "red", "+": "green", "@": "cyan"}


def change_lines(change: dict[str, Any]) -> list[tuple[str, str]]:
    """One change (``Change.to_dict()``) as lines to show, each with its style: a unified
    diff for text, ``+added``/``-removed`` for lists, ``before → after`` for scalars."""
    what = change.get("diff") or {}
    field = change["field"]
    if what.get("kind") == "text":
        body = str(what["unified"]).splitlines()[2:]  # past the ---/+++ header
        return [(f"{field}:", "bold"),
                *((f"  {line}", _DIFF_STYLES.get(line[:1], "")) for line in body)]
    if what.get("kind") == "list":
        parts = [*(f"+{_short(v, 40)}" for v in what["added"]),
                 *(f"-{_short(v, 40)}" for v in what["removed"])]
        return [(f"{field}: {', '.join(parts)}", "")]
    return [(f"{field}: {_short(change['from'])} → {_short(change['to'])}", "")]


def _details(rule: dict[str, Any]) -> Any:
    """The details cell: the reason, then each change; styles only reach a terminal."""
    from rich.text import Text

    text = Text()
    lines = [(rule["reason"], "")] if rule.get("reason") else []
    for change in rule.get("changes") or []:
        lines += change_lines(change)
    for i, (line, style) in enumerate(lines):
        text.append(("\n" if i else "") + visible(line), style)
    return text


def _markdown_cell(text: str) -> str:
    """Text as one markdown table cell: no markup, HTML or row break gets through."""
    text = visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in *text* (which cannot close it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _rule_report_markdown(doc: dict[str, Any], key: str, title: str, stream: IO[str]) -> None:
    """For pull-request comments: a table per rule, then each text change as a diff block."""
    stream.write(f"### {title}: {_where(doc['workspace'], _markdown_cell)}\n\n"
                 f"| rule | name | {key} | details |\n|---|---|---|---|\n")
    blocks: list[str] = []
    for r in doc["rules"]:
        rule = r.get("short_id") or r["id"]
        details = [r["reason"]] if r.get("reason") else []
        for change in r.get("changes") or []:
            if (change.get("diff") or {}).get("kind") == "text":
                details.append(f"{change['field']}: see the diff below")
                diff = visible(change["diff"]["unified"])
                fence = _fence(diff)
                blocks.append(f"#### {_markdown_cell(rule)}: {_markdown_cell(change['field'])}"
                              f"\n\n{fence}diff\n{diff}\n{fence}\n")
            else:
                details += [line for line, _ in change_lines(change)]
        cells = [_markdown_cell(str(c)) for c in (rule, r["name"], r[key])]
        cells.append("<br>".join(_markdown_cell(d) for d in details))
        stream.write("| " + " | ".join(cells) + " |\n")
    for block in blocks:
        stream.write("\n" + block)


def _where(workspace: dict[str, Any], cell: Callable[[str], str] = str) -> str:
    """What a deploy/status/remove document acted on, for its title (*cell* escapes values)."""
    if workspace.get("kind") == "defender":
        tenant = workspace.get("tenant") or "of the signed-in identity"
        return f"Defender XDR custom detections (tenant {cell(str(tenant))})"
    return (f"workspace {cell(str(workspace['workspace']))} "
            f"(resource group {cell(str(workspace['resource_group']))})")


def rule_report(doc: dict[str, Any], key: str, title: str, fmt: OutputFormat,
                 stream: IO[str]) -> None:
    """The deploy/status/remove documents: {"workspace": {...}, "rules": [{id, name, key...}]}."""
    if fmt is OutputFormat.json:
        write_json(doc, stream)
        return
    if fmt is OutputFormat.markdown:
        _rule_report_markdown(doc, key, title, stream)
        return
    workspace = doc["workspace"]
    if fmt in (OutputFormat.ndjson, OutputFormat.csv):
        rows = [{"workspace": workspace["workspace"], **r} for r in doc["rules"]]
        if fmt is OutputFormat.csv:
            rows = [{**r, "changes": "; ".join(c["field"] for c in r.get("changes", []))}
                    for r in rows]
        write_rows(rows, ["workspace", "id", "short_id", "name", key, "reason", "changes"],
                   fmt, stream)
        return
    from rich.table import Table

    table = Table(title=literal(f"{title}: {_where(workspace)}"))
    table.add_column("rule", overflow="fold", max_width=40)
    table.add_column(key, no_wrap=True)
    table.add_column("details", overflow="fold", min_width=30)
    for r in doc["rules"]:
        table.add_row(literal(r.get("short_id") or r["id"]),
                      literal(r[key], _STYLES.get(r[key], "")), _details(r))
    _console(stream).print(table)


# --- rollout / fleet status ------------------------------------------------------------------

_FLEET_COLUMNS = ("subscription_id", "resource_group", "workspace", "status", "rule_id",
                  "rule_name", "action", "changes", "error")
_STATUS_STYLE = {"created": "green", "updated": "cyan", "unchanged": "dim", "failed": "red",
                 "skipped": "yellow", "refused": "red", "would-create": "green",
                 "would-update": "cyan",
                 "pending": "magenta", "in-sync": "green", "drifted": "yellow",
                 "out-of-sync": "yellow", "missing": "red", "disabled": "yellow",
                 "auto-disabled": "red"}


def _fleet_rows(targets: Sequence[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """One row per target and rule (and per pruned rule); a target without rules: one row."""
    rows: list[dict[str, Any]] = []
    for t in targets:
        base = {k: t[k] for k in ("subscription_id", "resource_group", "workspace", "status")}
        items = [(r.get("id"), r.get("name"), r.get(key), r.get("reason"),
                  [c["field"] for c in r.get("changes") or []]) for r in t.get("rules") or []]
        items += [(p.get("name"), p.get("displayName"), p.get("action"), "pruned: no longer "
                   "in the pack", []) for p in t.get("pruned") or []]
        if not items:
            rows.append({**base, "rule_id": None, "rule_name": None, "action": None,
                         "changes": "", "error": t.get("error")})
        for rule_id, name, action, reason, fields in items:
            rows.append({**base, "rule_id": rule_id, "rule_name": name, "action": action,
                         "changes": ", ".join(fields),
                         "error": t.get("error") or reason})
    return rows


def _styled(value: Any) -> Text:
    return literal(value, _STATUS_STYLE.get("" if value is None else str(value), ""))


def _counts_table(title: str, counts: dict[str, int]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for name in counts:
        table.add_column(name, justify="right")
    table.add_row(*(_styled(n) if n else "0" for n in counts.values()))
    return table


def _fleet_table(console: Console, title: str, rows: Sequence[dict[str, Any]],
                 action_header: str, document: dict[str, Any]) -> None:
    """One line per target and rule, fitted to the console: where, what, and why (wrapped);
    rules by their short ids."""
    from .table_layout import Col, fitted_table

    cols = [Col("workspace", "workspace", 12, 40), Col("status", "target", 7, 13),
            Col("rule", "rule", 30, 40), Col("action", action_header, 7, 14),
            Col("error", "error / reason", 30, flex=True),
            Col("changes", "changed fields", 10, 40),
            Col("resource_group", "resource group", 10, 40),
            Col("subscription_id", "subscription", 12, 36)]
    short = {r.get("id"): r.get("short_id") for t in document["targets"]
             for r in t.get("rules") or [] if r.get("short_id")}
    shown = [{**r, "rule": short.get(r["rule_id"]) or r["rule_name"] or r["rule_id"]}
             for r in rows]
    console.print(f"[bold]{markup(title)}[/]", highlight=False)
    console.print(fitted_table(cols, shown, console.width,
                               style=lambda text: _STATUS_STYLE.get(text, ""), wrap=True))
    console.print()


def _fleet_machine(document: dict[str, Any], key: str, fmt: OutputFormat,
                   stream: IO[str]) -> list[dict[str, Any]] | None:
    """Write JSON / NDJSON / CSV and return None; for tables, return the rows to show."""
    if fmt is OutputFormat.json:
        write_json(document, stream)
        return None
    rows = _fleet_rows(document["targets"], key)
    if fmt in (OutputFormat.ndjson, OutputFormat.csv):
        write_rows(rows, _FLEET_COLUMNS, fmt, stream)
        return None
    return rows


def rollout_report(document: dict[str, Any], fmt: OutputFormat, stream: IO[str]) -> None:
    """The rollout report (``RolloutReport.to_dict()``): JSON, rows, or tables."""
    rows = _fleet_machine(document, "action", fmt, stream)
    if rows is None:
        return
    console = _console(stream)
    if document.get("dry_run"):
        _fleet_table(console, "fleet plan (dry run: nothing written)", rows, "action",
                     document)
    else:
        shown = [r for r in rows if r["status"] != "unchanged"]
        if shown:
            _fleet_table(console, "targets that changed or failed", shown, "action", document)
    summary = {k: v for k, v in document["summary"].items()
               if v or k in ("total", "refused", "failed")}
    console.print(_counts_table("rollout summary (targets)", summary))


def fleet_status(document: dict[str, Any], fmt: OutputFormat, stream: IO[str]) -> None:
    """``status --targets/--discover``: one row per target and rule."""
    rows = _fleet_machine(document, "state", fmt, stream)
    if rows is None:
        return
    console = _console(stream)
    _fleet_table(console, "fleet status", rows, "state", document)
    console.print(_counts_table("fleet summary", document["summary"]))


# --- doctor ----------------------------------------------------------------------------------

_CHECK_COLUMNS = ("check", "status", "detail", "hint")
_CHECK_STYLE = {"ok": "green", "failed": "bold red", "skipped": "dim"}


def doctor(document: dict[str, Any], fmt: OutputFormat, stream: IO[str]) -> None:
    """``Diagnosis.to_dict()``: JSON, one row per check (NDJSON/CSV), or two tables."""
    if fmt is OutputFormat.json:
        write_json(document, stream)
        return
    if fmt in (OutputFormat.ndjson, OutputFormat.csv):
        write_rows(document["checks"], _CHECK_COLUMNS, fmt, stream)
        return
    from rich.table import Table

    who, cloud = document["identity"], document["cloud"]
    facts = Table(title="signed in", show_header=False)
    facts.add_column("what")
    facts.add_column("value", overflow="fold")
    for name, value in (("credential", who["credential"]), ("name", who["name"]),
                        ("tenant", who["tenant_id"]), ("object id", who["object_id"]),
                        ("cloud", cloud["name"]), ("authority", cloud["authority"]),
                        ("ARM", cloud["arm_endpoint"]), ("Logs API", cloud["logs_endpoint"])):
        facts.add_row(name, literal(value or "-"))
    checks = Table(title="checks")
    for column in _CHECK_COLUMNS:
        checks.add_column(column, overflow="fold")
    for check in document["checks"]:
        checks.add_row(literal(check["check"]),
                       literal(check["status"], _CHECK_STYLE.get(check["status"], "")),
                       literal(check["detail"]), literal(check["hint"]))
    console = _console(stream)
    console.print(facts)
    console.print(checks)
