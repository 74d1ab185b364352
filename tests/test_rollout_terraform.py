"""infra/terraform/ is generated from the pack and says everything deploy says."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190.alert_rule import diff, resource_name, to_api_properties
from sentinel_t1190.errors import InputError
from sentinel_t1190.rules import Rule, load_pack
from sentinel_t1190.terraform import (
    RESOURCE,
    render,
    rule_resource,
    skipped_rules,
    terraform_document,
)

ROOT = Path(__file__).resolve().parent.parent
TF = ROOT / "infra" / "terraform"


def pack() -> tuple[Rule, ...]:
    return load_pack(ROOT).rules


def test_committed_terraform_matches_the_pack() -> None:
    committed = (TF / "rules.tf.json").read_text(encoding="utf-8")
    assert committed == render(pack()), (
        "infra/terraform/rules.tf.json is stale: run `python scripts/make_terraform.py`")


def _evaluated(value: Any) -> Any:
    """What Terraform makes of a JSON-syntax value: string templates evaluated, so the
    escapes ``$${`` and ``%%{`` become the literal ``${`` and ``%{`` (no other template
    sequence is left in a generated string: test_template_sequences_in_text_stay_literal)."""
    if isinstance(value, str):
        return value.replace("$${", "${").replace("%%{", "%{")
    if isinstance(value, list):
        return [_evaluated(v) for v in value]
    if isinstance(value, dict):
        return {k: _evaluated(v) for k, v in value.items()}
    return value


def _back_to_api(res: dict[str, Any]) -> dict[str, Any]:
    """The API properties the azurerm provider would send for *res* (its documented mapping)."""
    res = _evaluated(res)
    incident = res["incident"]
    grouping = incident["grouping"]
    override = res["alert_details_override"]
    return {
        "displayName": res["display_name"], "description": res["description"],
        "severity": res["severity"], "enabled": True, "query": res["query"],
        "queryFrequency": res["query_frequency"], "queryPeriod": res["query_period"],
        "triggerOperator": res["trigger_operator"], "triggerThreshold": res["trigger_threshold"],
        "suppressionEnabled": res["suppression_enabled"],
        "suppressionDuration": res["suppression_duration"], "tactics": res["tactics"],
        "techniques": res["techniques"], "customDetails": res["custom_details"],
        "entityMappings": [
            {"entityType": m["entity_type"],
             "fieldMappings": [{"identifier": f["identifier"], "columnName": f["column_name"]}
                               for f in m["field_mapping"]]} for m in res["entity_mapping"]],
        "alertDetailsOverride": {"alertDisplayNameFormat": override["display_name_format"],
                                 "alertDescriptionFormat": override["description_format"]},
        "eventGroupingSettings": {"aggregationKind": res["event_grouping"]["aggregation_method"]},
        "incidentConfiguration": {
            "createIncident": incident["create_incident_enabled"],
            "groupingConfiguration": {
                "enabled": grouping["enabled"], "lookbackDuration": grouping["lookback_duration"],
                "reopenClosedIncident": grouping["reopen_closed_incidents"],
                "matchingMethod": grouping["entity_matching_method"],
                "groupByEntities": grouping["by_entities"],
                "groupByAlertDetails": grouping["by_alert_details"],
                "groupByCustomDetails": grouping["by_custom_details"]}},
    }


WEB_SHELL = "e7c48b62-1115-4cc1-8814-929c734334ff"  # T1505.003: a sub-technique


def test_only_the_rule_azurerm_cannot_carry_is_left_out_and_it_is_named() -> None:
    skipped = skipped_rules(pack())
    assert [(r.id, "sub-techniques (T1505.003)" in why) for r, why in skipped] == [
        (WEB_SHELL, True)]
    document = json.loads((TF / "rules.tf.json").read_text(encoding="utf-8"))
    names = {r["name"] for r in document["resource"][RESOURCE].values()}
    # Every rule is either generated or listed as left out, never silently dropped.
    assert names | {WEB_SHELL} == {resource_name(r) for r in pack()}
    assert WEB_SHELL not in names
    assert f"web_shell_file_in_web_root.yaml ({WEB_SHELL})" in document["//"]
    assert "no argument for sub-techniques (T1505.003)" in document["//"]
    docs = (ROOT / "docs" / "rollout.md").read_text(encoding="utf-8")
    assert "web_shell_file_in_web_root" in docs and "#28801" in docs


def test_every_property_deploy_sends_survives_in_terraform() -> None:
    document = json.loads((TF / "rules.tf.json").read_text(encoding="utf-8"))
    resources = document["resource"][RESOURCE]
    carried = [r for r in pack() if r.id != WEB_SHELL]
    assert len(resources) == len(carried) == len(pack()) - 1
    for rule in carried:
        res = next(r for r in resources.values() if r["name"] == resource_name(rule))
        assert res["for_each"] == "${var.workspace_ids}"
        assert res["log_analytics_workspace_id"] == "${each.value}"
        sent = to_api_properties(rule)
        sent.pop("templateVersion", None)  # template metadata: no azurerm argument needed
        assert diff(sent, _back_to_api(res)) == [], rule.path


def test_template_sequences_in_text_stay_literal() -> None:
    rule = replace(pack()[0], query='W3CIISLog | where csUriQuery has "${jndi:ldap://"')
    res = rule_resource(rule)
    assert res["query"] == 'W3CIISLog | where csUriQuery has "$${jndi:ldap://"'
    assert rule_resource(replace(rule, query="T | where x == '%{a}'"))["query"] == (
        "T | where x == '%%{a}'")


def test_what_azurerm_cannot_carry_is_refused_not_dropped() -> None:
    (rule,) = [r for r in pack() if Path(r.path).stem == "web_server_child_process"]
    subs = replace(rule, techniques=("T1190", "T1505.003"))
    with pytest.raises(InputError, match=r"no argument for sub-techniques \(T1505\.003\)"):
        rule_resource(subs)
    six = {**rule.data, "entityMappings": [
        {"entityType": "Host", "fieldMappings": [{"identifier": "HostName", "columnName": c}]}
        for c in "abcdef"]}
    with pytest.raises(InputError, match="6 entity mappings"):
        rule_resource(replace(rule, data=six))
    with pytest.raises(InputError, match="share the Terraform name"):
        terraform_document([rule, replace(rule, id="11111111-2222-3333-4444-555555555555")])
    # In a whole document such rules are left out and named, the others still generated.
    document = terraform_document([rule, subs])
    assert list(document["resource"][RESOURCE]) == ["web_server_child_process"]
    assert f"({rule.id}): {RESOURCE} has no argument for sub-techniques" in document["//"]


def test_variables_the_generated_file_uses_are_declared() -> None:
    variables = (TF / "variables.tf").read_text()
    for name in ("workspace_ids", "enabled"):
        assert f'variable "{name}"' in variables
    assert 'source  = "hashicorp/azurerm"' in (TF / "versions.tf").read_text()
