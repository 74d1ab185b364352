"""Exclusions as code: per-rule tuning entries compiled into the rule's KQL.

Each rule ``analytics/<stem>.yaml`` may have ``analytics/exclusions/<stem>.yaml``::

    exclusions:
      - name: exchange-hcw
        reason: Exchange Hybrid Configuration Wizard runs PowerShell from the service host
        owner: messaging-team@example.com
        expires: 2026-12-31              # optional; the entry stops applying after this day
        parent: msexchangeservicehost.exe
        child: powershell.exe
        command_line: {contains: HybridConfigurationWizard}

An entry matches an event when every field it names matches (AND); values in a list are
alternatives (OR). A plain value means case-insensitive equality (``=~``, like the rule's
``in~``); a mapping picks ``equals``, ``contains``, ``startswith``, ``endswith`` (all
case-insensitive) or ``regex`` (``matches regex``, RE2, case-sensitive unless ``(?i)``).

Each active entry becomes one ``| where not(...)`` line inserted right after the table's
time filter, in file order, so the text is deterministic. Every value goes through
:func:`detection.repr_kql`, so quotes, backslashes, ``|`` and newlines stay inside their
string literal. Expired entries are left out (``validate`` warns about them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from ._yaml import Path_
from .detection import repr_kql
from .errors import InputError
from .rules import Finding, Level, Rule, _read_yaml

EXCLUSIONS_DIR = "exclusions"
FIELDS = ("parent", "child", "command_line", "device", "account", "client_ip", "url")
OPERATORS = {"equals": "=~", "contains": "contains", "startswith": "startswith",
             "endswith": "endswith", "regex": "matches regex"}
META_KEYS = ("name", "reason", "owner", "expires")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")

_PROCESS_INITIATOR = {
    "parent": "InitiatingProcessParentFileName",
    "child": "InitiatingProcessFileName",
    "command_line": "InitiatingProcessCommandLine",
    "device": "DeviceName",
    "account": "InitiatingProcessAccountDomain\\InitiatingProcessAccountName",
}
#: Per table: exclusion field -> column. ``Domain\\Name`` means two columns: a value with a
#: backslash is compared with ``strcat(Domain, "\\", Name)``, one without with ``Name``.
#: On file and network events the "child" is the process that wrote the file or opened the
#: connection, and the "parent" is that process's parent.
COLUMNS: dict[str, dict[str, str]] = {
    "DeviceProcessEvents": {
        "parent": "InitiatingProcessFileName",
        "child": "FileName",
        "command_line": "ProcessCommandLine",
        "device": "DeviceName",
        "account": "AccountDomain\\AccountName",
    },
    "DeviceFileEvents": _PROCESS_INITIATOR,
    "DeviceNetworkEvents": _PROCESS_INITIATOR,
    "W3CIISLog": {
        "device": "Computer", "account": "csUserName", "client_ip": "cIP", "url": "csUriStem",
    },
    "CommonSecurityLog": {
        "device": "DeviceName", "account": "SourceUserName", "client_ip": "SourceIP",
        "url": "RequestURL",
    },
}


def exclusion_columns(table: str) -> set[str]:
    """The columns of *table* that some exclusion entry can read."""
    return {c for spec in COLUMNS.get(table, {}).values() for c in spec.split("\\")}


@dataclass(frozen=True)
class Condition:
    """One field of an entry: the field matches any of *values* under *op*."""

    field: str
    op: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Exclusion:
    """One exclusion entry: all its conditions must match for an event to be dropped."""

    name: str
    reason: str
    owner: str
    expires: date | None
    conditions: tuple[Condition, ...]
    line: int | None = None

    def expired(self, today: date) -> bool:
        """Past its expiry day (the entry still applies on the day itself)."""
        return self.expires is not None and today > self.expires

    def applies_to(self, table: str) -> bool:
        """Whether *table* has a column for every field the entry names."""
        columns = COLUMNS.get(table, {})
        return all(c.field in columns for c in self.conditions)


def exclusions_path(rule: Rule) -> Path:
    """``analytics/exclusions/<stem>.yaml`` beside the rule file."""
    path = Path(rule.path)
    return path.parent / EXCLUSIONS_DIR / f"{path.stem}.yaml"


def _strings(value: Any) -> tuple[str, ...] | None:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in items):
        return None
    return tuple(str(v) for v in items)


def _condition(key: str, value: Any) -> tuple[Condition | None, str | None]:
    op = "equals"
    if isinstance(value, Mapping):
        if len(value) != 1 or next(iter(value)) not in OPERATORS:
            return None, (f"{key}: a mapping needs exactly one of "
                          + ", ".join(OPERATORS) + f", got {sorted(map(str, value))}")
        op, value = next(iter(value.items()))
    values = _strings(value)
    if values is None:
        return None, f"{key}: expected a string or a list of strings"
    if any(v == "" for v in values):
        return None, f"{key}: empty values would match every event with that field empty"
    if op == "regex":
        for pattern in values:
            problem = re2_problem(pattern)
            if problem:
                return None, (f"{key}: {pattern!r} is not a regex Kusto can run (RE2: no "
                              f"backreferences, lookaround, possessive quantifiers or \\Z): "
                              f"{problem}")
    return Condition(key, op, values), None


@lru_cache(maxsize=256)
def re2_problem(pattern: str) -> str | None:
    """Why RE2 — the regex engine of Kusto and of DuckDB — refuses *pattern*, or None.

    DuckDB compiles it (``regexp_matches`` is RE2), so the check is the engine's own.
    """
    import duckdb

    try:
        with duckdb.connect() as con:
            con.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
    except duckdb.Error as exc:
        return str(exc).removeprefix("Invalid Input Error: ")
    return None


def _entry(raw: Any, index: int, lines: Mapping[Path_, int]
           ) -> tuple[Exclusion | None, list[tuple[str, int | None]]]:
    line = lines.get(("exclusions", index))
    if not isinstance(raw, Mapping):
        return None, [("each exclusion must be a mapping of fields", line)]
    problems: list[tuple[str, int | None]] = []
    name = raw.get("name", f"entry-{index + 1}")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(("name: letters, digits, '.', '_' and '-' only (it is written into "
                         f"the KQL as a comment), got {name!r}", line))
    for key in ("reason", "owner"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            problems.append((f"{key} is required", line))
    expires = raw.get("expires")
    if isinstance(expires, datetime):
        expires = expires.date()
    if expires is not None and not isinstance(expires, date):
        problems.append((f"expires must be a date (YYYY-MM-DD), got {expires!r}", line))
    conditions: list[Condition] = []
    for key, value in raw.items():
        if key in META_KEYS:
            continue
        where = lines.get(("exclusions", index, str(key)), line)
        if key not in FIELDS:
            problems.append((f"unknown field {key!r}; fields: {', '.join(FIELDS)}", where))
            continue
        condition, problem = _condition(str(key), value)
        if problem:
            problems.append((problem, where))
        elif condition is not None:
            conditions.append(condition)
    if not any(key not in META_KEYS for key in raw):
        problems.append(("an exclusion needs at least one of " + ", ".join(FIELDS), line))
    if problems:
        return None, problems
    return Exclusion(str(name), str(raw["reason"]).strip(), str(raw["owner"]).strip(),
                     expires if isinstance(expires, date) else None, tuple(conditions),
                     line), []


def load_exclusions(rule: Rule) -> tuple[list[Exclusion], list[Finding]]:
    """The rule's exclusion entries (none when it has no file) and the problems found."""
    path = exclusions_path(rule)
    if not path.is_file() or _only_comments(path):
        return [], []
    data, lines, findings = _read_yaml(path)
    if data is None:
        return [], [_with_rule(f, rule) for f in findings]
    raw = data.get("exclusions") or []
    if not isinstance(raw, list):
        return [], [Finding(Level.ERROR, "exclusion-invalid", "exclusions must be a list",
                            str(path), lines.get(("exclusions",)), rule.id)]
    entries: list[Exclusion] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        entry, problems = _entry(item, index, lines)
        if entry is not None and _key(entry.name) in seen:
            problems, entry = [(f"name {entry.name!r} is used twice", entry.line)], None
        findings.extend(Finding(Level.ERROR, "exclusion-invalid", message, str(path), line,
                                rule.id) for message, line in problems)
        if entry is not None:
            seen.add(_key(entry.name))
            entries.append(entry)
    return entries, findings


