"""State files of incremental hunts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentinel_t1190.errors import InputError
from sentinel_t1190.state import HuntState, finding_keys, load_state

END = datetime(2026, 1, 15, 12, tzinfo=UTC)


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
