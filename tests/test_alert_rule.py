from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190 import alert_rule, detection
from sentinel_t1190.alert_rule import Change, diff, normalise, to_api_properties
from sentinel_t1190.errors import InputError
from sentinel_t1190.rules import Rule, load_pack, load_rule

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "azure"
SEED_ID = "5b8c3f1e-7d2a-4e6b-9c41-0f3a8e2d1b77"


def _seed() -> Rule:
    (rule,) = [r for r in load_pack(ROOT).rules if r.id == SEED_ID]
    return rule


def _rule(tmp_path: Path, **changes: Any) -> Rule:
    """The seed rule's YAML with *changes* applied, loaded from a temporary file."""
    import yaml

    data = yaml.safe_load((ROOT / "analytics" / "web_server_child_process.yaml").read_text())
    data.update(changes)
    path = tmp_path / "rule.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    rule, findings = load_rule(path)
    assert rule is not None and not findings
    return rule


def _example(name: str) -> dict[str, Any]:
    return json.loads((REFERENCE / name).read_text())  # type: ignore[no-any-return]


def test_seed_rule_properties() -> None:
    props = to_api_properties(_seed())
    assert props["displayName"] == "Web server process spawned a shell or attacker tool (T1190)"
    assert props["description"].startswith("A web-server or application-server process")
    assert not props["description"].endswith("\n")
    assert props["severity"] == "High"
    assert props["enabled"] is True
    assert props["queryFrequency"] == "PT1H"
    assert props["queryPeriod"] == "PT1H"
    assert props["triggerOperator"] == "GreaterThan"
    assert props["triggerThreshold"] == 0
    assert props["suppressionEnabled"] is False
    assert props["suppressionDuration"] == "PT5H"
    assert props["tactics"] == ["InitialAccess"]
    assert props["techniques"] == ["T1190"]
    assert "subTechniques" not in props
    assert props["query"] == detection.rule_query()
    assert props["query"].startswith("DeviceProcessEvents\n| where Timestamp > ago(24h)\n")
    assert [m["entityType"] for m in props["entityMappings"]] == [
        "Host", "Account", "Process", "FileHash"]
    assert props["entityMappings"][3]["fieldMappings"] == [
        {"identifier": "Algorithm", "columnName": "FileHashAlgorithm"},
        {"identifier": "Value", "columnName": "SHA256"},
    ]
    assert props["customDetails"] == {
        "ExploitEvidence": "ExploitEvidence", "ServerProcess": "InitiatingProcessFileName",
        "ServerCommandLine": "InitiatingProcessCommandLine",
        "ServerParent": "InitiatingProcessParentFileName",
    }
    assert props["alertDetailsOverride"]["alertDisplayNameFormat"] == (
        "{{InitiatingProcessFileName}} spawned {{FileName}} on {{DeviceName}}")
    assert props["eventGroupingSettings"] == {"aggregationKind": "AlertPerResult"}
    assert props["incidentConfiguration"] == {
        "createIncident": True,
        "groupingConfiguration": {
            "enabled": True, "reopenClosedIncident": False, "lookbackDuration": "P1D",
            "matchingMethod": "Selected", "groupByEntities": ["Host"],
            "groupByAlertDetails": [], "groupByCustomDetails": [],
        },
    }
    assert props["templateVersion"] == "1.0.0"
    json.dumps(props)  # plain JSON all the way down


def test_disabled_and_body() -> None:
    body = alert_rule.to_api_body(_seed(), enabled=False)
    assert body["kind"] == "Scheduled"
    assert body["properties"]["enabled"] is False
    assert alert_rule.resource_name(_seed()) == SEED_ID


def test_sub_techniques_split(tmp_path: Path) -> None:
    rule = _rule(tmp_path, relevantTechniques=["T1190", "T1505.003", "T1505.004", "t1059.001"])
    props = to_api_properties(rule)
    assert props["techniques"] == ["T1190", "T1505", "T1059"]
    assert props["subTechniques"] == ["T1505.003", "T1505.004", "T1059.001"]


@pytest.mark.parametrize(("yaml_value", "api_value"), [
    ("gt", "GreaterThan"), ("lt", "LessThan"), ("eq", "Equal"), ("ne", "NotEqual"),
    ("GreaterThan", "GreaterThan"),
])
def test_trigger_operators(tmp_path: Path, yaml_value: str, api_value: str) -> None:
    assert to_api_properties(_rule(tmp_path, triggerOperator=yaml_value))[
        "triggerOperator"] == api_value


@pytest.mark.parametrize(("frequency", "period", "iso_frequency", "iso_period"), [
    ("5m", "5h", "PT5M", "PT5H"), ("1d", "14d", "P1D", "P14D"), ("PT2H", "1d", "PT2H", "P1D"),
])
def test_durations(tmp_path: Path, frequency: str, period: str,
                   iso_frequency: str, iso_period: str) -> None:
    props = to_api_properties(_rule(tmp_path, queryFrequency=frequency, queryPeriod=period))
    assert (props["queryFrequency"], props["queryPeriod"]) == (iso_frequency, iso_period)


def test_bad_operator_and_duration_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="triggerOperator: 'ge'"):
        to_api_properties(_rule(tmp_path, triggerOperator="ge"))
    with pytest.raises(InputError, match="queryPeriod: not a duration: 'soon'"):
        to_api_properties(_rule(tmp_path, queryPeriod="soon"))


