"""Regenerate tests/data/{invalid,valid}: copies of the pack's files, each with one defect.

Run from the repository root: python tests/data/make_cases.py (test lines change if the seed does).
"""

import uuid
from pathlib import Path

seed = Path("analytics/web_server_child_process.yaml").read_text()
SEED_ID = "5b8c3f1e-7d2a-4e6b-9c41-0f3a8e2d1b77"
out = Path("tests/data")


def case(folder, name, *edits, rule_id=None):
    text = seed.replace(
        SEED_ID, rule_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"sentinel-t1190/{folder}/{name}"))
    )
    for old, new in edits:
        assert old in text, (name, old)
        text = text.replace(old, new, 1)
    (out / folder / f"{name}.yaml").write_text(text)


inv = "invalid"
case(inv, "bad_duration", ("queryFrequency: 1h", "queryFrequency: 1x"))
case(inv, "period_shorter_than_frequency", ("queryFrequency: 1h", "queryFrequency: 2h"))
case(
    inv,
    "duration_out_of_range",
    ("queryFrequency: 1h\nqueryPeriod: 1h", "queryFrequency: 1h\nqueryPeriod: 15d"),
)
case(
    inv,
    "frequency_too_short",
    ("queryFrequency: 1h\nqueryPeriod: 1h", "queryFrequency: 30m\nqueryPeriod: 2d"),
)
case(
    inv,
    "unknown_column",
    ("| where FileName in~ (SuspiciousChildren)", "| where ImageFileName in~ (SuspiciousChildren)"),
)
case(inv, "unknown_column_case", ("| where Timestamp > ago(24h)", "| where timestamp > ago(24h)"))
pad = "".join(f"  // padding line {i:04d} " + "x" * 80 + "\n" for i in range(110))
case(inv, "query_too_long", ("  DeviceProcessEvents\n", pad + "  DeviceProcessEvents\n"))
case(inv, "technique_without_tactic", ("  - T1190\n", "  - T1190\n  - T1059.001\n"))
case(
    inv,
    "custom_detail_not_output",
    (
        "  ServerParent: InitiatingProcessParentFileName\n",
        "  ServerParent: InitiatingProcessParentFileName\n  ChildFolder: FolderPath\n",
    ),
)
case(
    inv,
    "entity_column_not_output",
    ("        columnName: DeviceName", "        columnName: DeviceId"),
)
case(
    inv,
    "placeholder_not_output",
    ("spawned {{FileName}} on {{DeviceName}}", "spawned {{FileName}} on {{DeviceId}}"),
)
dup = str(uuid.uuid5(uuid.NAMESPACE_URL, "sentinel-t1190/invalid/duplicate_id"))
case(inv, "duplicate_id_a", rule_id=dup)
case(
    inv,
    "duplicate_id_b",
    ("name: Web server process", "name: Copy of web server process"),
    rule_id=dup,
)
case(inv, "yaml_syntax", ("severity: High\n", "severity: [High\n"))
case(inv, "bad_id", rule_id="web-server-child-process")
case(inv, "bad_severity", ("severity: High", "severity: Critical"))
case(inv, "bad_kind", ("kind: Scheduled", "kind: Fusion"))
case(inv, "bad_trigger_operator", ("triggerOperator: gt", "triggerOperator: '>'"))
case(inv, "bad_trigger_threshold", ("triggerThreshold: 0", "triggerThreshold: 10001"))
case(
    inv,
    "unknown_tactic",
    (
        "  - InitialAccess\nrelevantTechniques",
        "  - InitialAccess\n  - Initial Access\nrelevantTechniques",
    ),
)
case(inv, "bad_technique", ("  - T1190\n", "  - T1190\n  - T190\n"))
case(
    inv,
    "name_too_long",
    (
        "name: Web server process spawned a shell or attacker tool (T1190)",
        "name: " + "Web server process spawned a shell " * 8,
    ),
)
case(inv, "bad_entity_type", ("  - entityType: Host", "  - entityType: Computer"))
case(inv, "bad_identifier", ("      - identifier: HostName", "      - identifier: Hostname"))
case(
    inv,
    "too_many_identifiers",
    (
        "      - identifier: Name\n        columnName: AccountName\n",
        "      - identifier: Name\n        columnName: AccountName\n"
        "      - identifier: NTDomain\n        columnName: AccountName\n"
        "      - identifier: Sid\n        columnName: AccountName\n"
        "      - identifier: UPNSuffix\n        columnName: AccountName\n",
    ),
)
case(
    inv,
    "bad_custom_detail_key",
    ("  ServerProcess: InitiatingProcessFileName", "  Server-Process: InitiatingProcessFileName"),
)
case(
    inv,
    "table_not_in_connectors",
    ("      - DeviceProcessEvents\n# Schedule", "      - DeviceFileEvents\n# Schedule"),
)
case(
    inv,
    "too_many_placeholders",
    (
        "{{InitiatingProcessFileName}} spawned {{FileName}} on {{DeviceName}}",
        "{{InitiatingProcessFileName}} spawned {{FileName}} on {{DeviceName}} as {{AccountName}}",
    ),
)
case(
    "valid",
    "api_spellings",
    ("queryFrequency: 1h\nqueryPeriod: 1h", "queryFrequency: PT1H\nqueryPeriod: PT2H"),
    ("triggerOperator: gt", "triggerOperator: GreaterThan"),
)
case(
    "valid",
    "subtechnique",
    (
        "  - InitialAccess\nrelevantTechniques:\n  - T1190\n",
        "  - InitialAccess\n  - Persistence\nrelevantTechniques:\n  - T1190\n  - T1505.003\n",
    ),
)
case(
    "valid",
    "unsupported_kql",
    (
        "  | sort by Timestamp desc\n",
        "  | sort by Timestamp desc\n  | project-reorder ExploitEvidence\n",
    ),
)
hunt = Path("hunting/web_server_child_process.yaml").read_text()
HUNT_ID = "a3e9d1c4-2f6b-4d8e-b7a5-91c0e4f2d3a8"


def hcase(folder, name, *edits):
    text = hunt.replace(
        HUNT_ID, str(uuid.uuid5(uuid.NAMESPACE_URL, f"sentinel-t1190/{folder}/{name}"))
    )
    for old, new in edits:
        assert old in text, (name, old)
        text = text.replace(old, new, 1)
    Path(out / folder / f"{name}.yaml").write_text(text)


hcase("valid/hunting", "web_server_child_process")
hcase(
    "invalid/hunting",
    "missing_time_placeholder",
    ("let endtime = todatetime('{{EndTimeISO}}');", "let endtime = now();"),
)
hcase(
    "invalid",
    "hunting_unknown_rule",
    (
        "analyticRuleId: 5b8c3f1e-7d2a-4e6b-9c41-0f3a8e2d1b77",
        "analyticRuleId: 00000000-7d2a-4e6b-9c41-0f3a8e2d1b77",
    ),
)
