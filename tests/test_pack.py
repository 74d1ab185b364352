"""The committed pack: rendered from the one source of truth, and loadable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sentinel_t1190 import detection
from sentinel_t1190.errors import InputError
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


SQLI_ID = "427d2c25-b200-43f2-8d98-fc3686ec3258"


@pytest.mark.parametrize("given", [
    SQLI_ID, SQLI_ID.upper(), "427d2c25", "sql_injection_in_request",
    "sql_injection_in_request.yaml", "analytics/sql_injection_in_request.yaml",
    "SQL_Injection_In_Request.YML", "C:\\pack\\analytics\\sql_injection_in_request.yaml",
])
def test_rule_is_chosen_by_id_short_id_or_file(given: str) -> None:
    (rule,) = load_pack().select([given])
    assert (rule.id, rule.short_id) == (SQLI_ID, "sql_injection_in_request")


@pytest.mark.parametrize("given", ["", "no_such_rule", "no_such_rule.yaml", "web"])
def test_a_rule_name_matching_nothing_is_an_input_error(given: str) -> None:
    with pytest.raises(InputError, match="the pack has: linux_web_server_child_process"):
        load_pack().select([given])


def test_short_ids_are_listed_first_by_rules(cli: Callable[..., Any]) -> None:
    run = cli("rules", "--output", "json")
    assert run.code == 0
    short = {r["short_id"]: r["id"] for r in run.json()["rules"]}
    assert short["sql_injection_in_request"] == SQLI_ID
    table = cli("rules")
    assert "sql_injection_in_request" in table.stdout
