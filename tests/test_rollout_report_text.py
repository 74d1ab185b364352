"""The rollout report is rewritten after every target from each target's cached text: it must
be byte for byte ``json.dumps(report.to_dict(), indent=2)``, so ``--resume`` reads it as ever."""

from __future__ import annotations

import json
from pathlib import Path

from sentinel_t1190.deploy import Target
from sentinel_t1190.rollout import (
    RolloutReport,
    TargetResult,
    TargetStatus,
    load_report,
    report_text,
    write_report,
)


def _expected(report: RolloutReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


def _targets() -> list[TargetResult]:
    rule = {"id": "5b8c", "name": "Web server → shell \"quoted\"\n", "action": "created",
            "reason": None, "changes": [{"field": "query", "from": None, "to": "a\tb"}]}
    return [
        TargetResult(Target("sub-1", "rg", "ws-é"), TargetStatus.CREATED, rules=(rule,),
                     seconds=1.25, finished_at="2026-11-30T12:00:00Z"),
        TargetResult(Target("sub-2", "rg", "ws-2", "tenant"), TargetStatus.FAILED,
                     error="AuthError: no\nway", error_type="AuthError"),
        TargetResult(Target("sub-3", "rg", "ws-3"), TargetStatus.PENDING),
        TargetResult(Target("sub-4", "rg", "ws-4"), TargetStatus.UPDATED,
                     pruned=({"name": "old", "displayName": "Old", "action": "deleted"},)),
    ]


def test_report_text_is_json_dumps_of_the_report(tmp_path: Path) -> None:
    for targets in ([], _targets()[:1], _targets()):
        for dry_run in (False, True):
            report = RolloutReport(list(targets), dry_run=dry_run, prune=True,
                                   started_at="2026-11-30T11:00:00Z")
            report.throttle_wait_seconds = 0.1234
            assert report_text(report) == _expected(report)
            path = tmp_path / "report.json"
            write_report(report, path)
            assert path.read_text(encoding="utf-8") == _expected(report)
            assert load_report(path).targets == report.targets


def test_a_replaced_target_is_written_anew() -> None:
    report = RolloutReport(_targets())
    report_text(report)  # caches each target's text
    report.targets[2] = TargetResult(report.targets[2].target, TargetStatus.UNCHANGED,
                                     seconds=0.5)
    report.finished_at = "2026-11-30T12:30:00Z"
    assert report_text(report) == _expected(report)
