"""The committed pack: rendered from the one source of truth, and loadable."""

from __future__ import annotations

from sentinel_t1190 import detection
from sentinel_t1190.rules import load_pack


def test_committed_queries_are_rendered_from_detection_module() -> None:
    pack = load_pack()
    [rule] = [r for r in pack.rules if r.id == detection.RULE_ID]
    assert rule.query == detection.rule_query(), "run: python scripts/render_pack.py"
    assert rule.hunting is not None
    assert rule.hunting.query == detection.hunting_query(), "run: python scripts/render_pack.py"


def test_seed_rule_fields() -> None:
    [rule] = [r for r in load_pack().rules if r.id == detection.RULE_ID]
    assert rule.severity == "High"
    assert rule.tactics == ("InitialAccess",)
    assert rule.techniques == ("T1190",)
    assert rule.tables == ("DeviceProcessEvents",)
    assert rule.data["queryFrequency"] == rule.data["queryPeriod"] == "1h"
    entities = {m["entityType"]: {f["identifier"]: f["columnName"] for f in m["fieldMappings"]}
                for m in rule.data["entityMappings"]}
    assert entities["Host"] == {"HostName": "DeviceName"}
    assert entities["Account"] == {"Name": "AccountName"}
    assert entities["Process"] == {"CommandLine": "ProcessCommandLine"}
    assert entities["FileHash"] == {"Algorithm": "FileHashAlgorithm", "Value": "SHA256"}
    assert rule.data["customDetails"]["ExploitEvidence"] == "ExploitEvidence"
    grouping = rule.data["incidentConfiguration"]["groupingConfiguration"]
    assert grouping["groupByEntities"] == ["Host"]
