"""Every JSON document is versioned and valid against its shipped JSON Schema.

Documents that need Azure are checked where they are produced (test_deploy, test_rollout,
test_health); the offline ones here, from the real CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, assert_schema

from sentinel_t1190.output_schemas import KINDS, SCHEMA_VERSION, schema
from sentinel_t1190.sample import sample_files


def test_every_shipped_schema_is_a_valid_schema_and_listed() -> None:
    import jsonschema

    shipped = {p.name.removesuffix(".schema.json")
               for p in resources.files("sentinel_t1190.output_schemas").iterdir()
               if p.name.endswith(".schema.json")}
    assert shipped == set(KINDS)
    for kind in KINDS:
        jsonschema.Draft202012Validator.check_schema(schema(kind))
        assert schema(kind)["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_the_docs_list_every_schema() -> None:
    docs = (ROOT / "docs/json-output.md").read_text(encoding="utf-8")
    for kind in KINDS:
        assert f"sentinel_t1190/output_schemas/{kind}.schema.json" in docs


@pytest.mark.parametrize(("kind", "args"), [
    ("rules", ["rules"]),
    ("validate", ["validate"]),
    ("validate", ["validate", str(ROOT / "tests/data/invalid/bad_severity.yaml")]),
    ("test", ["test"]),
    ("hunt", ["hunt", "--sample"]),
])
def test_offline_documents_match_their_schema(cli: Callable[..., Any], kind: str,
                                              args: list[str]) -> None:
    run = cli(*args, "--output", "json")
    assert run.code in (0, 1), run.stderr
    document = run.json()
    assert next(iter(document)) == "schema_version"
    assert_schema(document, kind)


def test_several_rules_hunt_document_matches_its_schema(cli: Callable[..., Any],
                                                        tmp_path: Path) -> None:
    iis = tmp_path / "W3CIISLog.csv"
    iis.write_text("TimeGenerated,Computer,sSiteName,cIP,csMethod,csUriStem,csUriQuery,"
                   "scStatus,csUserAgent\n2026-01-15T11:00:00Z,web-01,W3SVC1,198.51.100.7,GET,"
                   "/p.aspx,id=1'+UNION+SELECT+1--,200,curl\n", encoding="utf-8")
    run = cli("hunt", "--local", str(iis), *sample_files(), "--now", "2026-01-15T12:00:00Z",
              "--rule", "web_server_child_process", "--rule", "sql_injection_in_request",
              "--output", "json")
    assert run.code == 0, run.stderr
    document = run.json()
    assert [r["summary"]["total"] > 0 for r in document["results"]] == [True, True]
    assert_schema(document, "hunt")


def test_backtest_document_matches_its_schema(cli: Callable[..., Any], tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    assert cli("init", str(pack)).code == 0
    run = cli("backtest", "--pack", str(pack), "--baseline", str(pack), "--local",
              str(pack / "telemetry/DeviceProcessEvents.csv"), "--now", "2026-01-15T12:00:00Z",
              "--output", "json")
    assert run.code == 0, run.stderr
    assert_schema(run.json(), "backtest")


def test_a_wrong_document_is_refused() -> None:
    """The schemas have teeth: a renamed field or a wrong state fails validation."""
    import jsonschema

    good = {"schema_version": SCHEMA_VERSION, "workspace": {
        "subscription_id": "s", "resource_group": "g", "workspace": "w"},
        "rules": [{"id": "i", "short_id": "x", "name": "n", "state": "refused",
                   "reason": "why", "changes": []}]}
    assert_schema(good, "status")
    for bad in ({**good, "schema_version": 2},
                {**good, "rules": [{**good["rules"][0], "state": "skipped"}]},
                {k: v for k, v in good.items() if k != "schema_version"}):
        with pytest.raises(jsonschema.ValidationError):
            assert_schema(bad, "status")
