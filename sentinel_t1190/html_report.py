"""``--output html``: one self-contained page for ``hunt``, ``backtest`` and ``health``.

No script, no font, no image and no stylesheet from anywhere: the CSS is inline, the
timeline is an inline SVG drawn here, and a Content-Security-Policy (``default-src 'none'``)
stops the browser from fetching anything even if some text slipped through. Every value is
HTML-escaped (``html.escape``, quotes too) after :func:`safe_text.one_line` made control and
bidi characters visible, so telemetry cannot add markup, scripts or links.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .errors import InputError
from .safe_text import one_line
from .timespan import parse_instant

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
#: Colours of the timeline's labels (ExploitEvidence, added/removed), in order of first use.
PALETTE = ("#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
#: Rows of findings listed in a table per section (the JSON output holds them all).
MAX_ROWS = 500
#: Devices drawn on one timeline; the rest are counted in a note.
MAX_DEVICES = 40

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:17px;margin-top:28px}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right}tr.flagged td{background:#fde8e8}
.meta{color:#555}.warn{color:#8a4b00}svg{display:block;margin:8px 0}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:5px}
"""


def esc(value: Any) -> str:
    """*value* as HTML text: visible control characters, everything escaped."""
    return html.escape(one_line(value), quote=True)


def page(title: str, body: Iterable[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"referrer\" content=\"no-referrer\">"
            f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{esc(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *,
          flagged: Iterable[bool] | None = None, cls: str = "") -> str:
    marks = list(flagged) if flagged is not None else None
    out = [f"<table class=\"{esc(cls)}\"><thead><tr>"
           + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        attr = " class=\"flagged\"" if marks is not None and marks[i] else ""
        out.append(f"<tr{attr}>" + "".join(
            f"<td class=\"num\">{esc(v)}</td>" if isinstance(v, int | float)
            and not isinstance(v, bool) else f"<td>{esc(v)}</td>" for v in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _moment(value: Any) -> datetime | None:
    try:
        return parse_instant(str(value)) if value else None
    except InputError:  # text that is no time: not on the timeline
        return None


def timeline(points: Sequence[tuple[Any, Any, Any]], start: Any, end: Any) -> str:
    """An SVG with one row per device and a dot per (time, device, label) point."""
    begin, finish = _moment(start), _moment(end)
    placed = [(t, str(d or "(no device)"), str(lb or "(none)")) for t, d, lb in
              ((_moment(t), d, lb) for t, d, lb in points) if t is not None]
    if begin is None or finish is None or finish <= begin or not placed:
        return "<p class=\"meta\">no findings to draw</p>"
    counts: dict[str, int] = {}
    for _, device, _ in placed:
        counts[device] = counts.get(device, 0) + 1
    devices = sorted(counts, key=lambda d: (-counts[d], d))[:MAX_DEVICES]
    labels = list(dict.fromkeys(label for _, _, label in placed))
    colour = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    left, width, row_h = 220, 760, 18
    height = row_h * len(devices) + 40
    span = (finish - begin).total_seconds()
    parts = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{left + width + 20}\" "
             f"height=\"{height}\" role=\"img\" aria-label=\"findings per device over time\">"]
    for i, device in enumerate(devices):
        y = 20 + i * row_h
        parts.append(f"<text x=\"{left - 8}\" y=\"{y + 4}\" text-anchor=\"end\" "
                     f"font-size=\"11\">{esc(device[:40])}</text>"
                     f"<line x1=\"{left}\" y1=\"{y}\" x2=\"{left + width}\" y2=\"{y}\" "
                     "stroke=\"#eee\"/>")
    row_of = {d: i for i, d in enumerate(devices)}
    for moment, device, label in placed:
        if device not in row_of:
            continue
        x = left + width * max(0.0, min(1.0, (moment - begin).total_seconds() / span))
        y = 20 + row_of[device] * row_h
        parts.append(f"<circle cx=\"{x:.1f}\" cy=\"{y}\" r=\"4\" fill=\"{colour[label]}\" "
                     f"fill-opacity=\"0.8\"><title>{esc(moment.isoformat())} {esc(device)}: "
                     f"{esc(label)}</title></circle>")
    axis_y = height - 12
    parts.append(f"<text x=\"{left}\" y=\"{axis_y}\" font-size=\"11\">{esc(start)}</text>"
                 f"<text x=\"{left + width}\" y=\"{axis_y}\" font-size=\"11\" "
                 f"text-anchor=\"end\">{esc(end)}</text></svg>")
    legend = "<div class=\"legend\">" + "".join(
        f"<span><i style=\"background:{colour[label]}\"></i>{esc(label)}</span>"
        for label in labels) + "</div>"
    more = len(counts) - len(devices)
    note = f"<p class=\"meta\">{more} more device(s) not drawn</p>" if more > 0 else ""
    return "".join(parts) + legend + note


def findings_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    shown = rows[:MAX_ROWS]
    more = (f"<p class=\"meta\">first {MAX_ROWS} of {len(rows)} shown; the JSON output holds "
            "them all</p>" if len(rows) > MAX_ROWS else "")
    return table(columns, ([row.get(c) for c in columns] for row in shown)) + more


def _warnings(messages: Iterable[str]) -> str:
    return "".join(f"<p class=\"warn\">warning: {esc(m)}</p>" for m in messages)


# --- hunt ------------------------------------------------------------------------------------


def hunt_page(documents: Sequence[dict[str, Any]]) -> str:
    """The ``hunt`` JSON documents (one per rule) as a page."""
    from .reports import finding_columns

    body = []
    for doc in documents:
        window = doc["window"]
        findings = doc.get("findings") or []
        body.append(f"<h2>{esc(doc['rule']['name'])}</h2>"
                    f"<p class=\"meta\">{esc(window['start'])} → {esc(window['end'])}: "
                    f"{len(findings)} finding(s); complete: {esc(doc['complete'])}</p>")
        body.append(_warnings(doc.get("warnings") or []))
        counts = (doc.get("summary") or {}).get("by_evidence") or {}
        if counts:
            body.append(table(("ExploitEvidence", "findings"), sorted(counts.items())))
        body.append(timeline([(r.get("Timestamp") or r.get("TimeGenerated"),
                               r.get("DeviceName") or r.get("Computer"),
                               r.get("ExploitEvidence") or doc["rule"]["name"])
                              for r in findings], window["start"], window["end"]))
        if findings:
            body.append(findings_table(findings, finding_columns(findings)))
    title = "sentinel-t1190 hunt" + (f": {documents[0]['rule']['name']}"
                                     if len(documents) == 1 else "")
    return page(title, body)


# --- backtest --------------------------------------------------------------------------------


def backtest_page(document: dict[str, Any]) -> str:
    from .reports import _exclusion_rows, _headline, finding_columns

    window = document["window"]
    body = [f"<p class=\"meta\">{esc(_headline(document))}</p>",
            _warnings(document.get("warnings") or [])]
    rules = document["rules"]
    body.append(table(("rule", "status", "added", "removed", "unchanged"),
                      [(r["name"], r["status"], len(r["added"]), len(r["removed"]),
                        r["unchanged"]) for r in rules],
                      flagged=[bool(r["added"] or r["removed"]) for r in rules]))
    exclusions = _exclusion_rows(document)
    if exclusions:
        body.append("<h2>Exclusions: findings each suppresses on its own</h2>")
        body.append(table(("rule", "exclusion", "suppressed", "share", "flag"), exclusions,
                          flagged=[bool(row[-1]) for row in exclusions]))
    for rule in rules:
        if not (rule["added"] or rule["removed"]):
            continue
        body.append(f"<h2>{esc(rule['name'])}</h2>")
        body.append(timeline(
            [(r.get("Timestamp") or r.get("TimeGenerated"), r.get("DeviceName"), side)
             for side in ("added", "removed") for r in rule[side]],
            window["start"], window["end"]))
        for side in ("added", "removed"):
            if rule[side]:
                body.append(f"<h3>{side}: {len(rule[side])}</h3>")
                body.append(findings_table(rule[side], finding_columns(rule[side])))
    return page("sentinel-t1190 backtest", body)


# --- health ----------------------------------------------------------------------------------


def health_page(document: dict[str, Any]) -> str:
    from .reports import HEALTH_COLUMNS, health_rows, workspace_label

    window = document["window"]
    body = [f"<p class=\"meta\">{esc(window['start'])} → {esc(window['end'])}</p>"]
    rows = health_rows(document)
    for entry in document["workspaces"]:
        body.append(f"<h2>{esc(workspace_label(entry['workspace']))}</h2>")
        if entry["error"]:
            body.append(f"<p class=\"warn\">failed: {esc(entry['error'])}</p>")
            continue
        body.append(_warnings(entry["warnings"]))
        mine = [row for owner, row in rows if owner is entry]
        body.append(table(HEALTH_COLUMNS, mine, flagged=[bool(row[-1]) for row in mine]))
        reasons = [(r["name"], x["reason"], x["count"]) for r in entry["rules"]
                   for x in r["failure_reasons"]]
        if reasons:
            body.append(table(("rule", "failure reason", "runs"), reasons))
    return page("sentinel-t1190 health", body)
