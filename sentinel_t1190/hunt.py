"""Hunts: a rule's hunting query over a window, run locally (and, later, in workspaces)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from . import detection
from .errors import InputError
from .readers import is_web_log
from .rules import Rule
from .schema import columns_read, table_schema
from .timespan import iso_seconds, iso_z, parse_duration, parse_instant

if TYPE_CHECKING:
    from .engine import LocalEngine
    from .stored import StoredFindings

DEFAULT_TIMESPAN = "24h"
START_PLACEHOLDER = "{{StartTimeISO}}"
END_PLACEHOLDER = "{{EndTimeISO}}"


@dataclass(frozen=True)
class Window:
    """A hunt window (start, end]: start exclusive like ``> ago()``, end inclusive like now."""

    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, str]:
        return {"start": iso_seconds(self.start), "end": iso_seconds(self.end)}


def resolve_window(
    now: datetime, timespan: str | None = None, start: str | None = None, end: str | None = None
) -> Window:
    """The window the user asked for: ``--timespan`` back from end/now, or ``--start/--end``."""
    end_at = parse_instant(end) if end else now.astimezone(UTC)
    if start:
        if timespan:
            raise InputError("give --timespan or --start, not both")
        start_at = parse_instant(start)
    else:
        span = parse_duration(timespan or DEFAULT_TIMESPAN)
        if span <= timedelta(0):
            raise InputError(f"--timespan must be positive, got {timespan!r}")
        try:
            start_at = end_at - span
        except OverflowError:
            raise InputError(f"--timespan {timespan!r} reaches back before year 1") from None
    if start_at >= end_at:
        raise InputError(f"the window is empty: start {iso_seconds(start_at)} is not before "
                         f"end {iso_seconds(end_at)}")
    return Window(start_at, end_at)


def windowed_query(rule: Rule, window: Window) -> str:
    """The rule's hunting query with the window filled in (values we format, never user text)."""
    from .compile import hunting_query

    query = hunting_query(rule, fill={START_PLACEHOLDER: iso_z(window.start),
                                      END_PLACEHOLDER: iso_z(window.end)})
    if query is None:
        raise InputError(f"rule {rule.id} ({rule.name}) has no hunting query in hunting/")
    return query


