"""Output of ``backtest`` and ``health``: rich tables, JSON, and markdown for pull requests.

Every value that came from telemetry, a rule file or a service is data: in tables it is a
rich ``Text`` (never markup) with control and bidi characters made visible; in markdown
every ASCII punctuation character is backslash-escaped (CommonMark), so a finding cannot
become a link, an HTML tag, a mention or a table cell boundary.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import IO, Any

from .render import _console, write_json
from .safe_text import one_line

#: At most this many findings per rule and side are listed in a markdown report (a pull
#: request comment holds 65,536 characters); JSON always holds them all.
MARKDOWN_ROWS = 25
#: The columns a findings listing shows when a rule outputs them.
FINDING_COLUMNS = ("Timestamp", "DeviceName", "AccountName", "InitiatingProcessFileName",
                   "FileName", "ExploitEvidence", "ProcessCommandLine")


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"


_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def md(value: Any) -> str:
    """*value* safe inside a markdown table cell."""
    return _MD_PUNCTUATION.sub(r"\\\1", one_line(value))


def _text(value: Any) -> Any:
    from rich.text import Text

    return Text(one_line(value))


def finding_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The key columns the rows have, else their first eight."""
    present = list(dict.fromkeys(c for row in rows for c in row))
    shown = [c for c in FINDING_COLUMNS if c in present]
    return shown if len(shown) >= 4 else present[:8]


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(md(h) for h in header) + " |",
             "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(md(v) for v in row) + " |" for row in rows)
    return lines


# --- backtest ------------------------------------------------------------------------------


def _write(document: dict[str, Any], fmt: ReportFormat, stream: IO[str],
           tables: Callable[[dict[str, Any], IO[str]], None],
           markdown: Callable[[dict[str, Any]], str],
           page: Callable[[dict[str, Any]], str]) -> None:
    if fmt is ReportFormat.json:
        write_json(document, stream)
    elif fmt is ReportFormat.markdown:
        stream.write(markdown(document))
    elif fmt is ReportFormat.html:
        stream.write(page(document))
    else:
        tables(document, stream)


def backtest(document: dict[str, Any], fmt: ReportFormat, stream: IO[str]) -> None:
    """The backtest result (:meth:`BacktestResult.to_dict`): tables, JSON, markdown, HTML."""
    from .html_report import backtest_page

    _write(document, fmt, stream, _backtest_tables, backtest_markdown, backtest_page)


def _baseline_label(baseline: dict[str, Any]) -> str:
    if baseline.get("kind") == "git":
        return f"git {baseline['revision']} ({str(baseline['commit'])[:12]})"
    if baseline.get("kind") == "folder":
        return f"pack folder {baseline['path']}"
    return " ".join(f"{k}={v}" for k, v in baseline.items())


def _headline(document: dict[str, Any]) -> str:
    summary = document["summary"]
    window = document["window"]
    return (f"{summary['added']} finding(s) added, {summary['removed']} removed, "
            f"{summary['unchanged']} unchanged against {_baseline_label(document['baseline'])}"
            f"; window {window['start']} → {window['end']}")


def _exclusion_rows(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(rule["name"], e["name"], e["suppressed"], f"{e['share']:.0%}", e["flag"] or "")
            for rule in document["rules"] for e in rule["exclusions"]]


def _backtest_tables(document: dict[str, Any], stream: IO[str]) -> None:
    from rich.table import Table

    console = _console(stream)
    table = Table(title=_text(_headline(document)))
    for col in ("rule", "status", "added", "removed", "unchanged"):
        table.add_column(col, justify="right" if col in ("added", "removed", "unchanged")
                         else "left", overflow="fold")
    for rule in document["rules"]:
        table.add_row(_text(rule["name"]), rule["status"], str(len(rule["added"])),
                      str(len(rule["removed"])), str(rule["unchanged"]))
    console.print(table)
    exclusions = _exclusion_rows(document)
    if exclusions:
        ex = Table(title="exclusions: findings each one suppresses on its own")
        for col in ("rule", "exclusion", "suppressed", "share", "flag"):
            ex.add_column(col, overflow="fold")
        for row in exclusions:
            ex.add_row(*(_text(v) for v in row))
        console.print(ex)
    for rule in document["rules"]:
        for side in ("added", "removed"):
            rows = rule[side]
            if not rows:
                continue
            columns = finding_columns(rows)
            listing = Table(title=_text(f"{side}: {len(rows)} finding(s) of {rule['name']}"))
            for col in columns:
                listing.add_column(col, overflow="fold", max_width=60)
            for row in rows:
                listing.add_row(*(_text(row.get(c)) for c in columns))
            console.print(listing)
    if not document["complete"]:
        console.print("INCOMPLETE: some of the data could not be searched (see warnings)",
                      style="red", markup=False)