def _key(name: str) -> str:
    """Names that differ only in case or in ``-``/``_``/``.`` are the same name."""
    return re.sub(r"[-_.]", "_", name.lower())


def _only_comments(path: Path) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#")
               for line in path.read_text(encoding="utf-8").splitlines())


def _with_rule(finding: Finding, rule: Rule) -> Finding:
    return Finding(finding.level, finding.code, finding.message, finding.path, finding.line,
                   rule.id)


# --- KQL ------------------------------------------------------------------------------------


def _comparison(column: str, op: str, value: str) -> str:
    domain, sep, name = column.partition("\\")
    if sep:
        column = f'strcat({domain}, "\\\\", {name})' if "\\" in value else name
    return f"{column} {OPERATORS[op]} {repr_kql(value)}"


def condition_kql(condition: Condition, table: str) -> str:
    column = COLUMNS[table][condition.field]
    parts = [_comparison(column, condition.op, v) for v in condition.values]
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def exclusion_kql(entry: Exclusion, table: str) -> str:
    """``| where not(...)`` for *entry* on *table* (which must have its fields)."""
    body = " and ".join(condition_kql(c, table) for c in entry.conditions)
    return f"| where not({body}) // exclusion: {entry.name}"


def _insertion_points(query: str, tables: Sequence[str]) -> Iterator[tuple[int, str, str]]:
    """(line index after which to insert, indentation, table) for each table/time filter.

    A line holding only a table name, followed by a ``| where`` line: the time filter.
    """
    lines = query.splitlines()
    for i, line in enumerate(lines[:-1]):
        table = line.strip()
        following = lines[i + 1]
        if table in tables and following.lstrip().startswith("| where"):
            yield i + 1, following[: len(following) - len(following.lstrip())], table


