"""State of incremental (scheduled) hunts: where the last run ended, what it reported.

The file is JSON::

    {"version": 1, "rules": {"<rule id>": {"end": "2026-11-27T10:00:00Z",
                                            "overlap": "PT1H",
                                            "reported": {"<finding key>": "<Timestamp>"}}}}

The next run starts at ``end - overlap`` so events ingested late (after the last run looked)
are still found; findings the last run already reported in that overlap are recognised by
their key and not reported again. Only keys whose Timestamp falls inside the next overlap are
kept, so the file stays small. A file that cannot be read is an error (exit 2) — never
silently reset, which would re-report or skip a whole period. The file is replaced
atomically (write a temporary file, then rename) and only after a complete run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import InputError
from .files import atomic_open
from .timespan import iso_z, parse_duration, parse_instant, to_iso

STATE_VERSION = 1
DEFAULT_OVERLAP = "1h"


@dataclass
class RuleState:
    end: datetime
    overlap: timedelta
    #: finding key -> the finding's Timestamp (text), for findings inside the overlap.
    reported: dict[str, str] = field(default_factory=dict)


@dataclass
class HuntState:
    path: Path
    rules: dict[str, RuleState] = field(default_factory=dict)

    def start_for(self, rule_id: str, overlap: timedelta) -> datetime | None:
        """Where the next run of *rule_id* starts, or None on a first run."""
        previous = self.rules.get(rule_id)
        return None if previous is None else previous.end - overlap

    def reported(self, rule_id: str) -> frozenset[str]:
        previous = self.rules.get(rule_id)
        return frozenset(previous.reported) if previous else frozenset()

    def record(self, rule_id: str, end: datetime, overlap: timedelta,
               keys: Mapping[str, str]) -> None:
        """Remember a completed run: its end and the keys the next overlap can meet again."""
        horizon = iso_z(end - overlap)
        previous = self.rules.get(rule_id)
        kept = {k: ts for k, ts in (previous.reported.items() if previous else ())
                if ts > horizon}
        kept.update({k: ts for k, ts in keys.items() if ts > horizon})
        self.rules[rule_id] = RuleState(end, overlap, kept)

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
            state.rules[rule_id] = RuleState(parse_instant(entry["end"]),
                                             parse_duration(entry["overlap"]), dict(reported))
        except (InputError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: bad entry for rule {rule_id}: {exc}; fix or delete "
                             "it deliberately") from exc
    return state


def finding_keys(workspace: str, rows: Iterable[Sequence[Any]]) -> list[str]:
    """A stable key per finding: a hash of its workspace and every projected value."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
    return [hashlib.blake2b(encode([workspace, *row]).encode(), digest_size=12).hexdigest()
            for row in rows]
