"""A pack rule as a Defender XDR custom detection rule (Graph ``security/rules/detectionRules``).

Pure: no Azure imports. The one place that turns a rule into the Graph body and compares a
deployed detection rule with the pack's, as :mod:`alert_rule` does for Sentinel.

- The query is the deployed KQL (exclusions compiled in) with ``DeviceId`` and ``ReportId``
  added to its final ``project``: a custom detection must return ``Timestamp``, ``DeviceId``
  and ``ReportId`` to tie each alert to its event. Rules reading tables Defender XDR does not
  have, or whose output has no ``Timestamp``, cannot be expressed and are refused.
- Frequency: custom detections run continuously (``0``) or every 1, 3, 12 or 24 hours; the
  rule's ``queryFrequency`` is rounded up to the next of these.
- Which deployed rule is ours: Graph assigns numeric ids, so the rule id is written into the
  description's last line (:data:`MARKER`); ``displayName`` may be renamed in the portal.
- Response actions (device isolation…) are never sent unless asked for explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from .alert_rule import Change
from .compile import deployed_query
from .rules import Rule
from .sources import defender_gaps
from .timespan import parse_duration

#: The description line naming the pack rule a detection rule was made from.
MARKER = "sentinel-t1190 rule id: "
#: Allowed schedule periods (Graph ``schedule.period``), shortest first.
PERIODS = (("1H", timedelta(hours=1)), ("3H", timedelta(hours=3)),
           ("12H", timedelta(hours=12)), ("24H", timedelta(hours=24)))
REQUIRED_COLUMNS = ("Timestamp", "DeviceId", "ReportId")
_PROJECT = re.compile(r"\|\s*project\s+(?=[^|]*\bTimestamp\b)", re.IGNORECASE)
_LAST_PROJECT = re.compile(r"\|\s*project\b(?!-)", re.IGNORECASE)
_MARKER_LINE = re.compile(re.escape(MARKER) + r"([0-9a-fA-F-]{36})")
ISOLATE = {"@odata.type": "#microsoft.graph.security.isolateDeviceResponseAction",
           "isolationType": "full",
           "identifier": "deviceId"}


class NotExpressible(ValueError):
    """The rule cannot be a custom detection (the reason is the message)."""


def defender_query(rule: Rule) -> str:
    """The deployed query returning Timestamp, DeviceId and ReportId (NotExpressible if not)."""
    gaps = defender_gaps(rule)
    if gaps:
        raise NotExpressible(f"Defender XDR has no table {', '.join(gaps)}")
    query = deployed_query(rule).rstrip()
    projects = list(_LAST_PROJECT.finditer(query))
    if not projects:
        return query  # every column of the table reaches the output
    last = projects[-1]
    kept = _PROJECT.match(query, last.start())
    if kept is None:
        raise NotExpressible("its output has no Timestamp column, which custom detections "
                             "require")
    listed = query[kept.end():].split("|", 1)[0]
    extra = [c for c in ("DeviceId", "ReportId") if not re.search(rf"\b{c}\b", listed)]
    if not extra:
        return query
    at = kept.end()
    first = re.match(r"Timestamp\s*,\s*", query[at:])
    at += first.end() if first else 0  # Timestamp stays the first column
    return query[:at] + ", ".join(extra) + ", " + query[at:]


def schedule_period(rule: Rule) -> str:
    """The custom detection's period for the rule's queryFrequency (rounded up)."""
    frequency = parse_duration(str(rule.data.get("queryFrequency") or "1h"))
    for period, length in PERIODS:
        if frequency <= length:
            return period
    return PERIODS[-1][0]


def rule_id_of(resource: Mapping[str, Any]) -> str | None:
    """The pack rule id a deployed detection rule names in its description, or None."""
    template = (resource.get("detectionAction") or {}).get("alertTemplate") or {}
    found = _MARKER_LINE.search(str(template.get("description") or ""))
    return found.group(1).lower() if found else None


def to_body(rule: Rule, *, enabled: bool = True, isolate: bool = False) -> dict[str, Any]:
    """The POST/PATCH body of the custom detection for *rule* (NotExpressible if none)."""
    description = str(rule.data.get("description") or "").strip()
    template: dict[str, Any] = {
        "title": rule.name,
        "description": f"{description}\n\n{MARKER}{rule.id}".strip(),
        "severity": rule.severity.lower(),
        "category": rule.tactics[0] if rule.tactics else "InitialAccess",
        "mitreTechniques": list(rule.techniques),
        "recommendedActions": None,
        "impactedAssets": [{
            "@odata.type": "#microsoft.graph.security.impactedDeviceAsset",
            "identifier": "deviceId"}],
    }
    return {
        "displayName": rule.name,
        "isEnabled": enabled,
        "queryCondition": {"queryText": defender_query(rule)},
        "schedule": {"period": schedule_period(rule)},
        "detectionAction": {
            "alertTemplate": template,
            "organizationalScope": None,
            "responseActions": [dict(ISOLATE)] if isolate else [],
        },
    }


def _flat(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            if not str(key).startswith("@odata.context"):
                flat.update(_flat(item, f"{path}.{key}" if path else str(key)))
        return flat
    return {path: value}


def _canonical(path: str, value: Any) -> Any:
    if path == "queryCondition.queryText" and isinstance(value, str):
        return "\n".join(line.rstrip() for line in value.replace("\r\n", "\n").strip()
                         .splitlines())
    if path.endswith("mitreTechniques") and isinstance(value, list):
        return sorted(str(v).upper() for v in value)
    if path.endswith("severity") and isinstance(value, str):
        return value.lower()
    return value


def diff(desired: Mapping[str, Any], deployed: Mapping[str, Any]) -> list[Change]:
    """The fields of *desired* that differ in *deployed* (server-set fields are ignored)."""
    want, have = _flat(desired), _flat(deployed)
    changes = []
    for path, value in want.items():
        ours, theirs = _canonical(path, value), _canonical(path, have.get(path))
        if ours != theirs and not (ours in (None, []) and theirs in (None, [])):
            changes.append(Change(path, have.get(path), value))
    return changes
