"""Live hunts: a rule's hunting query over workspaces through the Logs Query API.

Nothing is lost silently. The window is cut into slices (:mod:`slicing`); each slice's rows
are classified, counted and formatted as they stream in, into a temporary file; a slice
that comes back too large is split and re-run; the finished slices are handed to the
output in window order. Any slice that stays partial or fails makes the hunt incomplete,
with a warning naming the workspace, the window and the reason. Several workspaces are
queried independently: one failing does not stop the others.
"""

from __future__ import annotations

import codecs
import operator
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import compress
from operator import itemgetter
from typing import IO, Any, Protocol

from . import detection
from .errors import AuthError, AzureServiceError, SentinelT1190Error
from .hunt import Window, check_label_counts, document_head, label_classifier, windowed_query
from .render import OutputFormat, RowFormatter
from .rules import Rule
from .slicing import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MIN_SLICE,
    DEFAULT_SLICE,
    SliceOutcome,
    SliceRunner,
    SliceStatus,
)
from .state import finding_keys
from .timespan import parse_instant


class QueryResultLike(Protocol):
    @property
    def complete(self) -> bool: ...
    @property
    def too_large(self) -> bool: ...
    @property
    def reason(self) -> str: ...


class LogsQuerier(Protocol):
    """What a live hunt needs from azure/logs.py's LogsClient."""

    def query(self, workspace_id: str, query: str, *, timespan: str | None,
              on_rows: Callable[[list[list[Any]]], None],
              on_columns: Callable[[list[str], list[str]], None] | None = None
              ) -> QueryResultLike: ...


@dataclass(frozen=True)
class LiveOptions:
    slice_size: timedelta = DEFAULT_SLICE
    min_slice: timedelta = DEFAULT_MIN_SLICE
    concurrency: int = DEFAULT_CONCURRENCY
    #: Re-runs of a slice whose answer was cut off mid-body (the HTTP retry policy only
    #: covers failures before the body).
    cut_off_retries: int = 1
    #: Keep finding keys (for --state).
    track_keys: bool = False
    #: CSV cells written as they are, formula prefixes included (``--csv-raw``).
    raw_csv: bool = False
    #: Called as each slice is delivered (progress on stderr for long hunts).
    on_progress: Callable[[HuntProgress], None] | None = None


@dataclass(frozen=True)
class HuntProgress:
    """How far a live hunt is: the share of (window × workspaces) searched, slices, rows."""

    rule: str
    searched: float
    slices: int
    rows: int


@dataclass
class Tally:
    """Counts over findings; one per slice, merged into one per hunt."""

    total: int = 0
    by_evidence: Counter[str] = field(default_factory=Counter)
    by_device: Counter[str] = field(default_factory=Counter)
    by_parent: Counter[str] = field(default_factory=Counter)
    first_seen: dict[str, str] = field(default_factory=dict)
    last_seen: dict[str, str] = field(default_factory=dict)
    labels: Counter[tuple[Any, Any, Any]] = field(default_factory=Counter)
    keys: dict[str, str] = field(default_factory=dict)
    already_reported: int = 0

    def merge(self, other: Tally) -> None:
        self.total += other.total
        self.already_reported += other.already_reported
        self.by_evidence.update(other.by_evidence)
        self.by_device.update(other.by_device)
        self.by_parent.update(other.by_parent)
        self.labels.update(other.labels)
        for device, ts in other.first_seen.items():
            if device not in self.first_seen or ts < self.first_seen[device]:
                self.first_seen[device] = ts
        for device, ts in other.last_seen.items():
            if device not in self.last_seen or ts > self.last_seen[device]:
                self.last_seen[device] = ts
        self.keys.update(other.keys)

    def summary(self) -> dict[str, Any]:
        by_evidence, by_parent = Counter(self.by_evidence), Counter(self.by_parent)
        for (label, parent, _child), n in self.labels.items():
            by_evidence[str(label)] += n
            by_parent[str(parent)] += n
        devices = {str(d): {"findings": n, "first_seen": self.first_seen.get(d),
                       "last_seen": self.last_seen.get(d)}
                   for d, n in sorted(self.by_device.items(),
                                      key=lambda kv: (-kv[1], str(kv[0])))}
        return {
            "total": self.total,
            "by_evidence": dict(sorted(by_evidence.items(), key=lambda kv: str(kv[0]))),
            "by_device": {d: v["findings"] for d, v in devices.items()},
            "by_parent": dict(sorted(by_parent.items(), key=lambda kv: (-kv[1], kv[0]))),
            "devices": devices,
            "already_reported": self.already_reported,
        }


