"""The rule model: Azure-Sentinel-format analytic rules and hunting queries, and the pack.

Loading never raises on a bad rule: problems are collected as :class:`Finding` values
(pySigma's ``collect_errors``), so ``validate`` can report every one with file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ._yaml import Path_, YamlSyntaxError, load_with_lines

#: A GUID, braces not included (rule ids, subscriptions, tenants, workspace ids).
GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem with a rule file, located by file and line."""

    level: Level
    code: str
    message: str
    path: str | None = None
    line: int | None = None
    rule_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level.value, "code": self.code, "message": self.message,
            "path": self.path, "line": self.line, "rule_id": self.rule_id,
        }


@dataclass(frozen=True)
class Rule:
    """An analytic rule as written in the Azure-Sentinel YAML format.

    ``data`` keeps the whole parsed document (the API translation reads it); the typed
    fields are the ones the tool itself reasons about.
    """

    id: str
    name: str
    severity: str
    kind: str
    query: str
    tactics: tuple[str, ...]
    techniques: tuple[str, ...]
    tables: tuple[str, ...]
    path: str
    data: Mapping[str, Any] = field(repr=False)
    lines: Mapping[Path_, int] = field(repr=False, compare=False)
    hunting: HuntingQuery | None = None
    #: Compile in only the exclusion entries of these names (None: every active entry).
    #: ``backtest`` measures each exclusion by running the rule with one entry at a time.
    exclusion_subset: frozenset[str] | None = field(default=None, compare=False)

    def line_of(self, *key: str | int) -> int | None:
        """The line of *key* in the file, or of its nearest parent that has one."""
        return _line_of(self.lines, key)

    @property
    def short_id(self) -> str:
        """The rule file's stem (``sql_injection_in_request``): what people type and read."""
        return Path(self.path).stem

    def summary(self) -> dict[str, Any]:
        """The ``rules`` JSON shape (docs/json-output.md), plus ``short_id``."""
        return {
            "id": self.id, "short_id": self.short_id, "name": self.name,
            "severity": self.severity,
            "tactics": list(self.tactics), "techniques": list(self.techniques),
            "tables": list(self.tables),
        }


@dataclass(frozen=True)
class HuntingQuery:
    """A Sentinel hunting query whose window comes from ``{{StartTimeISO}}``/``{{EndTimeISO}}``."""

    id: str
    name: str
    query: str
    rule_id: str | None
    path: str
    lines: Mapping[Path_, int] = field(repr=False, compare=False)

    def line_of(self, *key: str | int) -> int | None:
        """The line of *key* in the file, or of its nearest parent that has one."""
        return _line_of(self.lines, key)


@dataclass(frozen=True)
class Pack:
    """The rules of a pack, their hunting queries, and what went wrong loading them."""

    rules: tuple[Rule, ...]
    findings: tuple[Finding, ...] = ()
    #: The folder holding ``analytics/`` and ``hunting/``.
    root: Path | None = None

    def select(self, ids: Iterable[str] | None) -> tuple[Rule, ...]:
        """The rules named by *ids*: id, unambiguous id prefix, short id (the file stem) or
        the rule's file (``x.yaml``, ``analytics/x.yaml``); all if None."""
        from .errors import InputError

        if not ids:
            return self.rules
        chosen: list[Rule] = []
        for given in ids:
            wanted = _rule_name(given)
            hits = [r for r in self.rules if wanted in (r.id.lower(), r.short_id.lower())]
            if not hits and wanted:
                hits = [r for r in self.rules if r.id.lower().startswith(wanted)]
            if len(hits) != 1:
                known = ", ".join(f"{r.short_id} ({r.id})" for r in self.rules)
                what = "matches no rule" if not hits else "matches several rules"
                raise InputError(f"--rule {given!r} {what}; the pack has: {known}")
            if hits[0] not in chosen:
                chosen.append(hits[0])
        return tuple(chosen)


def _rule_name(given: str) -> str:
    """``--rule`` as typed, lower case, with a rule file's folder and extension dropped."""
    name = given.strip().replace("\\", "/").rsplit("/", 1)[-1].lower()
    for suffix in (".yaml", ".yml"):
        name = name.removesuffix(suffix)
    return name


def _line_of(lines: Mapping[Path_, int], key: Path_) -> int | None:
    path = key
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if v is not None)
    return ()


def _tables(data: Mapping[str, Any]) -> tuple[str, ...]:
    tables: list[str] = []
    for connector in data.get("requiredDataConnectors") or []:
        if isinstance(connector, Mapping):
            for table in connector.get("dataTypes") or []:
                if str(table) not in tables:
                    tables.append(str(table))
    return tuple(tables)


