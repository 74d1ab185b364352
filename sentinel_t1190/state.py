"""State of incremental (scheduled) hunts: where the last run ended, what it reported.

The file is JSON::

    {"version": 1, "rules": {"<rule id>": {"end": "2026-11-27T10:00:00Z",
                                            "overlap": "PT1H",
                                            "reported": {"<finding key>": "<Timestamp>"}}}}

The next run starts at ``end - overlap`` so events ingested late (after the last run looked)
are still found; findings the last run already reported in that overlap are recognised by
their key and not reported again. Only keys whose Timestamp falls inside the overlap are
kept, so the file stays small; the stored ``overlap`` says how far back before ``end`` the
kept keys reach. A later run with a wider ``--overlap`` cannot tell findings reported before
that apart from new ones, so it re-reads only as far back as the keys reach (with a warning),
and the overlap widens run by run: a finding is never reported twice, whatever
``--overlap`` each run uses. ``--overlap`` is at most :data:`MAX_OVERLAP`.

A file that cannot be read is an error (exit 2) — never silently reset, which would
re-report or skip a whole period. The file is replaced atomically (write a temporary file,
then rename) and only after a complete run. Runs sharing a state file must not overlap (both
would report the same findings): :func:`locked_state` holds an exclusive lock on
``<state>.lock`` for the whole run and refuses a second run while the first holds it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import InputError
from .files import atomic_open
from .timespan import iso_z, parse_duration, parse_instant, to_iso

STATE_VERSION = 1
DEFAULT_OVERLAP = "1h"
#: The longest --overlap: Sentinel's own longest rule lookback (queryPeriod), 14 days.
MAX_OVERLAP = timedelta(days=14)


def parse_overlap(text: str) -> timedelta:
    """``--overlap``: a duration from 0 to :data:`MAX_OVERLAP`."""
    overlap = parse_duration(text)
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise InputError(f"--overlap must be between 0 and {MAX_OVERLAP.days}d, got {text!r}")
    return overlap


@dataclass
class RuleState:
    end: datetime
    #: How far back before *end* :attr:`reported` holds every finding reported so far.
    overlap: timedelta
    #: finding key -> the finding's Timestamp (text), for findings inside the overlap.
    reported: dict[str, str] = field(default_factory=dict)


@dataclass
class HuntState:
    path: Path
    rules: dict[str, RuleState] = field(default_factory=dict)

    def start_for(self, rule_id: str, overlap: timedelta) -> datetime | None:
        """Where the next run of *rule_id* starts, or None on a first run.

        Never before the oldest finding the state remembers: anything reported before that
        could not be recognised and would be reported again (see :meth:`overlap_cut`).
        """
        previous = self.rules.get(rule_id)
        return None if previous is None else _before(previous.end, min(overlap, previous.overlap))

    def overlap_cut(self, rule_id: str, overlap: timedelta) -> str | None:
        """Why the next run re-reads less than *overlap*, or None when it does not."""
        previous = self.rules.get(rule_id)
        if previous is None or overlap <= previous.overlap:
            return None
        return (f"--overlap {to_iso(overlap)} reaches back further than the findings the state "
                f"file remembers for {rule_id} ({to_iso(previous.overlap)} before its last "
                "run's end); this run re-reads only that, so nothing is reported twice, and "
                "the overlap widens with the next runs")

    def reported(self, rule_id: str) -> frozenset[str]:
        previous = self.rules.get(rule_id)
        return frozenset(previous.reported) if previous else frozenset()

    def record(self, rule_id: str, end: datetime, overlap: timedelta,
               keys: Mapping[str, str]) -> None:
        """Remember a completed run: its end and the keys the next overlap can meet again.

        The keys kept reach back *overlap* before *end*, or less when the earlier keys did
        not reach that far (a widened overlap): findings before that are unknown.
        """
        previous = self.rules.get(rule_id)
        since = _before(end, overlap)
        if previous is not None:
            since = max(since, _before(previous.end, previous.overlap))
        horizon = iso_z(since)
        kept = {k: ts for k, ts in (previous.reported.items() if previous else ())
                if ts >= horizon}
        kept.update({k: ts for k, ts in keys.items() if ts >= horizon})
        self.rules[rule_id] = RuleState(end, end - since, kept)

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "rules": {
            rid: {"end": iso_z(s.end), "overlap": to_iso(s.overlap),
                  "reported": dict(sorted(s.reported.items()))}
            for rid, s in sorted(self.rules.items())}}

    def save(self) -> None:
        """Replace the file atomically (a crash leaves the old state, never half of one)."""
        with atomic_open(self.path, f"the state file {self.path}", parents=True) as handle:
            json.dump(self.to_dict(), handle, indent=1)
            handle.write("\n")


def _before(moment: datetime, span: timedelta) -> datetime:
    """*moment* - *span*, or the earliest instant there is (a window ending in year 1)."""
    try:
        return moment - span
    except OverflowError:
        return datetime.min.replace(tzinfo=moment.tzinfo)


def load_state(path: Path) -> HuntState:
    """The state in *path*; an empty state when the file does not exist yet."""
    if not path.exists():
        return HuntState(path)
    where = f"state file {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{where} is unreadable ({exc}); fix or delete it deliberately — "
                         "it is not reset automatically") from exc
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION \
            or not isinstance(data.get("rules"), dict):
        raise InputError(f"{where} is not a sentinel-t1190 state file (version "
                         f"{STATE_VERSION}); fix or delete it deliberately")
    state = HuntState(path)
    for rule_id, entry in data["rules"].items():
        try:
            reported = entry.get("reported", {})
            if not isinstance(reported, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in reported.items()):
                raise InputError("'reported' must map keys to timestamps")
            end, overlap = parse_instant(entry["end"]), parse_duration(entry["overlap"])
            if not timedelta(0) <= overlap <= MAX_OVERLAP:
                raise InputError(f"overlap {entry['overlap']!r} is not 0..{MAX_OVERLAP.days}d")
            state.rules[rule_id] = RuleState(end, overlap, dict(reported))
        except (InputError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: bad entry for rule {rule_id}: {exc}; fix or delete "
                             "it deliberately") from exc
    return state


@contextmanager
def locked_state(path: Path) -> Iterator[HuntState]:
    """The state in *path*, under an exclusive lock on ``<path>.lock`` until the block ends.

    A second run on the same state file while the first holds the lock is refused
    (:class:`InputError`) rather than queued: a scheduled run that finds the previous one still
    going should not pile up behind it. The lock file stays (removing it would race).
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = lock_path.open("a+b")
    except OSError as exc:
        raise InputError(f"cannot lock the state file {path}: {exc}") from exc
    with handle:
        try:
            _lock_exclusively(handle.fileno())
        except OSError as exc:
            raise InputError(f"another hunt is running with the state file {path} (it holds "
                             f"{lock_path}); runs sharing a state file must take turns, so "
                             "this one stops — run it again when the other has finished"
                             ) from exc
        yield load_state(path)


def _lock_exclusively(fd: int) -> None:
    """Lock *fd* without waiting (OSError when someone else holds it); closing unlocks."""
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def finding_keys(workspace: str, rows: Iterable[Sequence[Any]]) -> list[str]:
    """A stable key per finding: a hash of its workspace and every projected value."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
    return [hashlib.blake2b(encode([workspace, *row]).encode(), digest_size=12).hexdigest()
            for row in rows]
