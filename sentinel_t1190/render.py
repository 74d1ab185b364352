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

    from .deploy import DeployResult, RemoveResult, StatusResult
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


# --- deploy / status / remove ------------------------------------------------------------------


def deploy_result(result: DeployResult, fmt: OutputFormat, stream: IO[str]) -> None:
    _rule_report(result.to_dict(), "action", "deploy", fmt, stream)


def status_result(result: StatusResult, fmt: OutputFormat, stream: IO[str]) -> None:
    _rule_report(result.to_dict(), "state", "status", fmt, stream)


def remove_result(result: RemoveResult, fmt: OutputFormat, stream: IO[str]) -> None:
    _rule_report(result.to_dict(), "action", "remove", fmt, stream)


_STYLES = {"created": "green", "updated": "green", "unchanged": "dim", "in-sync": "green",
           "deleted": "green", "absent": "dim", "would-create": "cyan", "would-update": "cyan",
           "refused": "red", "failed": "red", "drifted": "yellow", "missing": "yellow",
           "disabled": "yellow", "auto-disabled": "red"}


def _short(value: Any, width: int = 70) -> str:
    text = "(absent)" if value is None else value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _rule_report(doc: dict[str, Any], key: str, title: str, fmt: OutputFormat,
                 stream: IO[str]) -> None:
    """The deploy/status/remove documents: {"workspace": {...}, "rules": [{id, name, key...}]}."""
    if fmt is OutputFormat.json:
        write_json(doc, stream)
        return
    workspace = doc["workspace"]
    if fmt in (OutputFormat.ndjson, OutputFormat.csv):
        rows = [{"workspace": workspace["workspace"], **r} for r in doc["rules"]]
        if fmt is OutputFormat.csv:
            rows = [{**r, "changes": "; ".join(c["field"] for c in r.get("changes", []))}
                    for r in rows]
        write_rows(rows, ["workspace", "id", "name", key, "reason", "changes"], fmt, stream)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{title}: workspace {workspace['workspace']} "
                        f"(resource group {workspace['resource_group']})")
    for col in ("rule", "name", key, "details"):
        table.add_column(col, overflow="fold")
    for r in doc["rules"]:
        details = [r["reason"]] if r.get("reason") else []
        details += [f"{c['field']}: {_short(c['from'])} → {_short(c['to'])}"
                    for c in r.get("changes", [])]
        style = _STYLES.get(r[key], "")
        table.add_row(r["id"], escape(r["name"]), f"[{style}]{r[key]}[/]" if style else r[key],
                      escape("\n".join(details)))
    _console(stream).print(table)


# --- rollout / fleet status ------------------------------------------------------------------

_FLEET_COLUMNS = ("subscription_id", "resource_group", "workspace", "status", "rule_id",
                  "rule_name", "action", "changes", "error")
_STATUS_STYLE = {"created": "green", "updated": "cyan", "unchanged": "dim", "failed": "red",
                 "skipped": "yellow", "would-create": "green", "would-update": "cyan",
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


def _styled(value: Any) -> str:
    text = "" if value is None else str(value)
    style = _STATUS_STYLE.get(text)
    return f"[{style}]{text}[/]" if style else text.replace("[", "\\[")


def _counts_table(title: str, counts: dict[str, int]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for name in counts:
        table.add_column(name, justify="right")
    table.add_row(*(_styled(n) if n else "0" for n in counts.values()))
    return table


def _fleet_table(title: str, rows: Sequence[dict[str, Any]], action_header: str) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for col, width in (("subscription", 36), ("resource group", None), ("workspace", None),
                       ("target", None), ("rule", 40), (action_header, None),
                       ("changed fields", 40), ("error / reason", 60)):
        table.add_column(col, overflow="fold", max_width=width)
    for r in rows:
        table.add_row(r["subscription_id"], r["resource_group"], r["workspace"],
                      _styled(r["status"]), _styled(r["rule_name"] or r["rule_id"] or ""),
                      _styled(r["action"]), r["changes"], _styled(r["error"]))
    return table


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
        console.print(_fleet_table("fleet plan (dry run: nothing written)", rows, "action"))
    else:
        shown = [r for r in rows if r["status"] != "unchanged"]
        if shown:
            console.print(_fleet_table("targets that changed or failed", shown, "action"))
    summary = {k: v for k, v in document["summary"].items()
               if v or k in ("total", "failed")}
    console.print(_counts_table("rollout summary (targets)", summary))
    failed = document["summary"].get("failed", 0)
    if failed:
        console.print(f"[red]{failed} target(s) failed[/]: fix them, then run again with "
                      "--resume REPORT to redo only those.")


def fleet_status(document: dict[str, Any], fmt: OutputFormat, stream: IO[str]) -> None:
    """``status --targets/--discover``: one row per target and rule."""
    rows = _fleet_machine(document, "state", fmt, stream)
    if rows is None:
        return
    console = _console(stream)
    console.print(_fleet_table("fleet status", rows, "state"))
    console.print(_counts_table("fleet summary", document["summary"]))
