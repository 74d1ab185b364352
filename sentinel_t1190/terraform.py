"""The pack as Terraform: ``azurerm_sentinel_alert_rule_scheduled`` with ``for_each`` over
workspaces, in Terraform's JSON syntax (``infra/terraform/rules.tf.json``).

Generated from :func:`sentinel_t1190.alert_rule.to_api_properties` — the same properties
``deploy`` sends — so the Terraform example cannot drift from ``analytics/``
(tests/test_rollout_terraform.py fails when the committed file differs; regenerate with
``python scripts/make_terraform.py``). Targets azurerm 4.x argument names.

What azurerm cannot say is refused, not dropped: sub-techniques (no argument for them,
hashicorp/terraform-provider-azurerm#28801) and more than 5 entity mappings (the provider's
limit; Sentinel allows 10). :func:`rule_resource` raises for such a rule; the whole document
(:func:`terraform_document`) leaves it out and names it, with the reason, in the file's
``//`` comment (:func:`skipped_rules`), so the other rules still get their Terraform.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .alert_rule import resource_name, to_api_properties
from .errors import InputError
from .rules import Rule

RESOURCE = "azurerm_sentinel_alert_rule_scheduled"
#: azurerm's MaxItems on entity_mapping.
MAX_ENTITY_MAPPINGS = 5
_TEMPLATE = re.compile(r"([$%])\{")


def _literal(value: Any) -> Any:
    """Terraform JSON evaluates ``${…}``/``%{…}`` in strings: escape them to stay literal."""
    if isinstance(value, str):
        return _TEMPLATE.sub(r"\1\1{", value)
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    return value


def _address(rule: Rule) -> str:
    """The resource's local name: the rule file's stem (``web_server_child_process``)."""
    stem = Path(rule.path).stem.lower()
    name = re.sub(r"[^a-z0-9_]", "_", stem)
    return name if name[:1].isalpha() else f"rule_{name}"


def _incident(config: Mapping[str, Any]) -> dict[str, Any]:
    grouping = config.get("groupingConfiguration") or {}
    block: dict[str, Any] = {"create_incident_enabled": bool(config.get("createIncident"))}
    if grouping:
        mapped = {
            "enabled": grouping.get("enabled"),
            "lookback_duration": grouping.get("lookbackDuration"),
            "reopen_closed_incidents": grouping.get("reopenClosedIncident"),
            "entity_matching_method": grouping.get("matchingMethod"),
            "by_entities": grouping.get("groupByEntities"),
            "by_alert_details": grouping.get("groupByAlertDetails"),
            "by_custom_details": grouping.get("groupByCustomDetails"),
        }
        block["grouping"] = {k: v for k, v in mapped.items() if v is not None}
    return block


def unsupported(rule: Rule) -> str | None:
    """Why azurerm cannot carry *rule* without losing something, or None if it can."""
    if rule.kind != "Scheduled":
        return f"only Scheduled rules map to {RESOURCE}"
    props = to_api_properties(rule)
    if props.get("subTechniques"):
        return (f"{RESOURCE} has no argument for sub-techniques "
                f"({', '.join(props['subTechniques'])}) - hashicorp/terraform-provider-azurerm"
                "#28801; deploy this rule with the CLI, ARM or Bicep so they are not lost")
    mappings = props.get("entityMappings") or []
    if len(mappings) > MAX_ENTITY_MAPPINGS:
        return f"{len(mappings)} entity mappings; {RESOURCE} accepts {MAX_ENTITY_MAPPINGS}"
    return None


def skipped_rules(rules: Sequence[Rule]) -> list[tuple[Rule, str]]:
    """The rules :func:`terraform_document` leaves out, each with the reason."""
    return [(rule, reason) for rule in rules if (reason := unsupported(rule)) is not None]


def rule_resource(rule: Rule) -> dict[str, Any]:
    """The arguments of one ``azurerm_sentinel_alert_rule_scheduled`` (without for_each).

    Raises :class:`InputError` for a rule azurerm cannot carry whole (:func:`unsupported`).
    """
    reason = unsupported(rule)
    if reason is not None:
        raise InputError(f"{rule.path}: {reason}")
    props = to_api_properties(rule)
    mappings = props.get("entityMappings") or []
    res: dict[str, Any] = {
        "name": resource_name(rule),
        "display_name": props["displayName"],
        "description": props.get("description") or None,
        "severity": props["severity"],
        "query": props["query"],
        "query_frequency": props["queryFrequency"],
        "query_period": props["queryPeriod"],
        "trigger_operator": props["triggerOperator"],
        "trigger_threshold": props["triggerThreshold"],
        "suppression_enabled": props["suppressionEnabled"],
        "suppression_duration": props["suppressionDuration"],
        "tactics": props.get("tactics") or None,
        "techniques": props.get("techniques") or None,
        "custom_details": props.get("customDetails") or None,
    }
    if mappings:
        res["entity_mapping"] = [
            {"entity_type": m["entityType"],
             "field_mapping": [{"identifier": f["identifier"], "column_name": f["columnName"]}
                               for f in m.get("fieldMappings") or []]}
            for m in mappings]
    if props.get("sentinelEntitiesMappings"):
        res["sentinel_entity_mapping"] = [{"column_name": m["columnName"]}
                                          for m in props["sentinelEntitiesMappings"]]
    override = props.get("alertDetailsOverride") or {}
    if override:
        mapped = {"display_name_format": override.get("alertDisplayNameFormat"),
                  "description_format": override.get("alertDescriptionFormat"),
                  "severity_column_name": override.get("alertSeverityColumnName"),
                  "tactics_column_name": override.get("alertTacticsColumnName")}
        res["alert_details_override"] = {k: v for k, v in mapped.items() if v}
    grouping = props.get("eventGroupingSettings") or {}
    if grouping.get("aggregationKind"):
        res["event_grouping"] = {"aggregation_method": grouping["aggregationKind"]}
    if props.get("incidentConfiguration"):
        res["incident"] = _incident(props["incidentConfiguration"])
    return {k: v for k, v in _literal(res).items() if v is not None}


def terraform_document(rules: Sequence[Rule]) -> dict[str, Any]:
    """``rules.tf.json``: one resource per rule, ``for_each = var.workspace_ids``.

    Rules azurerm cannot carry whole are left out and listed, with the reason, in the
    document's ``//`` comment (Terraform ignores ``//`` properties in JSON).
    """
    skipped = skipped_rules(rules)
    left_out = {id(rule) for rule, _ in skipped}
    resources: dict[str, Any] = {}
    for rule in rules:
        if id(rule) in left_out:
            continue
        address = _address(rule)
        if address in resources:
            raise InputError(f"{rule.path}: two rules would share the Terraform name "
                             f"{address!r}")
        resources[address] = {
            "for_each": "${var.workspace_ids}",
            "log_analytics_workspace_id": "${each.value}",
            "enabled": "${var.enabled}",
            **rule_resource(rule),
        }
    comment = "Generated from analytics/ by scripts/make_terraform.py; do not edit."
    if skipped:
        comment += " Not generated, as azurerm cannot express them whole: " + "; ".join(
            f"{Path(rule.path).name} ({rule.id}): {reason}" for rule, reason in skipped) + "."
    return {"//": comment, "resource": {RESOURCE: resources}}


def render(rules: Sequence[Rule]) -> str:
    return json.dumps(terraform_document(rules), indent=2, ensure_ascii=False) + "\n"
