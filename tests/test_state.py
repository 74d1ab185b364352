"""State files of incremental hunts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190 import api
from sentinel_t1190.errors import InputError
from sentinel_t1190.state import (
    MAX_OVERLAP,
    HuntState,
    finding_keys,
    load_state,
    locked_state,
    parse_overlap,
)
from tests import test_hunt_live
from tests.logs_server import LogsServer
from tests.test_hunt_live import CLOCK, WS1, live

END = datetime(2026, 1, 15, 12, tzinfo=UTC)
#: The loopback Logs API with the sample telemetry in WS1 (test_hunt_live's fixture).
server = test_hunt_live.server


def test_missing_file_is_a_first_run(tmp_path: Path) -> None:
    state = load_state(tmp_path / "none.json")
    assert state.rules == {} and state.start_for("r", timedelta(hours=1)) is None


def test_round_trip_and_pruning(tmp_path: Path) -> None:
    path = tmp_path / "s" / "state.json"
    state = HuntState(path)
    state.record("r", END, timedelta(hours=1), {
        "inside": "2026-01-15T11:30:00.000000Z", "outside": "2026-01-15T10:59:00.000000Z"})
    state.save()
    again = load_state(path)
    assert again.rules["r"].end == END
    assert again.start_for("r", timedelta(hours=1)) == END - timedelta(hours=1)
    assert again.reported("r") == frozenset({"inside"})  # only keys the next overlap can meet
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left
    again.record("r", END + timedelta(minutes=20), timedelta(hours=1), {})
    assert again.reported("r") == frozenset({"inside"})
    again.record("r", END + timedelta(hours=2), timedelta(hours=1), {})
    assert again.reported("r") == frozenset()


@pytest.mark.parametrize("content", [
    "", "{", "[]", '{"version": 2, "rules": {}}',
    '{"version": 1, "rules": {"r": {"end": "2026-01-15T12:00:00Z"}}}',
    '{"version": 1, "rules": {"r": {"end": "x", "overlap": "1h"}}}',
    '{"version": 1, "rules": {"r": {"end": "2026-01-15T12:00:00Z", "overlap": "1h", '
    '"reported": {"k": 5}}}}',
    '{"version": 1, "rules": {"r": {"end": "2026-01-15T12:00:00Z", "overlap": "999999d"}}}',
])
def test_corrupt_files_are_errors_not_resets(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(InputError, match="deliberately"):
        load_state(path)
    assert path.read_text() == content


def test_finding_keys_are_stable_and_workspace_specific() -> None:
    row = ["2026-01-15T11:00:00.000000Z", "web-01", None, 3]
    assert finding_keys("w1", [row]) == finding_keys("w1", [list(row)])
    assert finding_keys("w1", [row]) != finding_keys("w2", [row])
    assert len(set(finding_keys("w1", [row, [*row[:3], 4]]))) == 2
    assert json.dumps(finding_keys("w", [row]))  # plain strings


def test_a_wider_overlap_reaches_back_only_as_far_as_the_keys_kept() -> None:
    state = HuntState(Path("unused.json"))
    state.record("r", END, timedelta(hours=1), {"a": "2026-01-15T11:30:00.000000Z"})
    assert state.overlap_cut("r", timedelta(hours=1)) is None
    assert state.start_for("r", timedelta(minutes=10)) == END - timedelta(minutes=10)
    # a finding at 10:00 may have been reported and forgotten: 10:00 is not re-read
    assert state.start_for("r", timedelta(days=1)) == END - timedelta(hours=1)
    assert "PT1H" in (state.overlap_cut("r", timedelta(days=1)) or "")
    # the run after a widened one: its keys reach back to the old horizon, and grow from there
    state.record("r", END + timedelta(hours=2), timedelta(days=1), {})
    assert state.rules["r"].overlap == timedelta(hours=3)
    assert state.reported("r") == frozenset({"a"})
    state.record("r", END + timedelta(days=2), timedelta(days=1), {})
    assert state.rules["r"].overlap == timedelta(days=1)


@pytest.mark.parametrize("text", ["999999d", "15d", "P30D"])
def test_overlap_is_bounded(text: str) -> None:
    with pytest.raises(InputError, match=f"between 0 and {MAX_OVERLAP.days}d"):
        parse_overlap(text)
    assert parse_overlap("14d") == MAX_OVERLAP and parse_overlap("0h") == timedelta(0)


def test_a_window_ending_near_year_one_does_not_overflow() -> None:
    state = HuntState(Path("unused.json"))
    end = datetime(1, 1, 2, tzinfo=UTC)
    state.record("r", end, MAX_OVERLAP, {})
    assert state.start_for("r", MAX_OVERLAP) == datetime(1, 1, 1, tzinfo=UTC)


def test_a_state_file_in_use_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with locked_state(path) as state:
        assert state.rules == {}
        with pytest.raises(InputError, match="another hunt is running"), locked_state(path):
            pass
    with locked_state(path):  # released when the first run ended
        pass


def _rows(run: Any) -> list[str]:
    assert run.code == 0, run.stderr
    return [json.dumps(json.loads(line), sort_keys=True) for line in run.stdout.splitlines()]


def test_widening_the_overlap_never_reports_a_finding_twice(server: LogsServer, cli: Any,
                                                            tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = _rows(live(server, "--workspace-id", WS1, "--timespan", "5d", "--end",
                       "2026-01-13T12:00:00Z", "--state", str(state), "--overlap", "1h",
                       "--output", "ndjson", cli=cli))
    wider = live(server, "--workspace-id", WS1, "--state", str(state), "--overlap", "3d",
                 "--output", "ndjson", cli=cli)
    second = _rows(wider)
    assert len(first + second) == len(set(first + second)), "a finding was reported twice"
    assert "reaches back further than the findings the state file remembers" in wider.stderr
    # what was searched is exactly the period from the first start to now, gap-free
    whole = api.hunt_local([], sample=True, start="2026-01-08T12:00:00Z", end=CLOCK)[0]
    assert sorted(first + second) == sorted(json.dumps({**r, "WorkspaceId": WS1}, sort_keys=True)
                                            for r in whole.findings)
    assert any('"2026-01-11' in r or '"2026-01-12' in r for r in first), \
        "findings in the widened part of the overlap exist (else the test proves nothing)"


@pytest.mark.parametrize("overlap", ["999999d", "15d"])
def test_an_overlap_too_long_is_a_usage_error(server: LogsServer, cli: Any, tmp_path: Path,
                                              overlap: str) -> None:
    state = tmp_path / "state.json"
    run = live(server, "--workspace-id", WS1, "--timespan", "1d", "--state", str(state),
               "--overlap", overlap, cli=cli)
    assert run.code == 2, run.stderr
    assert run.stderr == f"error: --overlap must be between 0 and 14d, got {overlap!r}\n"
    assert server.queries() == [] and not state.exists()


def test_a_second_run_on_a_state_file_in_use_is_refused(server: LogsServer, cli: Any,
                                                        tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with locked_state(state):  # the first run, still going
        run = live(server, "--workspace-id", WS1, "--timespan", "1d", "--state", str(state),
                   "--output", "ndjson", cli=cli)
    assert run.code == 2 and run.stdout == ""
    assert "another hunt is running with the state file" in run.stderr
    assert server.queries() == [] and not state.exists()
    after = live(server, "--workspace-id", WS1, "--timespan", "1d", "--state", str(state),
                 "--output", "ndjson", cli=cli)
    assert after.code == 0 and state.exists()
