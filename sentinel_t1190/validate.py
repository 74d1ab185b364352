"""Rule validation: Sentinel's limits, the KQL, and the columns it reads and outputs.

Every check returns findings (data), never raises; ``validate`` renders them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from .rules import Finding, Level, Rule, load_rule, rule_files

REQUIRED_FIELDS = ("id", "name", "description", "severity", "query", "tactics",
                   "relevantTechniques", "kind")


def check_required(rule: Rule) -> Iterator[Finding]:
    for key in REQUIRED_FIELDS:
        if rule.data.get(key) in (None, "", []):
            yield _error(rule, "missing-field", f"{key} is required", key)


def check_kql_parses(rule: Rule) -> Iterator[Finding]:
    import duckdb_kql

    for diagnostic in duckdb_kql.validate(rule.query)[:1]:
        line = (rule.line_of("query") or 0) + diagnostic.span.line
        yield Finding(Level.ERROR, "kql-syntax", f"the KQL does not parse: {diagnostic.message}",
                      rule.path, line, rule.id)


def check_exclusions(rule: Rule) -> Iterator[Finding]:
    """The rule's exclusions file: malformed entries (errors) and expired ones (warnings)."""
    from datetime import UTC, datetime

    from .errors import InputError
    from .exclusions import apply, exclusions_path, load_exclusions

    entries, findings = load_exclusions(rule)
    yield from findings
    path, today = str(exclusions_path(rule)), datetime.now(UTC).date()
    for entry in entries:
        if entry.expired(today):
            yield Finding(Level.WARNING, "exclusion-expired",
                          f"exclusion {entry.name!r} expired on {entry.expires} and is no "
                          "longer compiled into the rule; renew or delete it", path,
                          entry.line, rule.id)
    try:
        apply(rule.query, entries, rule.tables)
    except InputError as exc:
        yield Finding(Level.ERROR, "exclusion-unplaceable", str(exc), path, None, rule.id)


CHECKS = (check_required, check_kql_parses, check_exclusions)


def _error(rule: Rule, code: str, message: str, *key: str | int) -> Finding:
    return Finding(Level.ERROR, code, message, rule.path, rule.line_of(*key), rule.id)


def validate_rules(rules: Iterable[Rule]) -> list[Finding]:
    """Every finding for *rules*, including the checks across the pack (duplicate ids)."""
    findings: list[Finding] = []
    for rule in rules:
        for check in CHECKS:
            findings.extend(check(rule))
    return findings


def validate_paths(paths: Iterable[Path] | None = None) -> tuple[int, list[Finding]]:
    """Load and validate rule files (default: the pack); return (files checked, findings)."""
    files = rule_files(paths)
    rules: list[Rule] = []
    findings: list[Finding] = []
    for path in files:
        if not path.exists():
            findings.append(Finding(Level.ERROR, "no-such-file", "no such file", str(path)))
            continue
        rule, problems = load_rule(path)
        findings.extend(problems)
        if rule is not None:
            rules.append(rule)
    findings.extend(validate_rules(rules))
    return len(files), findings