def test_normalise_get_example() -> None:
    resource = _example("securityinsights-2025-12-01/GetScheduledAlertRule.json")[
        "responses"]["200"]["body"]
    props = normalise(resource)
    assert "lastModifiedUtc" not in props
    assert "alertRuleTemplateName" not in props
    assert props["alertDetailsOverride"] == {
        "alertDisplayNameFormat": "Alert from {{Computer}}",
        "alertDescriptionFormat": "Suspicious activity was made by {{ComputerIP}}",
    }
    assert props["tactics"] == ["LateralMovement", "Persistence"]
    assert props["queryPeriod"] == "P2DT1H30M"
    assert props["incidentConfiguration"]["groupingConfiguration"]["groupByCustomDetails"] == [
        "OperatingSystemName", "OperatingSystemType"]
    assert props["entityMappings"][0]["entityType"] == "Host"
    assert normalise(props) == props  # idempotent


def test_normalise_folds_what_the_service_changes() -> None:
    sent = to_api_properties(_seed())
    returned = copy.deepcopy(sent)
    returned.update({
        "queryPeriod": "PT60M", "severity": "high", "triggerOperator": "greaterthan",
        "query": sent["query"].replace("\n", "  \r\n"), "tactics": ["initialaccess"],
        "lastModifiedUtc": "2026-11-27T10:00:00Z", "alertRuleTemplateName": None,
        "subTechniques": [], "sentinelEntitiesMappings": None,
    })
    returned["incidentConfiguration"]["groupingConfiguration"]["lookbackDuration"] = "PT24H"
    returned["alertDetailsOverride"]["alertSeverityColumnName"] = None
    returned["entityMappings"] = list(reversed(returned["entityMappings"]))
    assert diff(sent, returned) == []


def test_diff_equal_rule_is_empty() -> None:
    props = to_api_properties(_seed())
    assert diff(props, {"kind": "Scheduled", "etag": '"x"', "properties": props}) == []


def test_diff_finds_a_query_edit_and_field_changes() -> None:
    desired = to_api_properties(_seed())
    actual = copy.deepcopy(desired)
    actual["query"] = desired["query"].replace("ago(24h)", "ago(1h)")
    actual["severity"] = "Medium"
    actual["entityMappings"][1]["fieldMappings"][0]["columnName"] = "AccountUpn"
    del actual["customDetails"]["ServerParent"]
    actual["incidentConfiguration"]["groupingConfiguration"]["lookbackDuration"] = "PT5H"
    changes = {c.field: c for c in diff(desired, actual)}
    assert set(changes) == {
        "query", "severity", "entityMappings[0].fieldMappings[0].columnName",
        "customDetails.ServerParent",
        "incidentConfiguration.groupingConfiguration.lookbackDuration",
    }
    assert "ago(1h)" in changes["query"].from_ and "ago(24h)" in changes["query"].to
    assert changes["severity"] == Change("severity", "Medium", "High")
    # entity mappings are compared ordered by type: Account sorts first
    assert changes["entityMappings[0].fieldMappings[0].columnName"].to_dict() == {
        "field": "entityMappings[0].fieldMappings[0].columnName",
        "from": "AccountUpn", "to": "AccountName", "diff": {"kind": "value"}}
    assert changes["query"].to_dict()["diff"]["kind"] == "text"
    assert changes["customDetails.ServerParent"] == Change(
        "customDetails.ServerParent", None, "InitiatingProcessParentFileName")
    assert changes["incidentConfiguration.groupingConfiguration.lookbackDuration"] == Change(
        "incidentConfiguration.groupingConfiguration.lookbackDuration", "PT5H", "P1D")


def test_dropped_reports_what_the_service_lost(tmp_path: Path) -> None:
    sent = to_api_properties(_rule(tmp_path, relevantTechniques=["T1190", "T1505.003"]))
    returned = copy.deepcopy(sent)
    del returned["subTechniques"]
    returned["techniques"] = ["T1190"]
    returned["entityMappings"] = returned["entityMappings"][:2]
    returned.pop("customDetails")
    lost = alert_rule.dropped(sent, returned)
    assert "subTechniques" in lost and "techniques" in lost and "customDetails" in lost
    assert lost == ["techniques", "subTechniques", "entityMappings", "customDetails"]
    assert alert_rule.dropped(sent, copy.deepcopy(sent)) == []


def test_every_pack_rule_is_in_shipped_ids() -> None:
    shipped = alert_rule.shipped_rule_ids()
    missing = [f"{r.path} ({r.id})" for r in load_pack(ROOT).rules
               if alert_rule.resource_name(r) not in shipped]
    assert missing == [], "add these ids to sentinel_t1190/data/shipped_rule_ids.txt"
    assert alert_rule.is_owned(SEED_ID.upper())
    assert not alert_rule.is_owned("73e01a99-5cd7-4139-a149-9f2736ff2ab5")


def test_template_version_is_advisory() -> None:
    sent = to_api_properties(_seed())
    returned = {k: v for k, v in sent.items() if k != "templateVersion"}
    assert diff(sent, returned) == []
    assert alert_rule.dropped(sent, returned) == []
    assert diff(sent, {**sent, "templateVersion": "0.9.0"}) == [
        Change("templateVersion", "0.9.0", "1.0.0")]


@pytest.mark.parametrize("threshold", ["many", 1.5, True])
def test_bad_threshold_is_input_error(tmp_path: Path, threshold: Any) -> None:
    with pytest.raises(InputError, match="triggerThreshold"):
        to_api_properties(_rule(tmp_path, triggerThreshold=threshold))
