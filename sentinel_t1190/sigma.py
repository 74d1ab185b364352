"""Sigma export: the rules Sigma can express, as Sigma YAML, and back to KQL through pySigma.

Only the web-server child-process rule is expressible as a plain Sigma ``process_creation``
rule; the companion rules need regexes over concatenated, URL-decoded fields and a union of
tables, so :func:`to_sigma` returns None for them rather than a weaker rule.

Field choice: Sigma's taxonomy has no field for the bare image name. ``Image`` and
``ParentImage`` are full paths, which pySigma's Microsoft XDR pipeline maps to
``FolderPath`` and ``InitiatingProcessFolderPath``. The Sigma rule therefore matches
``Image|endswith: '\\cmd.exe'`` — the backslash keeps ``xcmd.exe`` out, so on events whose
path is ``<folder>\\<FileName>`` it gives the same verdict as the native rule's
``FileName in~ ("cmd.exe")``. It differs where Defender leaves ``FolderPath`` empty (the
native rule matches, Sigma does not) and for Linux paths (``/``); both are documented in
docs/tuning.md. The round-trip test runs the converted KQL over every fixture.

Exclusions whose fields Sigma's taxonomy carries (parent, child, command_line) become
``filter_*`` selections; others are listed in the description as not exported, so the
Sigma rule can only be wider than the deployed one, never narrower.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from . import detection
from .rules import Rule

SEVERITY_LEVEL = {"Informational": "informational", "Low": "low", "Medium": "medium",
                  "High": "high"}
_TACTIC_TAGS = {"InitialAccess": "attack.initial-access", "Persistence": "attack.persistence"}
_SIGMA_FIELDS = {"parent": "ParentImage", "child": "Image", "command_line": "CommandLine"}
_MODIFIERS = {"equals": "", "contains": "|contains", "startswith": "|startswith",
              "endswith": "|endswith", "regex": "|re"}


def _escape(value: str) -> str:
    """A literal Sigma string: ``*`` and ``?`` are wildcards and ``\\`` escapes them."""
    return value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def _image_values(names: Iterable[str]) -> list[str]:
    return ["\\" + _escape(name) for name in names]


def _filter(entry: Any) -> dict[str, Any] | None:
    """A Sigma selection for an exclusion entry, or None if a field has no Sigma equivalent."""
    selection: dict[str, Any] = {}
    for condition in entry.conditions:
        field = _SIGMA_FIELDS.get(condition.field)
        if field is None:
            return None
        if condition.field in ("parent", "child") and condition.op == "equals":
            # Names are compared as paths, like the detection itself.
            key, values = f"{field}|endswith", _image_values(condition.values)
        elif condition.op == "regex":
            key, values = f"{field}|re", list(condition.values)
        else:
            key = field + _MODIFIERS[condition.op]
            values = [_escape(v) for v in condition.values]
        selection[key] = values[0] if len(values) == 1 else values
    return selection


def to_sigma(rule: Rule, *, today: date | None = None) -> str | None:
    """Sigma YAML for *rule*, or None when Sigma cannot express it faithfully."""
    import yaml

    from .compile import _today
    from .exclusions import active, load_exclusions

    if rule.id != detection.RULE_ID:
        return None
    entries, _ = load_exclusions(rule)
    filters: dict[str, Any] = {}
    skipped: list[str] = []
    for entry in active(entries, _today(today)):
        selection = _filter(entry)
        if selection is None:
            skipped.append(entry.name)
        else:
            # Loading refuses names that collide here (exclusions._key).
            filters["filter_" + re.sub(r"[-.]", "_", entry.name.lower())] = selection
    description = " ".join(str(rule.data.get("description", "")).split())
    if skipped:
        description += (" Exclusions not exported (their fields have no Sigma equivalent; "
                        "this rule is wider than the deployed one): " + ", ".join(skipped) + ".")
    detection_block: dict[str, Any] = {
        "selection": {
            "ParentImage|endswith": _image_values(detection.WEB_SERVER_PARENTS),
            "Image|endswith": _image_values(detection.SUSPICIOUS_CHILDREN),
        },
        **filters,
        "condition": "selection and not 1 of filter_*" if filters else "selection",
    }
    document = {
        "title": rule.name,
        "id": rule.id,
        "status": "experimental",
        "description": description,
        "references": ["https://attack.mitre.org/techniques/T1190/"],
        "author": "sentinel-t1190",
        "tags": [_TACTIC_TAGS.get(t, "attack." + t.lower()) for t in rule.tactics]
        + ["attack." + t.lower() for t in rule.techniques],
        "logsource": {"category": "process_creation", "product": "windows"},
        "detection": detection_block,
        "fields": ["DeviceName", "AccountName", "ParentImage", "ParentCommandLine", "Image",
                   "CommandLine"],
        "falsepositives": [
            "Node.js applications using child_process for image, PDF or video work",
            "Deployment automation under IIS application pools or Java servers",
            "Exchange Hybrid Configuration Wizard and Exchange maintenance",
            "APM and diagnostic agents (Dynatrace, AppDynamics, New Relic)",
            "DevOps agents (Octopus Deploy, TeamCity, Ansible) under an app-pool identity",
        ],
        "level": SEVERITY_LEVEL.get(rule.severity, "medium"),
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def sigma_documents(rules: Iterable[Rule], *, today: date | None = None) -> dict[str, str]:
    """``{"<rule file stem>.yml": sigma_yaml}`` for each rule Sigma can express."""
    documents: dict[str, str] = {}
    for rule in rules:
        text = to_sigma(rule, today=today)
        if text is not None:
            documents[f"{Path(rule.path).stem}.yml"] = text
    return documents


def sigma_to_kql(sigma_yaml: str) -> str:
    """Convert Sigma YAML to KQL with pySigma's Kusto backend and Microsoft XDR pipeline."""
    from sigma.backends.kusto.kusto import KustoBackend
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError
    from sigma.pipelines.microsoftxdr.microsoftxdr import microsoft_xdr_pipeline

    from .errors import InputError

    try:
        pipeline: Any = microsoft_xdr_pipeline()  # pySigma's own annotation is too narrow
        backend = KustoBackend(processing_pipeline=pipeline)
        queries = backend.convert(SigmaCollection.from_yaml(sigma_yaml))
    except SigmaError as exc:
        raise InputError(f"pySigma cannot convert the rule: {exc}") from exc
    if len(queries) != 1:
        raise InputError(f"expected one KQL query from the Sigma rule, got {len(queries)}")
    return str(queries[0])