def _read_yaml(path: Path) -> tuple[Any, dict[Path_, int], list[Finding]]:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, {}, [Finding(Level.ERROR, "unreadable", f"cannot read: {exc}", where)]
    try:
        data, lines = load_with_lines(text)
    except YamlSyntaxError as exc:
        return None, {}, [Finding(Level.ERROR, "yaml-syntax", str(exc), where, exc.line)]
    if not isinstance(data, dict):
        return None, {}, [Finding(Level.ERROR, "not-a-mapping",
                                  "the file is not a YAML mapping of rule fields", where, 1)]
    return data, lines, []


def load_rule(path: Path) -> tuple[Rule | None, list[Finding]]:
    """Load one analytic-rule file; return the rule (None if unusable) and the problems."""
    data, lines, findings = _read_yaml(path)
    if data is None:
        return None, findings
    rule = Rule(
        id=str(data.get("id", "")),
        name=_text(data, "name"),
        severity=_text(data, "severity"),
        kind=_text(data, "kind") or "Scheduled",
        query=_text(data, "query"),
        tactics=_strings(data.get("tactics")),
        techniques=_strings(data.get("relevantTechniques")),
        tables=_tables(data),
        path=str(path),
        data=data,
        lines=lines,
    )
    return rule, findings


def load_hunting(path: Path) -> tuple[HuntingQuery | None, list[Finding]]:
    data, lines, findings = _read_yaml(path)
    if data is None:
        return None, findings
    query = HuntingQuery(
        id=str(data.get("id", "")), name=_text(data, "name"), query=_text(data, "query"),
        rule_id=str(data["analyticRuleId"]) if data.get("analyticRuleId") else None,
        path=str(path), lines=lines,
    )
    return query, findings


def default_pack_dir() -> Path:
    """``analytics/`` beside ``hunting/``: in the wheel under ``_pack``, else the checkout."""
    here = Path(__file__).resolve().parent
    bundled = here / "_pack"
    return bundled if (bundled / "analytics").is_dir() else here.parent


#: Sub-folders of analytics/ that hold a rule's companions, not rules: exclusions and fixtures.
COMPANION_DIRS = ("exclusions", "fixtures")


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".yaml", ".yml")
                  and not set(p.relative_to(folder).parts[:-1]) & set(COMPANION_DIRS))


def pack_dir(root: Path | None) -> Path:
    """*root* checked to be a pack (a folder with ``analytics/``), or the bundled pack."""
    from .errors import InputError

    if root is None:
        return default_pack_dir()
    if not (root / "analytics").is_dir():
        what = "does not exist" if not root.exists() else "has no analytics/ folder"
        raise InputError(f"--pack {str(root)!r} is not a rule pack: it {what} "
                         "(create one with 'sentinel-t1190 init DIR')")
    return root


def rule_files(paths: Iterable[Path] | None = None, *, root: Path | None = None) -> list[Path]:
    """The analytic-rule files under *paths* (files or folders), default the pack at *root*."""
    if not paths:
        return _yaml_files(pack_dir(root) / "analytics")
    files: list[Path] = []
    for path in paths:
        files.extend(_yaml_files(path) if path.is_dir() else [path])
    return files


def hunting_files(root: Path | None = None) -> list[Path]:
    """The hunting-query files of the pack at *root* (default: the bundled pack)."""
    return _yaml_files(pack_dir(root) / "hunting")


def load_pack(root: Path | None = None) -> Pack:
    """Load ``analytics/`` and ``hunting/`` under *root* (default: the bundled pack)."""
    root = pack_dir(root)
    rules: list[Rule] = []
    findings: list[Finding] = []
    for path in _yaml_files(root / "analytics"):
        rule, problems = load_rule(path)
        findings.extend(problems)
        if rule is not None:
            rules.append(rule)
    hunting: dict[str, HuntingQuery] = {}
    for path in _yaml_files(root / "hunting"):
        query, problems = load_hunting(path)
        findings.extend(problems)
        if query is not None and query.rule_id:
            hunting[query.rule_id.lower()] = query
    linked = tuple(_with_hunting(r, hunting.get(r.id.lower())) for r in rules)
    return Pack(linked, tuple(findings), root)


def _with_hunting(rule: Rule, query: HuntingQuery | None) -> Rule:
    from dataclasses import replace

    return replace(rule, hunting=query) if query is not None else rule