@dataclass
class HuntResult:
    """One rule's findings over one window, in the ``hunt`` JSON shape (docs/json-output.md)."""

    rule: Rule
    source: dict[str, Any]
    window: Window
    columns: list[str]
    findings: list[dict[str, Any]]
    complete: bool = True
    warnings: list[str] = field(default_factory=list)
    #: The findings left in the local engine instead of in *findings* (for output of any
    #: size, :func:`sentinel_t1190.api.hunt_local_stored`): readable while it is open.
    stored: StoredFindings | None = None

    @property
    def total(self) -> int:
        return len(self.findings) if self.stored is None else self.stored.total

    def rows(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """The findings in order (the first *limit*), wherever they are kept."""
        if self.stored is not None:
            return self.stored.dicts(limit)
        return islice(self.findings, limit)

    def summary(self) -> dict[str, Any]:
        if self.stored is None:
            labels = Counter(str(row.get("ExploitEvidence")) for row in self.findings
                             if "ExploitEvidence" in row)
        elif "ExploitEvidence" in self.stored.columns:
            labels = Counter()
            for (label,), n in self.stored.counts(["ExploitEvidence"]).items():
                labels[str(label)] += n
        else:
            labels = Counter()
        return {"total": self.total, "by_evidence": dict(sorted(labels.items()))}

    def head(self) -> dict[str, Any]:
        """The document without its findings (docs/json-output.md)."""
        return {**document_head(self.rule, self.source, self.window, self.complete,
                                self.warnings), "summary": self.summary()}

    def to_dict(self) -> dict[str, Any]:
        return {**self.head(), "findings": list(self.rows())}


def document_head(rule: Rule, source: dict[str, Any], window: Window, complete: bool,
                  warnings: Sequence[str]) -> dict[str, Any]:
    """The first keys of a hunt JSON document (docs/json-output.md), local or live."""
    return {"rule": {"id": rule.id, "name": rule.name}, "source": source,
            "window": window.to_dict(), "complete": complete, "warnings": list(warnings)}


def required_columns(rule: Rule, query: str) -> dict[str, set[str]]:
    """Per table the rule reads: the schema columns its query reads (needed or shown)."""
    return {t: columns_read(query, t) for t in rule.tables}


def time_columns(query: str, table: str) -> set[str]:
    """The columns of *table* that *query*'s time window filters on."""
    from .lineage import table_uses

    use = table_uses(query).get(table)
    return {b.column for w in use.windows for b in w} if use else set()


def needed_columns(query: str, table: str) -> set[str]:
    """The columns of *table* that decide which rows *query* returns (:mod:`lineage`)."""
    from .lineage import table_uses

    use = table_uses(query).get(table)
    return set(use.needed) if use else set()


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def mentioned_columns(rule: Rule, query: str) -> dict[str, set[str]]:
    """Per table: the schema columns whose names appear in the query text at all.

    A superset of :func:`required_columns` that costs no parse (the KQL parser takes a
    noticeable part of a short hunt); a file lacking one of these is checked exactly.
    """
    words = set(_WORD.findall(query))
    return {t: words & table_schema(t).columns.keys() for t in rule.tables}


Classifier: TypeAlias = Callable[[str | None, str | None], str | None]


def label_classifier(rule: Rule) -> Classifier | None:
    """The Python twin of *rule*'s ExploitEvidence labels, for the process-tree rules."""
    from . import linux_detection

    return {detection.RULE_ID: detection.classify,
            linux_detection.RULE_ID: linux_detection.classify}.get(rule.id)


def check_labels(rows: Iterable[dict[str, Any]],
                 classify: Classifier = detection.classify) -> list[str]:
    """Rows whose ExploitEvidence differs from the Python classifier (another rule version)."""
    return check_label_counts(Counter(
        (row.get("ExploitEvidence"), row.get("InitiatingProcessFileName"), row.get("FileName"))
        for row in rows), classify)


def check_label_counts(counts: Mapping[tuple[Any, Any, Any], int],
                       classify: Classifier = detection.classify) -> list[str]:
    """:func:`check_labels` over (ExploitEvidence, parent, child) -> number of rows."""
    mismatches: Counter[tuple[Any, Any]] = Counter()
    for (got, parent, child), n in counts.items():
        want = classify(parent, child)
        if want != got:
            mismatches[(got, want)] += n
    return [f"{n} row(s) labelled {got!r} where this version of the rule says {want!r}: "
            "the query that produced them is another version of the rule"
            for (got, want), n in mismatches.items()]


def _window_hints(engine: LocalEngine, query: str, window: Window, tables: set[str]
                  ) -> list[str]:
    """For tables whose rows all lie outside *window*: their time range and how to hunt it."""
    hints = []
    for table in sorted(tables):
        columns = time_columns(query, table)
        if len(columns) != 1:
            continue
        [column] = columns
        count, inside, first, last = engine.time_range(
            table, column, window.start.astimezone(UTC), window.end.astimezone(UTC))
        if not count or inside or first is None or last is None:
            continue
        first, last = first.replace(tzinfo=UTC), last.replace(tzinfo=UTC)
        days = -(-(last - first) // timedelta(days=1)) + 1
        span = f" --timespan {days}d" if last - first >= window.end - window.start else ""
        hints.append(
            f"none of the {count} {table} row(s) is in the window ({iso_seconds(window.start)}, "
            f"{iso_seconds(window.end)}]: their {column} runs from {iso_seconds(first)} to "
            f"{iso_seconds(last)}; to hunt them, pass --now {iso_seconds(last)}{span}")
    return hints


#: The columns the seed rule's labels are checked on: (label, parent, child).
_LABEL_COLUMNS = ("ExploitEvidence", "InitiatingProcessFileName", "FileName")


def hunt_local(
    rule: Rule,
    files: Sequence[str],
    window: Window,
    *,
    source: dict[str, Any] | None = None,
) -> HuntResult:
    """Run *rule*'s hunting query over local telemetry files with the local engine."""
    with ExitStack() as stack:
        result = hunt_local_stored(rule, files, window, source=source, stack=stack)
        result.findings = list(result.rows())
        result.stored = None
    return result


def hunt_local_stored(
    rule: Rule,
    files: Sequence[str],
    window: Window,
    *,
    stack: ExitStack,
    source: dict[str, Any] | None = None,
) -> HuntResult:
    """:func:`hunt_local` with the findings left in the engine, open until *stack* closes."""
    from .engine import LocalEngine, resolve_files

    if not rule.tables:
        raise InputError(f"rule {rule.id} names no table in requiredDataConnectors")
    query = windowed_query(rule, window)
    local = resolve_files(files, rule.tables[0])
    if not {f.table for f in local} & set(rule.tables):
        held = ", ".join(sorted({f"{f.path} holds {f.table}" for f in local}))
        raise InputError(f"{held}; rule {rule.name!r} reads {', '.join(rule.tables)}")
    warnings: list[str] = []

    def confirm(table: str, path: Path, missing: set[str]) -> set[str]:
        needed = missing & needed_columns(query, table)
        if needed and is_web_log(path):
            # A raw log holds the fields its server was told to log: the query cannot look
            # at the others, but still runs, except without the time its window needs.
            unlogged = sorted(needed - time_columns(query, table))
            if unlogged:
                warnings.append(f"{path}: not logged: {', '.join(unlogged)}; the {table} "
                                "query cannot look for attacks there in this file")
            needed -= set(unlogged)
        shown = sorted(missing & columns_read(query, table) - needed_columns(query, table))
        if shown and not needed:
            warnings.append(f"{path}: no {', '.join(shown)} column(s); the {table} query only "
                            "shows them, so they are null in the findings")
        return needed

    engine = stack.enter_context(LocalEngine())
    # The query is parsed for its exact columns only when a file lacks a mentioned one.
    engine.load(local, mentioned_columns(rule, query), confirm=confirm)
    for table in set(rule.tables) - {f.table for f in local}:
        engine.load_empty(table)
    stored = engine.store(query, now=window.end)
    warnings.extend(engine.warnings)
    if not stored.total:
        warnings.extend(_window_hints(engine, query, window, {f.table for f in local}))
    result = HuntResult(
        rule=rule,
        source=source or {"kind": "local", "files": [str(f.path) for f in local]},
        window=window,
        columns=stored.columns,
        findings=[],
        warnings=warnings,
        stored=stored,
    )
    classify = label_classifier(rule)
    if classify is not None:
        result.warnings.extend(check_label_counts(stored.counts(_LABEL_COLUMNS), classify))
    return result