def _column(columns: Sequence[str], name: str) -> Callable[[Sequence[Any]], Any] | None:
    return itemgetter(columns.index(name)) if name in columns else None


@dataclass
class _SliceData:
    """One slice's findings: formatted (UTF-8) in a temporary file, and counted."""

    spool: IO[bytes]
    columns: list[str] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)


@dataclass
class WorkspaceReport:
    id: str
    findings: int = 0
    queries: int = 0
    splits: int = 0
    errors: list[str] = field(default_factory=list)
    incomplete: list[dict[str, str]] = field(default_factory=list)
    delivered: int = 0
    failed_slices: int = 0
    error_types: list[type[Exception]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.incomplete:
            return "complete"
        return "failed" if self.delivered == self.failed_slices else "partial"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "findings": self.findings,
                "queries": self.queries, "splits": self.splits, "errors": self.errors,
                "incomplete": self.incomplete}


@dataclass
class LiveHuntResult:
    """A live hunt's outcome; the findings themselves went to the sink as they arrived."""

    rule: Rule
    source: dict[str, Any]
    window: Window
    columns: list[str]
    tally: Tally
    workspaces: list[WorkspaceReport]
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(ws.status == "complete" for ws in self.workspaces)

    @property
    def queries(self) -> int:
        return sum(ws.queries for ws in self.workspaces)

    def raise_if_all_failed(self) -> None:
        """When no workspace returned anything, the failure itself is the result: raise it
        (403 everywhere exits 3, not 4)."""
        if not self.workspaces or any(ws.status != "failed" for ws in self.workspaces):
            return
        kinds = [t for ws in self.workspaces for t in ws.error_types]
        errors = [e for ws in self.workspaces for e in ws.errors]
        kind = next((t for t in kinds if issubclass(t, AuthError)), AzureServiceError)
        if not issubclass(kind, SentinelT1190Error):
            kind = AzureServiceError
        raise kind("; ".join(dict.fromkeys(errors)) or "every workspace failed")

    def to_dict(self) -> dict[str, Any]:
        """The hunt JSON document (docs/json-output.md) without ``findings``, plus
        ``workspaces`` and ``stats``; the caller streams the findings in."""
        return {
            **document_head(self.rule, self.source, self.window, self.complete,
                            self.warnings),
            "summary": self.tally.summary(),
            "workspaces": [ws.to_dict() for ws in self.workspaces],
            "stats": {"queries": self.queries,
                      "splits": sum(ws.splits for ws in self.workspaces)},
            "findings": [],
        }


class RowSink(Protocol):
    """Where finished slices' formatted rows go, in order (stdout, --out, a spool)."""

    def write(self, text: str) -> Any: ...


