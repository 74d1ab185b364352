"""The Linux web-server rule: rendered from one source, Python and KQL agree, real data caught."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb_kql
import pytest

from sentinel_t1190 import detection, linux_detection
from sentinel_t1190.rules import Rule, load_pack

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OTRF = Path(__file__).resolve().parent / "corpus" / "otrf_log4shell_ubuntu"


def _rule() -> Rule:
    [rule] = [r for r in load_pack().rules if r.id == linux_detection.RULE_ID]
    return rule


def test_committed_queries_are_rendered_from_linux_detection_module() -> None:
    rule = _rule()
    assert rule.query == linux_detection.rule_query(), "run: python scripts/render_pack.py"
    assert rule.hunting is not None and rule.hunting.id == linux_detection.HUNTING_ID
    assert rule.hunting.query == linux_detection.hunting_query(), (
        "run: python scripts/render_pack.py")


def test_labels_are_the_seed_labels_and_every_child_has_one_arm() -> None:
    labels = {arm.label for arm in linux_detection.EVIDENCE_ARMS}
    assert labels | {detection.FALLBACK_LABEL} == set(detection.LABELS)
    armed = [c for arm in linux_detection.EVIDENCE_ARMS for c in arm.children]
    assert len(armed) == len(set(armed))
    assert len(linux_detection.SUSPICIOUS_CHILDREN) == len(set(linux_detection.SUSPICIOUS_CHILDREN))
    # Disjoint from the seed: one event never alerts twice, once per rule.
    assert not {p.lower() for p in linux_detection.WEB_SERVER_PARENTS} & {
        p.lower() for p in detection.WEB_SERVER_PARENTS}


def _variants(name: str, rng: random.Random) -> list[str | None]:
    mixed = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
    return [name, name.upper(), mixed, f"{name} ", f" {name}", f"{name}.bak", f"{name}8.1",
            f"{name}3.11", f"{name}9", f"{name}-config", f"{name}.", f"{name}\n",
            f"{name}.exe", f"x{name}", name[:-1], None, ""]


def _events(n_random: int = 6000) -> list[tuple[str | None, str | None]]:
    rng = random.Random(11)
    parents = [*linux_detection.WEB_SERVER_PARENTS, *linux_detection.VERSIONED_PARENT_FAMILIES,
               "sshd", "cron", "systemd", "java.exe", "w3wp.exe", "bash"]
    children = [*linux_detection.SUSPICIOUS_CHILDREN, "git", "java", "ls", "cmd.exe", "python3"]
    pairs: list[tuple[str | None, str | None]] = [(p, c) for p in parents for c in children]
    parent_pool = [v for p in parents for v in _variants(p, rng)]
    child_pool = [v for c in children for v in _variants(c, rng)]
    pairs += [(rng.choice(parent_pool), rng.choice(child_pool)) for _ in range(n_random)]
    return pairs


def test_kql_and_python_classifier_agree_on_generated_events() -> None:
    events = _events()
    con = duckdb_kql.connect()
    con.execute(
        "CREATE TABLE DeviceProcessEvents (Timestamp TIMESTAMP, DeviceName VARCHAR, "
        "AccountName VARCHAR, FileName VARCHAR, ProcessCommandLine VARCHAR, "
        "InitiatingProcessFileName VARCHAR, InitiatingProcessCommandLine VARCHAR, "
        "InitiatingProcessParentFileName VARCHAR, SHA256 VARCHAR)"
    )
    # All inside the 1 h lookback: each event's fate depends on its names only.
    rows = [((NOW - timedelta(milliseconds=i + 1)).replace(tzinfo=None), f"host{i}", None,
             child, None, parent, None, None, None) for i, (parent, child) in enumerate(events)]
    con.executemany("INSERT INTO DeviceProcessEvents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    got = {row[0]: row[1] for row in duckdb_kql.kql(
        con, _rule().query + "| project DeviceName, ExploitEvidence", query_now=NOW).fetchall()}
    expected = {f"host{i}": linux_detection.classify(p, c) for i, (p, c) in enumerate(events)}
    expected = {k: v for k, v in expected.items() if v is not None}
    assert got == expected
    assert set(got.values()) == set(detection.LABELS)


@pytest.mark.parametrize(("parent", "child", "label"), [
    ("java", "bash", "Shell Spawned"),
    ("php-fpm8.1", "sh", "Shell Spawned"),
    ("PHP-FPM7.4", "dash", "Shell Spawned"),
    ("python3.11", "curl", "Download/C2 Tool"),
    ("tomcat9", "id", "Reconnaissance"),
    ("gunicorn", "crontab", "Persistence Attempt"),
    ("nginx", "chmod", "Suspicious Child"),
    ("node", "zsh", "Shell Spawned"),
    ("python3-config", "sh", None),
    ("php-fpm8.1.bak", "sh", None),
    ("java.exe", "bash", None),
    ("java", "cmd.exe", None),
    ("bash", "whoami", None),
    ("javac", "sh", None),
    (None, "sh", None),
    ("java", None, None),
])
def test_classify(parent: str | None, child: str | None, label: str | None) -> None:
    assert linux_detection.classify(parent, child) == label


def test_otrf_log4shell_ubuntu_shell_is_the_one_finding(cli: Callable) -> None:
    """OTRF Security-Datasets' Log4Shell run on Tomcat/Ubuntu: java -> bash, nothing else."""
    path = OTRF / "DeviceProcessEvents.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(events) == 31
    run = cli("hunt", "--rule", "linux_web_server_child_process", "--local", str(path),
              "--now", "2022-05-11T18:30:00Z", "--timespan", "1h", "-o", "json")
    assert run.code == 0, run.stderr
    [finding] = run.json()["findings"]
    assert finding["InitiatingProcessFileName"] == "java"
    assert finding["FileName"] == "bash"
    assert finding["ProcessCommandLine"].endswith("|{base64,-d}|{bash,-i}")
    assert finding["ExploitEvidence"] == "Shell Spawned"
    # The seed rule (Windows image names) sees nothing in the same data.
    seed = cli("hunt", "--rule", "web_server_child_process", "--local", str(path),
               "--now", "2022-05-11T18:30:00Z", "--timespan", "1h", "-o", "json")
    assert seed.code == 0 and seed.json()["findings"] == []


def test_hunts_check_linux_labels_with_the_linux_classifier() -> None:
    from sentinel_t1190.hunt import check_labels, label_classifier

    classify = label_classifier(_rule())
    assert classify is linux_detection.classify
    row = {"InitiatingProcessFileName": "php-fpm8.1", "FileName": "sh"}
    assert check_labels([{**row, "ExploitEvidence": "Shell Spawned"}], classify) == []
    [warning] = check_labels([{**row, "ExploitEvidence": "Reconnaissance"}], classify)
    assert "'Shell Spawned'" in warning
