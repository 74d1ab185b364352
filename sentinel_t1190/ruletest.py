"""Rule tests: each rule's fixture cases run through the local engine with the deployed KQL.

A rule ``analytics/<stem>.yaml`` has its cases in ``analytics/fixtures/<stem>.yaml``::

    cases:
      - name: IIS worker runs whoami
        now: 2026-03-01T12:00:00Z          # the clock the query's ago() reads
        events:                            # rows per table; absent columns are null
          DeviceProcessEvents:
            - {Timestamp: 2026-03-01T11:30:00Z, InitiatingProcessFileName: w3wp.exe,
               FileName: whoami.exe, DeviceName: web-01}
        expect:                            # exactly these findings (key columns only)
          - {DeviceName: web-01, ExploitEvidence: Reconnaissance}
      - name: explorer is no web server
        now: 2026-03-01T12:00:00Z
        events: {...}
        expect_none: true                  # a negative case: no finding at all

Every event must be one the rule can see: in a table the query reads, with only columns it
reads, inside its time window at the case's clock. An event the rule can never see proves
nothing (a negative case of such events passes whatever the rule does), so it is an error.
A negative case marked ``outside_window: true`` is the one exception, turned around: it
proves the window's edge, and each of its events must be outside the window.

The query is :func:`compile.deployed_query` — the text ``deploy`` sends, exclusions
included — so a case proves what Sentinel would alert on. Every rule needs at least one
positive and one negative case.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from .errors import InputError
from .lineage import TableUse
from .rules import Rule, _read_yaml
from .timespan import iso_seconds, iso_z, parse_instant

FIXTURES_DIR = "fixtures"


def fixtures_path(rule: Rule) -> Path:
    """``analytics/fixtures/<stem>.yaml`` beside the rule file."""
    path = Path(rule.path)
    return path.parent / FIXTURES_DIR / f"{path.stem}.yaml"


@dataclass(frozen=True)
class Case:
    """One fixture case: events in, exactly the *expect* findings out (none if empty)."""

    name: str
    now: datetime
    events: Mapping[str, Sequence[Mapping[str, Any]]]
    expect: tuple[Mapping[str, Any], ...]
    #: The events are deliberately outside the query's window (a negative case).
    outside_window: bool = False

    @property
    def positive(self) -> bool:
        return bool(self.expect)


@dataclass
class CaseResult:
    case: Case
    got: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and not self.missing and not self.unexpected

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.case.name,
            "kind": "positive" if self.case.positive else "negative",
            "passed": self.passed,
            "expected": [_plain(e) for e in self.case.expect],
            "got": self.got,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "error": self.error,
        }


@dataclass
class RuleTestResult:
    rule: Rule
    cases: list[CaseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and all(c.passed for c in self.cases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": {"id": self.rule.id, "name": self.rule.name},
            "fixtures": str(fixtures_path(self.rule)),
            "passed": self.passed,
            "problems": list(self.problems),
            "cases": [c.to_dict() for c in self.cases],
        }


def summary(results: Sequence[RuleTestResult]) -> dict[str, Any]:
    """The ``test`` JSON document."""
    cases = [c for r in results for c in r.cases]
    return {
        "passed": all(r.passed for r in results),
        "summary": {
            "rules": len(results),
            "rules_failed": sum(not r.passed for r in results),
            "cases": len(cases),
            "cases_failed": sum(not c.passed for c in cases),
        },
        "rules": [r.to_dict() for r in results],
    }


# --- loading --------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """YAML values as the engine's rows show them (datetimes as ISO ``Z``)."""
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _instant(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        return parse_instant(value.isoformat())
    if isinstance(value, str):
        return parse_instant(value)
    raise InputError(f"{where}: `now` must be an ISO 8601 date and time")


def load_cases(rule: Rule) -> tuple[list[Case], list[str]]:
    """The rule's fixture cases and the problems that make the rule fail outright."""
    path = fixtures_path(rule)
    if not path.is_file():
        return [], [f"no fixtures: {path} does not exist"]
    data, _, findings = _read_yaml(path)
    if data is None:
        return [], [f"{path}{f':{f.line}' if f.line else ''}: {f.message}" for f in findings]
    raw = data.get("cases")
    if not isinstance(raw, list):
        return [], [f"{path}: `cases` must be a list"]
    cases: list[Case] = []
    problems: list[str] = []
    for index, item in enumerate(raw):
        where = f"{path}: case {index + 1}"
        try:
            cases.append(_case(item, where, rule))
        except InputError as exc:
            problems.append(str(exc))
    names = Counter(c.name for c in cases)
    problems.extend(f"{path}: case name {n!r} is used {k} times" for n, k in names.items()
                    if k > 1)
    if not any(c.positive for c in cases):
        problems.append("needs at least one positive case (with `expect` findings)")
    if not any(not c.positive for c in cases):
        problems.append("needs at least one negative case (`expect_none: true`)")
    return cases, problems


def _case(item: Any, where: str, rule: Rule) -> Case:
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise InputError(f"{where}: a case is a mapping with a `name`")
    where = f"{where} ({item['name']})"
    events = item.get("events") or {}
    if not isinstance(events, Mapping) or not all(
            isinstance(rows, list) and all(isinstance(r, Mapping) for r in rows)
            for rows in events.values()):
        raise InputError(f"{where}: `events` maps table names to lists of rows")
    unknown = set(events) - set(rule.tables)
    if unknown:
        raise InputError(f"{where}: events for tables the rule does not read: "
                         + ", ".join(sorted(map(str, unknown))))
    expect = item.get("expect") or []
    none = item.get("expect_none", False)
    if not isinstance(expect, list) or not all(isinstance(e, Mapping) and e for e in expect):
        raise InputError(f"{where}: `expect` is a list of findings (column: value)")
    if bool(expect) == bool(none):
        raise InputError(f"{where}: give either `expect` (findings) or `expect_none: true`")
    outside = item.get("outside_window", False)
    if not isinstance(outside, bool) or (outside and expect):
        raise InputError(f"{where}: `outside_window: true` marks a negative case whose events "
                         "are all outside the query's window")
    return Case(
        name=item["name"],
        now=_instant(item.get("now"), where),
        events={str(t): [_plain(r) for r in rows] for t, rows in events.items()},
        expect=tuple(_plain(e) for e in expect),
        outside_window=outside,
    )


# --- reachability ---------------------------------------------------------------------------


def unseen_events(case: Case, uses: Mapping[str, TableUse]) -> list[str]:
    """Why events of *case* can never be seen by the query whose table uses are *uses*.

    An event is unseen when its table is not read, when it sets a column neither the query
    nor an exclusion entry could read (fixtures may prepare events for exclusions a user
    enables), or when no window of the query admits it at the case's clock. In an
    ``outside_window`` case the last test is turned around. Events are numbered from 1 per
    table, as they are listed.
    """
    from .exclusions import exclusion_columns

    problems: list[str] = []
    for table, rows in case.events.items():
        use = uses.get(table)
        if use is None:
            if rows:
                problems.append(f"{table}: the query does not read this table, so it never "
                                f"sees these {len(rows)} event(s)")
            continue
        read = {c.lower() for c in use.read | exclusion_columns(table)}
        unread: dict[str, list[str]] = {}
        outside: dict[str, list[str]] = {}
        inside: list[str] = []
        for number, row in enumerate(rows, 1):
            for key in row:
                if str(key).lower() not in read:
                    unread.setdefault(str(key), []).append(str(number))
            why = _outside_window(row, use, case.now)
            if why is None:
                inside.append(str(number))
            else:
                reason, value = why
                outside.setdefault(reason, []).append(f"{number} ({value})")
        for column, numbers in unread.items():
            problems.append(f"{table} event(s) {', '.join(numbers)}: the query does not read "
                            f"column {column}")
        if case.outside_window:
            if inside:
                problems.append(f"{table} event(s) {', '.join(inside)}: inside the query's "
                                "window, in a case marked outside_window")
        else:
            problems.extend(f"{table} event(s) {', '.join(numbers)}: {reason}"
                            for reason, numbers in outside.items())
    return problems


def _outside_window(row: Mapping[str, Any], use: TableUse, now: datetime
                    ) -> tuple[str, str] | None:
    """(why, the event's value) when no window of the query admits *row* at *now*; else None."""
    found: tuple[str, str] | None = None
    by_lower = {str(k).lower(): v for k, v in row.items()}
    for window in use.windows:
        for bound in window:
            value = by_lower.get(bound.column.lower())
            if value is None:
                found = found or (f"no {bound.column}, so outside the query's window "
                                  f"({bound.describe(now)} at now {iso_seconds(now)})", "null")
                break
            try:
                moment = parse_instant(str(value))
            except InputError:
                return None  # the engine reports the bad value itself
            if not bound.admits(moment, now):
                found = found or (f"outside the query's window ({bound.describe(now)} at now "
                                  f"{iso_seconds(now)})", iso_seconds(moment))
                break
        else:
            return None
    return found


# --- running --------------------------------------------------------------------------------


def _compare(expect: Sequence[Mapping[str, Any]], got: Sequence[Mapping[str, Any]]
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(expected findings not produced, produced findings not expected); order-free."""
    remaining = list(got)
    missing: list[dict[str, Any]] = []
    for wanted in expect:
        hit = next((i for i, row in enumerate(remaining)
                    if all(row.get(k) == v for k, v in wanted.items())), None)
        if hit is None:
            missing.append(dict(wanted))
        else:
            remaining.pop(hit)
    return missing, [dict(r) for r in remaining]


def run_case(rule: Rule, case: Case, query: str,
             uses: Mapping[str, TableUse] | None = None) -> CaseResult:
    """Load *case*'s events into a fresh local engine and run *query* at the case's clock.

    *uses* (:func:`lineage.table_uses` of *query*), when given, first checks that the query
    can see every event; a case with events it cannot see fails without running.
    """
    from .engine import LocalEngine, LocalFile

    result = CaseResult(case)
    unseen = unseen_events(case, uses) if uses is not None else []
    if unseen:
        result.error = "events the rule can never see: " + "; ".join(unseen)
        return result
    try:
        with tempfile.TemporaryDirectory(prefix="st1190-case-") as folder, LocalEngine() as eng:
            files: list[LocalFile] = []
            for table, rows in case.events.items():
                if rows:
                    path = Path(folder) / f"{table}.jsonl"
                    path.write_text("".join(json.dumps(r) + "\n" for r in rows),
                                    encoding="utf-8")
                    files.append(LocalFile(table, path))
            eng.load(files, {})
            for table in set(rule.tables) - {f.table for f in files}:
                eng.load_empty(table)
            columns, found = eng.query(query, now=case.now)
            result.got = [{c: iso_z(v) if isinstance(v, datetime) else v
                           for c, v in zip(columns, row, strict=True)} for row in found]
    except InputError as exc:
        result.error = str(exc)
        return result
    result.missing, result.unexpected = _compare(case.expect, result.got)
    return result


def run_rule(rule: Rule, *, today: date | None = None) -> RuleTestResult:
    """Run every fixture case of *rule* against its deployed query (exclusions included)."""
    from .compile import deployed_query
    from .lineage import table_uses

    cases, problems = load_cases(rule)
    result = RuleTestResult(rule, problems=problems)
    try:
        query = deployed_query(rule, today=today)
    except InputError as exc:
        result.problems.append(f"cannot compile the deployed query: {exc}")
        return result
    try:
        uses: Mapping[str, TableUse] | None = table_uses(query)
    except InputError:
        uses = None  # the engine reports KQL it cannot run, case by case
    result.cases = [run_case(rule, case, query, uses) for case in cases]
    return result


def run_rules(rules: Iterable[Rule], *, today: date | None = None) -> list[RuleTestResult]:
    return [run_rule(rule, today=today) for rule in rules]
