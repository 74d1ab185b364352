"""One classifier: the Python labels equal what the rule's KQL computes on the local engine."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import duckdb_kql
import pytest

from sentinel_t1190 import detection
from sentinel_t1190.rules import load_pack

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _variants(name: str, rng: random.Random) -> list[str | None]:
    mixed = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
    return [name, name.upper(), mixed, f"{name} ", f" {name}", f"{name}.bak",
            name.replace(".exe", ""), name.replace(".exe", "_ise.exe"), f"x{name}",
            name.replace(".", ""), None, ""]


def _events(n_random: int = 6000) -> list[tuple[str | None, str | None]]:
    rng = random.Random(7)
    parents = [*list(detection.WEB_SERVER_PARENTS), "explorer.exe", "java", "svchost.exe"]
    children = [*list(detection.SUSPICIOUS_CHILDREN), "conhost.exe", "bash", "powershell_ise.exe"]
    pairs: list[tuple[str | None, str | None]] = [(p, c) for p in parents for c in children]
    parent_pool = [v for p in parents for v in _variants(p, rng)]
    child_pool = [v for c in children for v in _variants(c, rng)]
    pairs += [(rng.choice(parent_pool), rng.choice(child_pool)) for _ in range(n_random)]
    return pairs


def test_kql_and_python_classifier_agree_on_generated_events() -> None:
    events = _events()
    assert len(events) > 5000
    con = duckdb_kql.connect()
    con.execute(
        "CREATE TABLE DeviceProcessEvents (Timestamp TIMESTAMP, DeviceName VARCHAR, "
        "AccountName VARCHAR, FileName VARCHAR, ProcessCommandLine VARCHAR, "
        "InitiatingProcessFileName VARCHAR, InitiatingProcessCommandLine VARCHAR, "
        "InitiatingProcessParentFileName VARCHAR, SHA256 VARCHAR)"
    )
    rows = [((NOW - timedelta(seconds=i + 1)).replace(tzinfo=None), f"host{i}", None, child,
             None, parent, None, None, None) for i, (parent, child) in enumerate(events)]
    con.executemany("INSERT INTO DeviceProcessEvents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    [rule] = [r for r in load_pack().rules if r.id == detection.RULE_ID]
    # Everything inside the 24 h lookback: each event's fate depends on its names only.
    got = {row[0]: row[1] for row in duckdb_kql.kql(
        con, rule.query + "| project DeviceName, ExploitEvidence", query_now=NOW).fetchall()}
    expected = {f"host{i}": detection.classify(p, c) for i, (p, c) in enumerate(events)}
    expected = {k: v for k, v in expected.items() if v is not None}
    assert got == expected
    assert set(got.values()) == set(detection.LABELS)


@pytest.mark.parametrize(("parent", "child", "label"), [
    ("w3wp.exe", "cmd.exe", "Shell Spawned"),
    ("W3WP.EXE", "PowerShell.EXE", "Shell Spawned"),
    ("java.exe", "certutil.exe", "Download/C2 Tool"),
    ("ews.exe", "net1.exe", "Reconnaissance"),
    ("node.exe", "schtasks.exe", "Persistence Attempt"),
    ("php-cgi.exe", "rundll32.exe", "Suspicious Child"),
    ("w3wp.exe", "powershell_ise.exe", None),
    ("w3wp.exe", "cmd.exe ", None),
    ("w3wp.exe.bak", "cmd.exe", None),
    ("java", "bash", None),
    (None, "cmd.exe", None),
    ("w3wp.exe", None, None),
])
def test_classify(parent: str | None, child: str | None, label: str | None) -> None:
    assert detection.classify(parent, child) == label


def test_every_child_has_exactly_one_label_and_arms_only_name_listed_children() -> None:
    armed = [c for arm in detection.EVIDENCE_ARMS for c in arm.children]
    assert len(armed) == len(set(armed))
    assert set(armed) <= set(detection.SUSPICIOUS_CHILDREN)
    fallback = set(detection.SUSPICIOUS_CHILDREN) - set(armed)
    assert fallback == {"rundll32.exe", "regsvr32.exe", "ping.exe", "nslookup.exe"}