def active(entries: Sequence[Exclusion], today: date) -> list[Exclusion]:
    return [e for e in entries if not e.expired(today)]


def apply(query: str, entries: Sequence[Exclusion], tables: Sequence[str]) -> str:
    """*query* with a ``| where not(...)`` line per entry after each table's time filter."""
    if not entries:
        return query
    points = list(_insertion_points(query, tables))
    if not points:
        raise InputError("cannot place exclusions: the query has no line holding only a "
                         "table name followed by its `| where` time filter")
    unused = [e.name for e in entries if not any(e.applies_to(t) for _, _, t in points)]
    if unused:
        raise InputError("exclusion(s) " + ", ".join(unused) + " name fields that none of "
                         "the query's tables (" + ", ".join(t for _, _, t in points)
                         + ") has")
    lines = query.splitlines(keepends=True)
    for index, indent, table in reversed(points):
        added = [f"{indent}{exclusion_kql(e, table)}\n" for e in entries if e.applies_to(table)]
        lines[index + 1 : index + 1] = added
    return "".join(lines)


def compile_into(rule: Rule, query: str, today: date) -> str:
    """*query* (the rule's or its hunting query) with the rule's active exclusions (only
    those in ``rule.exclusion_subset`` when it is set)."""
    entries, findings = load_exclusions(rule)
    errors = [f for f in findings if f.level == Level.ERROR]
    if errors:
        first = errors[0]
        raise InputError(f"{first.path}:{first.line}: {first.message}")
    chosen = active(entries, today)
    if rule.exclusion_subset is not None:
        chosen = [e for e in chosen if e.name in rule.exclusion_subset]
    return apply(query, chosen, rule.tables)