def backtest_markdown(document: dict[str, Any]) -> str:
    """A pull-request comment: the per-rule diff, the exclusions, the findings in folds."""
    summary = document["summary"]
    lines = [f"### sentinel-t1190 backtest: +{summary['added']} / -{summary['removed']} "
             "findings", "", md(_headline(document)), ""]
    if not document["complete"]:
        lines += ["**Incomplete:** some of the data could not be searched.", ""]
    lines += _md_table(("rule", "status", "added", "removed", "unchanged"), [
        (r["name"], r["status"], len(r["added"]), len(r["removed"]), r["unchanged"])
        for r in document["rules"]])
    exclusions = _exclusion_rows(document)
    if exclusions:
        lines += ["", "#### Exclusions", ""]
        lines += _md_table(("rule", "exclusion", "suppressed", "share", "flag"), exclusions)
    for rule in document["rules"]:
        for side in ("added", "removed"):
            rows = rule[side]
            if not rows:
                continue
            columns = finding_columns(rows)
            # Inside an HTML block markdown escapes do not apply: HTML-escape there.
            lines += ["", f"<details><summary>{side}: {len(rows)} finding(s) of "
                      f"{html.escape(one_line(rule['name']))}</summary>", ""]
            lines += _md_table(columns, [[row.get(c) for c in columns]
                                         for row in rows[:MARKDOWN_ROWS]])
            if len(rows) > MARKDOWN_ROWS:
                lines += ["", f"… and {len(rows) - MARKDOWN_ROWS} more (see the JSON output)"]
            lines += ["", "</details>"]
    for warning in document.get("warnings", []):
        lines += ["", f"> warning: {md(warning)}"]
    return "\n".join(lines) + "\n"


# --- health --------------------------------------------------------------------------------

HEALTH_COLUMNS = ("rule", "state", "runs", "failures", "last run", "alerts", "alerts/day",
                  "incidents", "TP", "FP", "BP", "undetermined", "open", "precision", "flags")


def health_rows(document: dict[str, Any]) -> list[tuple[dict[str, Any], list[Any]]]:
    """(workspace entry, one row of :data:`HEALTH_COLUMNS`) per rule per workspace."""
    rows = []
    for entry in document["workspaces"]:
        for rule in entry["rules"]:
            inc = rule["incidents"]
            precision = rule["precision"]
            rows.append((entry, [
                rule["name"], rule["state"], rule["runs"], rule["failures"],
                rule["last_run"] or "", rule["alerts"], rule["alerts_per_day"], inc["total"],
                inc["true_positive"], inc["false_positive"], inc["benign_positive"],
                inc["undetermined"], inc["open"],
                "" if precision is None else f"{precision:.0%}", ", ".join(rule["flags"])]))
    return rows


def workspace_label(workspace: dict[str, Any]) -> str:
    if workspace.get("workspace"):
        return f"{workspace['workspace']} ({workspace.get('workspace_id') or '?'})"
    return str(workspace.get("workspace_id"))


def health(document: dict[str, Any], fmt: ReportFormat, stream: IO[str]) -> None:
    """The health report (:meth:`HealthReport.to_dict`): tables, JSON, markdown, HTML."""
    from .html_report import health_page

    _write(document, fmt, stream, _health_tables, health_markdown, health_page)


def _health_tables(document: dict[str, Any], stream: IO[str]) -> None:
    from rich.table import Table

    console = _console(stream)
    window = document["window"]
    for entry in document["workspaces"]:
        title = (f"workspace {workspace_label(entry['workspace'])}: {window['start']} → "
                 f"{window['end']}")
        if entry["error"]:
            console.print(_text(f"{title}: FAILED: {entry['error']}"), style="red")
            continue
        table = Table(title=one_line(title))
        for col in HEALTH_COLUMNS:
            table.add_column(col, overflow="fold", max_width=40 if col == "rule" else None)
        for owner, row in health_rows(document):
            if owner is entry:
                table.add_row(*(_text(v) for v in row),
                              style="red" if row[-1] else None)
        console.print(table)
        for rule in entry["rules"]:
            for reason in rule["failure_reasons"]:
                console.print(_text(f"  {rule['name']}: {reason['count']} failure(s): "
                                    f"{reason['reason']}"))


def health_markdown(document: dict[str, Any]) -> str:
    window = document["window"]
    lines = [f"### sentinel-t1190 health: {md(window['start'])} → {md(window['end'])}"]
    for entry in document["workspaces"]:
        lines += ["", f"#### {md(workspace_label(entry['workspace']))}", ""]
        if entry["error"]:
            lines.append(f"**Failed:** {md(entry['error'])}")
            continue
        lines += _md_table(HEALTH_COLUMNS, [row for owner, row in health_rows(document)
                                            if owner is entry])
        for warning in entry["warnings"]:
            lines += ["", f"> warning: {md(warning)}"]
    return "\n".join(lines) + "\n"
