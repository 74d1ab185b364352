"""The public Python API: the same work as the CLI, for automation and notebooks.

    import sentinel_t1190 as st

    pack = st.load_pack()
    checked, findings = st.validate()
    st.classify("w3wp.exe", "whoami.exe")          # "Reconnaissance"
    [result] = st.hunt_local(["DeviceProcessEvents.csv"], timespan="7d")
    result.to_dict()["summary"]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import detection
from .errors import InputError
from .hunt import HuntResult, Window, resolve_window
from .rules import Finding, Pack, Rule
from .rules import load_pack as _load_pack
from .state import DEFAULT_OVERLAP, HuntState

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")

if TYPE_CHECKING:
    from .livehunt import LiveHuntResult, LiveOptions, LogsQuerier, RowSink
    from .render import OutputFormat


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


def hunt_live(
    workspaces: Sequence[str],
    sink_for: Callable[[Rule], RowSink],
    fmt: OutputFormat,
    *,
    client: LogsQuerier,
    rule_ids: Sequence[str] | None = None,
    timespan: str | None = None,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
    state: HuntState | None = None,
    overlap: str = DEFAULT_OVERLAP,
    options: LiveOptions | None = None,
    request_timespan: Callable[[Window], str | None] | None = None,
    pack: Pack | None = None,
) -> list[LiveHuntResult]:
    """Hunt live workspaces through the Logs Query API, one result per rule.

    Rows go to ``sink_for(rule)`` in *fmt* (ndjson or csv) as the slices finish. With
    *state*, each rule's window starts where its last complete run ended minus *overlap*,
    findings that run reported are not reported again, and the state is updated (in
    memory; :meth:`HuntState.save` writes it) only when every workspace was complete.
    """
    from .livehunt import LiveOptions, hunt_workspaces
    from .timespan import parse_duration

    if not workspaces:
        raise InputError("give at least one --workspace-id")
    for workspace in workspaces:
        if not _GUID.fullmatch(workspace):
            raise InputError(f"--workspace-id {workspace!r} is not a workspace ID (a GUID, "
                             "shown as 'Workspace ID' on the workspace's overview page)")
    overlap_span = parse_duration(overlap)
    clock = now or datetime.now(UTC)
    rules = default_hunt_rules(pack or load_pack(), rule_ids)
    opts = options or LiveOptions()
    if state is not None:
        opts = replace(opts, track_keys=True)
    results = []
    for rule in rules:
        resumed = state.start_for(rule.id, overlap_span) if state else None
        if resumed is not None and (start or timespan):
            raise InputError(f"the state file already holds a run of {rule.id}; its next run "
                             "starts where that one ended, so drop --start/--timespan")
        window = resolve_window(clock, timespan, start, end)
        if resumed is not None:
            if resumed >= window.end:
                raise InputError(f"nothing new to hunt: the last run ended at "
                                 f"{window.to_dict()['end']} or later")
            window = Window(resumed, window.end)
        result = hunt_workspaces(
            rule, list(dict.fromkeys(workspaces)), window, client, sink_for(rule), fmt,
            options=opts, reported=state.reported(rule.id) if state else frozenset(),
            timespan=request_timespan)
        if state is not None:
            if result.complete:
                state.record(rule.id, window.end, overlap_span, result.tally.keys)
            else:
                result.warnings.append("the state file is not advanced: the run was "
                                       "incomplete, so the next run searches this window again")
        results.append(result)
    return results