def hunt_workspaces(
    rule: Rule,
    workspaces: Sequence[str],
    window: Window,
    client: LogsQuerier,
    sink: RowSink,
    fmt: OutputFormat,
    *,
    options: LiveOptions | None = None,
    reported: frozenset[str] = frozenset(),
    timespan: Callable[[Window], str | None] | None = None,
    source: dict[str, Any] | None = None,
) -> LiveHuntResult:
    """Hunt *rule* in every workspace over *window*; rows go to *sink* as slices finish.

    *fmt* is ndjson or csv (the sink's format; a CSV header is written before the first
    rows). Findings whose key is in *reported* (an earlier run's overlap) are counted in
    ``already_reported`` and not written. *timespan* maps a slice to the request's
    TimeGenerated range (azure/logs.timespan_for).
    """
    opts = options or LiveOptions()
    # Workspace hunts tag every row with its WorkspaceId, one workspace or many, so CSV and
    # NDJSON have the same columns whatever the targets (Defender and ADX have no workspace).
    tagged = len(workspaces) > 1 or source is None
    classify = label_classifier(rule)
    check = classify is not None
    reports = {ws: WorkspaceReport(ws) for ws in workspaces}
    total = Tally()
    columns: list[str] = []
    header_written = [False]
    warnings: list[str] = []

    def run(workspace: str, slice_: Window) -> SliceOutcome[_SliceData]:
        query = windowed_query(rule, slice_)
        span = timespan(slice_) if timespan else None
        outcome: SliceOutcome[_SliceData] | None = None
        for _attempt in range(1 + opts.cut_off_retries):
            data = _SliceData(tempfile.TemporaryFile("w+b"))  # noqa: SIM115
            handler = _RowHandler(data, fmt, workspace, tagged, check,
                                  opts.track_keys or bool(reported), reported,
                                  raw_csv=opts.raw_csv)
            try:
                result = client.query(workspace, query, timespan=span,
                                      on_rows=handler.rows, on_columns=handler.columns)
            except SentinelT1190Error as exc:
                data.spool.close()
                fatal = bool(getattr(exc, "fatal", False))
                too_large = bool(getattr(exc, "too_large", False))
                status = SliceStatus.too_large if too_large else SliceStatus.failed
                outcome = SliceOutcome(status, reason=str(exc), fatal=fatal, error=type(exc))
                if fatal or too_large or getattr(exc, "status", None):
                    return outcome
                continue  # cut off or unreachable: run the slice again
            hints: dict[str, Any] = {"rows": handler.seen, "oldest": handler.oldest()}
            if result.complete:
                return SliceOutcome(SliceStatus.complete, data, **hints)
            status = SliceStatus.too_large if result.too_large else SliceStatus.partial
            return SliceOutcome(status, data, reason=result.reason, **hints)
        assert outcome is not None
        return outcome

    span_total = (window.end - window.start).total_seconds() * len(workspaces) or 1.0
    progress = {"seconds": 0.0, "slices": 0, "rows": 0}

    def tell(slice_: Window, rows: int) -> None:
        progress["seconds"] += (slice_.end - slice_.start).total_seconds()
        progress["slices"] += 1
        progress["rows"] += rows
        if opts.on_progress is not None:
            opts.on_progress(HuntProgress(rule.name, min(1.0, progress["seconds"] / span_total),
                                          int(progress["slices"]), int(progress["rows"])))

    def deliver(workspace: str, slice_: Window, outcome: SliceOutcome[_SliceData]) -> None:
        tell(slice_, outcome.payload.tally.total if outcome.payload is not None else 0)
        report = reports[workspace]
        report.delivered += 1
        data = outcome.payload
        if outcome.status is not SliceStatus.complete:
            span = slice_.to_dict()
            report.incomplete.append({**span, "status": str(outcome.status),
                                      "reason": outcome.reason})
            if outcome.status in (SliceStatus.failed, SliceStatus.skipped):
                report.failed_slices += 1
            if outcome.error is not None:
                report.error_types.append(outcome.error)
            if outcome.reason and outcome.reason not in report.errors:
                report.errors.append(outcome.reason)
            if outcome.status is not SliceStatus.skipped:
                kept = "rows it returned are kept" if data else "nothing from it is kept"
                warnings.append(f"workspace {workspace}: {span['start']} → {span['end']} "
                                f"is incomplete ({outcome.status}): {outcome.reason}; {kept}")
        if data is None:
            return
        with data.spool:
            if data.columns and not columns:
                columns.extend(data.columns)
            if fmt is OutputFormat.csv and not header_written[0] and data.columns:
                sink.write(RowFormatter(fmt, data.columns,
                                        {"WorkspaceId": ""} if tagged else None,
                                        raw_csv=opts.raw_csv).header())
                header_written[0] = True
            data.spool.seek(0)  # UTF-8: a block may end inside a character
            text = codecs.getincrementaldecoder("utf-8")()
            for block in iter(lambda: data.spool.read(1 << 20), b""):
                sink.write(text.decode(block))
        report.findings += data.tally.total
        total.merge(data.tally)

    runner: SliceRunner[_SliceData] = SliceRunner(
        run, deliver, concurrency=opts.concurrency, min_slice=opts.min_slice)
    slice_reports = runner.run(list(workspaces), window, opts.slice_size)
    for ws, sr in slice_reports.items():
        reports[ws].queries, reports[ws].splits = sr.queries, sr.splits
    skipped = [ws for ws in workspaces if reports[ws].status == "failed"]
    for ws in skipped:
        warnings.append(f"workspace {ws}: failed, nothing searched: "
                        + "; ".join(reports[ws].errors))
    if classify is not None:
        warnings.extend(check_label_counts(total.labels, classify))
    if tagged and "WorkspaceId" not in columns:
        columns.append("WorkspaceId")
    return LiveHuntResult(
        rule=rule,
        source=source or {"kind": "workspaces", "workspaces": list(workspaces)},
        window=window, columns=columns, tally=total,
        workspaces=[reports[ws] for ws in workspaces], warnings=warnings)


