"""The public Python API: the same work as the CLI, for automation and notebooks.

    import sentinel_t1190 as st

    pack = st.load_pack()
    checked, findings = st.validate()
    st.classify("w3wp.exe", "whoami.exe")          # "Reconnaissance"
    [result] = st.hunt_local(["DeviceProcessEvents.csv"], timespan="7d")
    result.to_dict()["summary"]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import detection
from .hunt import HuntResult, resolve_window
from .rules import Finding, Pack, Rule
from .rules import load_pack as _load_pack


def load_pack(root: Path | None = None) -> Pack:
    """The rule pack: ``analytics/`` and ``hunting/`` under *root* (default: bundled)."""
    return _load_pack(root)


def validate(paths: Iterable[Path] | None = None) -> tuple[int, list[Finding]]:
    """Validate rule files (default: the pack); return (files checked, findings)."""
    from .validate import validate_paths

    return validate_paths(paths)


def classify(parent: str | None, child: str | None) -> str | None:
    """The ExploitEvidence label the T1190 rule gives this parent/child pair, or None."""
    return detection.classify(parent, child)


def default_hunt_rules(pack: Pack, rule_ids: Sequence[str] | None) -> tuple[Rule, ...]:
    """``--rule`` choices, or the source document's rule when none are given."""
    return pack.select(rule_ids or [detection.RULE_ID])


def hunt_local(
    files: Sequence[str],
    *,
    rule_ids: Sequence[str] | None = None,
    timespan: str | None = None,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
    sample: bool = False,
    pack: Pack | None = None,
) -> list[HuntResult]:
    """Hunt local telemetry files with the local engine, one result per rule.

    *now* pins the clock (default: the real time, or the sample's own clock with *sample*).
    """
    from .hunt import hunt_local as _hunt_local
    from .sample import sample_clock, sample_files

    if sample:
        files = sample_files()
        now = now or sample_clock()
    window = resolve_window(now or datetime.now(UTC), timespan, start, end)
    rules = default_hunt_rules(pack or load_pack(), rule_ids)
    source = {"kind": "sample", "files": list(files)} if sample else None
    return [_hunt_local(rule, files, window, source=source) for rule in rules]


def test_rules(rule_ids: Sequence[str] | None = None, *, pack: Pack | None = None
               ) -> dict[str, Any]:
    """Run the fixture cases of the chosen rules (default: the whole pack); the ``test`` JSON."""
    from .ruletest import run_rules, summary

    rules = (pack or load_pack()).select(rule_ids)
    return summary(run_rules(rules))
