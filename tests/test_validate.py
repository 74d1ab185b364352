from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190 import attack
from sentinel_t1190.rules import load_rule, rule_files
from sentinel_t1190.validate import query_facts, validate_paths, validate_rules

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
INVALID = DATA / "invalid"
SEED = ROOT / "analytics" / "web_server_child_process.yaml"


def errors(doc: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {(Path(f["path"]).name, f["code"], f["line"])
            for f in doc["findings"] if f["level"] == "error"}


# Each invalid file is the seed rule with one defect. The first eight are issue 2's acceptance list.
CASES = [
    ("bad_duration", "bad-duration", 24),
    ("period_shorter_than_frequency", "period-shorter-than-frequency", 25),
    ("unknown_column", "unknown-column", 50),
    ("query_too_long", "query-too-long", 34),
    ("technique_without_tactic", "technique-without-tactic", 32),
    ("custom_detail_not_output", "custom-detail-not-in-output", 84),
    ("yaml_syntax", "yaml-syntax", 14),
    ("unknown_column_case", "unknown-column", 48),
    ("duration_out_of_range", "duration-out-of-range", 25),
    ("frequency_too_short", "frequency-too-short", 24),
    ("entity_column_not_output", "entity-column-not-in-output", 64),
    ("placeholder_not_output", "alert-column-not-in-output", 85),
    ("bad_id", "bad-id", 1),
    ("bad_severity", "bad-severity", 13),
    ("bad_kind", "bad-kind", 104),
    ("bad_trigger_operator", "bad-trigger-operator", 26),
    ("bad_trigger_threshold", "bad-trigger-threshold", 27),
    ("unknown_tactic", "unknown-tactic", 30),
    ("bad_technique", "bad-technique", 32),
    ("name_too_long", "name-too-long", 2),
    ("bad_entity_type", "bad-entity-type", 61),
    ("too_many_identifiers", "too-many-identifiers", 66),
    ("bad_custom_detail_key", "bad-custom-detail-key", 81),
    ("table_not_in_connectors", "table-not-in-connectors", 14),
    ("too_many_placeholders", "too-many-placeholders", 85),
    ("hunting_unknown_rule", "unknown-analytic-rule", 15),
    ("hunting/missing_time_placeholder", "missing-time-placeholder", 17),
]


@pytest.mark.parametrize(("name", "code", "line"), CASES, ids=[c[0] for c in CASES])
def test_invalid_file_reports_its_defect_with_file_and_line(
        cli: Callable[..., Any], name: str, code: str, line: int) -> None:
    path = INVALID / f"{name}.yaml"
    run = cli("validate", str(path), "--output", "json")
    assert run.code == 1, run.stderr
    assert errors(run.json()) == {(path.name, code, line)}


def test_bad_identifier_reports_the_identifier_and_the_missing_strong_one(
        cli: Callable[..., Any]) -> None:
    run = cli("validate", str(INVALID / "bad_identifier.yaml"), "--output", "json")
    assert run.code == 1
    assert errors(run.json()) == {("bad_identifier.yaml", "bad-identifier", 63),
                                  ("bad_identifier.yaml", "missing-strong-identifier", 61)}


def test_duplicate_id_across_two_files_reports_both(cli: Callable[..., Any]) -> None:
    a, b = INVALID / "duplicate_id_a.yaml", INVALID / "duplicate_id_b.yaml"
    run = cli("validate", str(a), str(b), "--output", "json")
    assert run.code == 1
    doc = run.json()
    assert errors(doc) == {("duplicate_id_a.yaml", "duplicate-id", 1),
                           ("duplicate_id_b.yaml", "duplicate-id", 1)}
    messages = {Path(f["path"]).name: f["message"] for f in doc["findings"]}
    assert f"{b}:1" in messages["duplicate_id_a.yaml"]
    assert f"{a}:1" in messages["duplicate_id_b.yaml"]
    # Each file alone is fine: the check is across the files validated together.
    assert cli("validate", str(a)).code == 0


def test_the_shipped_pack_validates_clean(cli: Callable[..., Any]) -> None:
    run = cli("validate", "--output", "json")
    assert run.code == 0, run.stdout
    doc = run.json()
    # analytics/ and hunting/: five rules and their hunting queries.
    assert doc == {"schema_version": 1, "checked": 10, "errors": 0, "warnings": 0,
                   "findings": []}


def test_every_rule_in_analytics_is_valid() -> None:
    """One failure listing every offender across the pack (detection-rules style)."""
    rules = []
    offenders = []
    for path in rule_files([ROOT / "analytics"]):
        rule, problems = load_rule(path)
        offenders.extend(problems)
        if rule is not None:
            rules.append(rule)
    assert rules, "analytics/ holds no rule"
    offenders.extend(validate_rules(rules))
    listing = "\n".join(f"{f.path}:{f.line}: {f.level} [{f.code}] {f.message}" for f in offenders)
    assert not offenders, f"{len(offenders)} problem(s) in analytics/:\n{listing}"


def test_valid_files_pass_and_unsupported_kql_is_only_a_warning(cli: Callable[..., Any]) -> None:
    run = cli("validate", str(DATA / "valid"), "--output", "json")
    assert run.code == 0, run.stdout
    doc = run.json()
    assert doc["checked"] == 4 and doc["errors"] == 0
    [warning] = doc["findings"]
    assert (Path(warning["path"]).name, warning["code"], warning["line"]) == (
        "unsupported_kql.yaml", "kql-unsupported-locally", 59)
    assert "ProjectReorderOperator" in warning["message"]


def test_json_output_shape(cli: Callable[..., Any]) -> None:
    run = cli("validate", str(INVALID / "bad_duration.yaml"), "--output", "json")
    doc = run.json()
    assert set(doc) == {"schema_version", "checked", "errors", "warnings", "findings"}
    assert (doc["checked"], doc["errors"], doc["warnings"]) == (1, 1, 0)
    [finding] = doc["findings"]
    assert finding == {
        "level": "error", "code": "bad-duration",
        "message": "queryFrequency '1x' is not a duration (use 5m, 1h, 14d or PT1H)",
        "path": str(INVALID / "bad_duration.yaml"), "line": 24,
        "rule_id": "6d80ec08-f99e-5c54-bfa5-8bb10a567fea",
    }


def test_table_output_names_file_line_and_code(cli: Callable[..., Any]) -> None:
    path = INVALID / "period_shorter_than_frequency.yaml"
    run = cli("validate", str(path))
    assert run.code == 1
    assert f"{path}:25: error [period-shorter-than-frequency] queryPeriod 1h" in run.stdout
    assert "1 file(s) checked: 1 error(s), 0 warning(s)" in run.stdout


def test_missing_file_is_an_error(cli: Callable[..., Any], tmp_path: Path) -> None:
    run = cli("validate", str(tmp_path / "nope.yaml"), "--output", "json")
    assert run.code == 1
    assert [f["code"] for f in run.json()["findings"]] == ["no-such-file"]


def _seed_variant(tmp_path: Path, *edits: tuple[str, str], name: str = "rule.yaml") -> Path:
    text = SEED.read_text(encoding="utf-8").replace(
        "5b8c3f1e-7d2a-4e6b-9c41-0f3a8e2d1b77", "0d7c5e8a-1111-4b2c-9d3e-4f5a6b7c8d9e")
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_nrt_rule_needs_no_schedule(tmp_path: Path) -> None:
    path = _seed_variant(
        tmp_path, ("kind: Scheduled", "kind: NRT"),
        ("queryFrequency: 1h\nqueryPeriod: 1h\ntriggerOperator: gt\ntriggerThreshold: 0\n", ""))
    assert validate_paths([path]) == (1, [])


def test_table_without_bundled_schema_is_a_warning(tmp_path: Path) -> None:
    path = _seed_variant(tmp_path, ("DeviceProcessEvents", "DeviceImageLoadEvents"))
    _, findings = validate_paths([path])
    assert [(f.level, f.code, f.line) for f in findings] == [("warning", "no-table-schema", 36)]


def test_hunting_query_is_recognised_by_analytic_rule_id_and_checked_against_the_pack() -> None:
    # A copy of the pack's hunting query outside any hunting/ folder: classified by its
    # analyticRuleId, which names the pack's rule.
    path = DATA / "valid" / "hunting" / "web_server_child_process.yaml"
    assert validate_paths([path]) == (1, [])


def test_hunting_query_must_parse(tmp_path: Path) -> None:
    folder = tmp_path / "hunting"
    folder.mkdir()
    text = (ROOT / "hunting" / "web_server_child_process.yaml").read_text(encoding="utf-8")
    path = folder / "broken.yaml"
    path.write_text(text.replace("| where FileName in~", "| where FileName in~~"),
                    encoding="utf-8")
    _, findings = validate_paths([path])
    assert [(f.code, f.line) for f in findings] == [("kql-syntax", 27)]


@pytest.mark.parametrize(("kql", "unknown"), [
    # Names the query defines (let, extend, project, summarize) are not reported.
    ("let X = dynamic(['a']); DeviceProcessEvents | where FileName in~ (X)", ()),
    ("DeviceProcessEvents | extend E = 1 | where E > 0 | project E, F = E | where F > 0", ()),
    ("DeviceProcessEvents | summarize n = count() by DeviceName | where n > 1", ()),
    ("DeviceProcessEvents | project-rename Host = DeviceName | where Host != ''", ()),
    ("DeviceProcessEvents | extend a = 1, b = a + 1 | where b > 1", ()),
    ("DeviceProcessEvents | summarize count(), max(FileName) by DeviceName"
     " | where count_ > 1 and max_FileName != ''", ()),
    # Kusto is case-sensitive even though DuckDB is not.
    ("DeviceProcessEvents | where devicename == 'x'", ("devicename",)),
    # A column projected away is gone.
    ("DeviceProcessEvents | project DeviceName | where FileName == 'x'", ("FileName",)),
    ("DeviceProcessEvents | summarize count() by DeviceName | where AccountName == 'x'",
     ("AccountName",)),
    ("DeviceProcessEvents | where Nope == 1 | extend Nope = 2", ("Nope",)),
])
def test_unknown_columns_follow_the_query_scope(kql: str, unknown: tuple[str, ...]) -> None:
    facts = query_facts(kql)
    assert facts.tables == ("DeviceProcessEvents",)
    assert facts.unknown == unknown


def test_operators_the_walk_does_not_model_fall_back_to_the_engine() -> None:
    facts = query_facts("DeviceProcessEvents | parse ProcessCommandLine with * '-c ' Rest"
                        " | where Nope == 1")
    assert facts.unknown == ()
    assert facts.engine_error is not None and '"Nope"' in facts.engine_error


def test_output_columns_come_from_running_the_deployed_query() -> None:
    rule, _ = load_rule(SEED)
    assert rule is not None
    assert query_facts(rule.query).output == (
        "Timestamp", "DeviceName", "AccountName", "FileName", "ProcessCommandLine",
        "InitiatingProcessFileName", "InitiatingProcessCommandLine",
        "InitiatingProcessParentFileName", "ExploitEvidence", "SHA256", "FileHashAlgorithm")


@pytest.mark.parametrize(("technique", "tactics"), [
    ("T1190", ("InitialAccess",)),
    ("T1505.003", ("Persistence",)),
    ("T1053.005", ("Execution", "Persistence", "PrivilegeEscalation")),
    ("T1105", ("CommandAndControl",)),
    ("T1218", ("DefenseEvasion",)),
    ("T1210", ("LateralMovement",)),
    ("T9999", None),
])
def test_technique_tactics(technique: str, tactics: tuple[str, ...] | None) -> None:
    assert attack.technique_tactics(technique) == tactics


def test_every_mapped_tactic_is_a_sentinel_tactic() -> None:
    from sentinel_t1190.attack import _techniques

    assert {t for ts in _techniques().values() for t in ts} <= set(attack.TACTICS)


@pytest.mark.parametrize(("edits", "expected"), [
    ([("version: 1.0.0", "version: '1.0'")], [("warning", "bad-version", 100)]),
    ([("kind: Scheduled", "status: Retired\nkind: Scheduled")], [("warning", "bad-status", 101)]),
    ([("  - T1190\n", "  - T1190\n  - T1999\n")], [("warning", "unknown-technique", 32)]),
    ([("description: |\n", "description: |\n" + "  x\n" * 2600)],
     [("error", "description-too-long", 3)]),
    ([("requiredDataConnectors:\n  - connectorId: MicrosoftThreatProtection\n    dataTypes:\n"
       "      - DeviceProcessEvents\n", "")],
     [("error", "missing-field", 97), ("error", "table-not-in-connectors", 32)]),
    ([("customDetails:\n", "customDetails:\n"
       + "".join(f"  Detail{i}: DeviceName\n" for i in range(17)))],
     [("error", "too-many-custom-details", 76)]),
    ([("entityMappings:\n", "entityMappings:\n" + "  - entityType: Host\n    fieldMappings:\n"
       "      - identifier: HostName\n        columnName: DeviceName\n" * 7)],
     [("error", "too-many-entity-mappings", 57)]),
])
def test_more_sentinel_limits(tmp_path: Path, edits: list[tuple[str, str]],
                              expected: list[tuple[str, str, int | None]]) -> None:
    _, findings = validate_paths([_seed_variant(tmp_path, *edits)])
    assert [(f.level, f.code, f.line) for f in findings] == expected