class _RowHandler:
    """Per slice: count, drop already-reported findings, format into the spool."""

    def __init__(self, data: _SliceData, fmt: OutputFormat, workspace: str, tag: bool,
                 check: bool, track_keys: bool, reported: frozenset[str], *,
                 raw_csv: bool = False) -> None:
        # *tag*: add a WorkspaceId column (workspace hunts); keys always include it.
        self.data, self.fmt, self.workspace, self.tag = data, fmt, workspace, tag
        self.check, self.track_keys, self.reported = check, track_keys, reported
        self.raw_csv = raw_csv
        self.formatter: RowFormatter | None = None
        self.getters: dict[str, Callable[[Sequence[Any]], Any] | None] = {}
        #: Rows the service returned (before dropping already-reported ones), oldest time.
        self.seen = 0
        self._oldest: Any = None

    def oldest(self) -> datetime | None:
        if not isinstance(self._oldest, str):
            return None
        try:
            return parse_instant(self._oldest)
        except SentinelT1190Error:
            return None

    def columns(self, names: list[str], types: list[str]) -> None:
        self.data.columns = list(names)
        self.formatter = RowFormatter(self.fmt, names,
                                      {"WorkspaceId": self.workspace} if self.tag else None,
                                      types, raw_csv=self.raw_csv)
        self.getters = {c: _column(names, c) for c in (
            detection.TIME_COLUMN, "DeviceName", "InitiatingProcessFileName", "FileName",
            "ExploitEvidence")}

    def rows(self, rows: list[list[Any]]) -> None:
        # Counting works on whole columns (map/Counter/dict run in C): a 500,000-row answer
        # must not cost a Python loop per row and per statistic.
        assert self.formatter is not None
        tally = self.data.tally
        get = self.getters
        ts = get[detection.TIME_COLUMN]
        self.seen += len(rows)
        stamps = list(map(ts, rows)) if ts else []
        low = min(filter(None, stamps), default=None)
        if low is not None and (self._oldest is None or low < self._oldest):
            self._oldest = low
        if self.track_keys:
            keys = finding_keys(self.workspace, rows)
            if self.reported:
                fresh = [i for i, k in enumerate(keys) if k not in self.reported]
                tally.already_reported += len(rows) - len(fresh)
                rows = [rows[i] for i in fresh]
                keys = [keys[i] for i in fresh]
                stamps = [stamps[i] for i in fresh] if stamps else []
            tally.keys.update(zip(keys, map(str, stamps or [""] * len(rows)), strict=True))
        if not rows:
            return
        tally.total += len(rows)
        evidence, device, parent, child = (get["ExploitEvidence"], get["DeviceName"],
                                           get["InitiatingProcessFileName"], get["FileName"])
        if self.check and evidence and parent and child:
            # by_evidence and by_parent are folded out of these counts in summary()
            tally.labels.update(zip(map(evidence, rows), map(parent, rows), map(child, rows),
                                    strict=True))
        else:
            if evidence:
                tally.by_evidence.update(map(str, map(evidence, rows)))
            if parent:
                tally.by_parent.update(map(str, map(parent, rows)))
        if device:
            devices = list(map(device, rows))
            tally.by_device.update(devices)
            if stamps:
                _seen(tally, devices, stamps)
        self.data.spool.write(self.formatter.encode(rows))


def _seen(tally: Tally, devices: list[Any], stamps: list[Any]) -> None:
    """First and last seen per device over one batch."""
    first, last = tally.first_seen, tally.last_seen
    n = len(stamps)
    # Sorted newest first (the query's order) or oldest first, in a few runs at most: within
    # a run, dict(zip()) keeps each device's last pair, so the pairs in one order give its
    # newest time and in the other its oldest, with no Python loop per row.
    for out_of_order, newest_first in ((operator.lt, True), (operator.gt, False)):
        if None in stamps:
            break
        cuts = list(compress(range(1, n), map(out_of_order, stamps, stamps[1:])))
        if len(cuts) <= n // 16:
            for start, end in zip([0, *cuts], [*cuts, n], strict=True):
                names, times = devices[start:end], stamps[start:end]
                forward = dict(zip(names, times, strict=True))
                backward = dict(zip(reversed(names), reversed(times), strict=True))
                oldest, newest = (forward, backward) if newest_first else (backward, forward)
                _keep(first, oldest, operator.lt)
                _keep(last, newest, operator.gt)
            return
    oldest, newest = {}, {}
    for name, stamp in zip(devices, stamps, strict=True):
        if stamp is None:
            continue
        if name not in oldest or stamp < oldest[name]:
            oldest[name] = stamp
        if name not in newest or stamp > newest[name]:
            newest[name] = stamp
    _keep(first, oldest, operator.lt)
    _keep(last, newest, operator.gt)


def _keep(into: dict[str, str], found: dict[Any, Any],
          better: Callable[[Any, Any], bool]) -> None:
    for name, stamp in found.items():
        if name not in into or better(stamp, into[name]):
            into[name] = stamp


def merge_keys(results: Sequence[LiveHuntResult]) -> Mapping[str, str]:
    keys: dict[str, str] = {}
    for r in results:
        keys.update(r.tally.keys)
    return keys
