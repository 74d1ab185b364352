"""Rules as deployable files: ARM templates, Bicep, and normalised Azure-Sentinel YAML.

Every format is built from :func:`alert_rule.to_api_properties`, so an exported template
deploys exactly what ``deploy`` would send. The ARM template has one parameter,
``workspace``, and the ``Microsoft.OperationalInsights/workspaces/providers/alertRules``
resource type that Sentinel's own export and Sentinel Repositories use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import alert_rule
from .compile import deployed_query
from .errors import InputError
from .files import atomic_open
from .formats import ExportFormat
from .rules import Rule

SUFFIX = {ExportFormat.arm: ".json", ExportFormat.bicep: ".bicep", ExportFormat.yaml: ".yaml",
          ExportFormat.sigma: ".yml", ExportFormat.navigator: ".json"}
#: The one file ``--format navigator`` writes for the whole pack.
NAVIGATOR_FILE = "attack-navigator-layer.json"
ARM_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
ARM_TYPE = "Microsoft.OperationalInsights/workspaces/providers/alertRules"
#: The workspace is only referenced (``existing``); any GA api-version of it will do.
WORKSPACE_API = "2023-09-01"
_WORKSPACE_HELP = "Name of the Log Analytics workspace where Microsoft Sentinel is enabled."


def file_name(rule: Rule, fmt: ExportFormat) -> str:
    """``analytics/web_server_child_process.yaml`` → ``web_server_child_process.json`` (arm)."""
    return Path(rule.path).stem + SUFFIX[fmt]


def _sigma_text(rules: Sequence[Rule]) -> str:
    """The rules Sigma can express, as multi-document YAML; an error when none can."""
    from .sigma import to_sigma

    documents = [text for text in map(to_sigma, rules) if text is not None]
    if not documents:
        names = ", ".join(Path(r.path).stem for r in rules)
        raise InputError(f"Sigma cannot express {names} (Sigma export covers process-creation "
                         "rules); use arm, bicep or yaml")
    return "---\n".join(documents)


# --- ARM -------------------------------------------------------------------------------------


def _arm_escape(value: Any) -> Any:
    """Strings starting with ``[`` are ARM expressions; ``[[`` keeps them literal."""
    if isinstance(value, str):
        return "[" + value if value.startswith("[") else value
    if isinstance(value, Mapping):
        return {k: _arm_escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_arm_escape(v) for v in value]
    return value


def arm_resource(rule: Rule) -> dict[str, Any]:
    name = alert_rule.resource_name(rule)
    return {
        "type": ARM_TYPE,
        "apiVersion": alert_rule.API_VERSION,
        "name": f"[concat(parameters('workspace'), '/Microsoft.SecurityInsights/{name}')]",
        "kind": rule.kind,
        "properties": _arm_escape(alert_rule.to_api_properties(rule)),
    }


def arm_template(rules: Sequence[Rule]) -> dict[str, Any]:
    """One deployment template holding an alert-rule resource per rule."""
    return {
        "$schema": ARM_SCHEMA,
        "contentVersion": "1.0.0.0",
        "metadata": {"generator": "sentinel-t1190 export --format arm"},
        "parameters": {
            "workspace": {"type": "string", "metadata": {"description": _WORKSPACE_HELP}},
        },
        "resources": [arm_resource(rule) for rule in rules],
    }


def arm_text(rules: Sequence[Rule]) -> str:
    return json.dumps(arm_template(rules), indent=2, ensure_ascii=False) + "\n"


# --- Bicep -----------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _bicep_string(text: str) -> str:
    if ("\n" in text and not text.startswith("\n") and "'''" not in text
            and "\r" not in text):
        # Multi-line strings are verbatim (no escapes, no interpolation).
        return "'''" + text + "'''"
    escaped = (text.replace("\\", "\\\\").replace("'", "\\'").replace("${", "\\${")
               .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f"'{escaped}'"


def _bicep_value(value: Any, indent: str) -> str:
    inner = indent + "  "
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return _bicep_string(value)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        lines = [f"{inner}{k if _IDENTIFIER.match(k) else _bicep_string(k)}: "
                 f"{_bicep_value(v, inner)}" for k, v in value.items()]
        return "{\n" + "\n".join(lines) + f"\n{indent}}}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return ("[\n" + "\n".join(f"{inner}{_bicep_value(v, inner)}" for v in value)
                + f"\n{indent}]")
    raise TypeError(f"cannot write {type(value).__name__} as Bicep")


def _symbol(rule: Rule) -> str:
    stem = re.sub(r"[^A-Za-z0-9_]", "_", Path(rule.path).stem)
    return "rule_" + stem


def bicep_text(rules: Sequence[Rule]) -> str:
    """A Bicep file deploying *rules* into an existing Sentinel workspace (``param workspace``)."""
    out = [
        "// Generated by `sentinel-t1190 export --format bicep`; edit analytics/, not this file.",
        f"@description('{_WORKSPACE_HELP}')",
        "param workspace string",
        "",
        f"resource sentinelWorkspace 'Microsoft.OperationalInsights/workspaces@{WORKSPACE_API}'"
        " existing = {",
        "  name: workspace",
        "}",
    ]
    for rule in rules:
        properties = _bicep_value(alert_rule.to_api_properties(rule), "  ")
        out += [
            "",
            f"// {rule.name}",
            f"resource {_symbol(rule)} '{alert_rule.RESOURCE_TYPE}@{alert_rule.API_VERSION}' = {{",
            f"  name: '{alert_rule.resource_name(rule)}'",
            "  scope: sentinelWorkspace",
            f"  kind: '{rule.kind}'",
            f"  properties: {properties}",
            "}",
        ]
    return "\n".join(out) + "\n"


# --- YAML ------------------------------------------------------------------------------------

#: Azure-Sentinel's field order; fields not listed follow in their own order.
_YAML_ORDER = (
    "id", "name", "description", "severity", "status", "requiredDataConnectors",
    "queryFrequency", "queryPeriod", "triggerOperator", "triggerThreshold", "tactics",
    "relevantTechniques", "tags", "query", "entityMappings", "customDetails",
    "alertDetailsOverride", "eventGroupingSettings", "incidentConfiguration",
    "suppressionEnabled", "suppressionDuration", "version", "kind",
)


def yaml_document(rule: Rule) -> dict[str, Any]:
    """The rule in Azure-Sentinel YAML field order, with the deployed query compiled in."""
    data = dict(rule.data)
    data["query"] = deployed_query(rule)
    ordered = {key: data[key] for key in _YAML_ORDER if key in data}
    ordered.update((key, value) for key, value in data.items() if key not in ordered)
    return ordered


def yaml_text(rules: Sequence[Rule]) -> str:
    import yaml

    class _Dumper(yaml.SafeDumper):
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            # Indent lists under their key, as the Azure-Sentinel repository does.
            super().increase_indent(flow, False)

    def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    return "---\n".join(
        yaml.dump(yaml_document(rule), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                  width=100, default_flow_style=False)
        for rule in rules
    )


# --- one entry point ------------------------------------------------------------------------


def render(rules: Sequence[Rule], fmt: ExportFormat) -> str:
    """*rules* as one document: one ARM template, one Bicep file, or multi-document YAML."""
    if not rules:
        raise InputError("no rules to export")
    if fmt is ExportFormat.sigma:
        return _sigma_text(rules)
    if fmt is ExportFormat.navigator:
        from .navigator import layer_text

        return layer_text(rules)
    _refuse_long_queries(rules)
    if fmt is ExportFormat.arm:
        return arm_text(rules)
    if fmt is ExportFormat.bicep:
        return bicep_text(rules)
    return yaml_text(rules)


def _refuse_long_queries(rules: Sequence[Rule]) -> None:
    """Sentinel refuses a query over its limit, so an export of one would fail at deploy
    time: refuse it here, as ``validate`` reports it."""
    from .validate import QUERY_MAX

    for rule in rules:
        length = len(deployed_query(rule))
        if length > QUERY_MAX:
            raise InputError(f"rule {rule.id} ({rule.name}): the deployed query is "
                             f"{length:,} characters; Sentinel allows {QUERY_MAX:,}")


def files(rules: Sequence[Rule], formats: Iterable[ExportFormat]) -> dict[str, str]:
    """``{relative path: text}``: one file per rule per format (``arm/x.json`` when several
    formats are asked for, ``x.json`` for one). Sigma files only for the rules Sigma can
    express (an error when it can express none of them); navigator: one layer for all."""
    from .sigma import to_sigma

    chosen = list(dict.fromkeys(formats))
    out: dict[str, str] = {}
    for fmt in chosen:
        if fmt is ExportFormat.navigator:
            name = NAVIGATOR_FILE
            out[f"{fmt.value}/{name}" if len(chosen) > 1 else name] = render(rules, fmt)
            continue
        expressible = [r for r in rules if fmt is not ExportFormat.sigma or to_sigma(r)]
        if not expressible:
            _sigma_text(rules)  # raises, naming the rules
        for rule in expressible:
            name = file_name(rule, fmt)
            out[f"{fmt.value}/{name}" if len(chosen) > 1 else name] = render([rule], fmt)
    return out


def write(rules: Sequence[Rule], formats: Iterable[ExportFormat], folder: Path) -> list[Path]:
    """Write :func:`files` under *folder* (created if missing); return the paths written."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {folder} is a file; export writes one file per rule into "
                         "a folder")
    written: list[Path] = []
    for relative, text in files(rules, formats).items():
        path = folder / relative
        with atomic_open(path, parents=True) as handle:
            handle.write(text)
        written.append(path)
    return written
