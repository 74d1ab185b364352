"""Time slicing for live hunts (pure: no Azure, no I/O).

A window (start, end] is cut into half-open slices (s0, s1], (s1, s2], ... (sn-1, sn] with
s0 = start and sn = end. Why no row can be returned twice, or lost, at a boundary:

* the hunting query keeps a row when ``start < Timestamp <= end`` (hunt.Window);
* consecutive slices share their boundary value exactly (the same ``datetime``, formatted
  by the same function), so a row with ``Timestamp == s1`` satisfies ``<= s1`` for the
  first slice and fails ``> s1`` for the second: exactly one slice keeps it;
* splitting (a, b] at m gives (a, m] and (m, b], again disjoint with union (a, b];
  by induction any tree of splits partitions the window. Rows are therefore never
  deduplicated: a duplicate would be a bug, and tests/test_slicing.py checks the property.

Slices run on a thread pool bounded by *concurrency* (the Logs API allows 5 concurrent
queries per identity). A slice whose result was too large (row cap, size cap, timeout) is
split and the parts re-run, down to *min_slice*; below that it is reported as incomplete.
Results are handed on in window order (newest slice first, the order of the query's
``sort by Timestamp desc``) as soon as every newer slice is done.

Sizing adapts, so the number of queries stays near the minimum (rows / row cap): slices are
planned lazily, one when a worker is free; a too-large answer tells the row cap (how many
rows came back) and how much time those rows covered, a complete one the row density; the
next slices, and the parts of a split, are sized to hold about :data:`FILL` of the cap.
Hints only choose *where* to cut: any cut points partition the window, so a wrong estimate
costs a query, never a row. Without hints (a timeout), a slice is halved.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from .hunt import Window

DEFAULT_CONCURRENCY = 5
DEFAULT_SLICE = timedelta(days=1)
DEFAULT_MIN_SLICE = timedelta(minutes=1)
#: Planned slices aim at this fraction of the row cap (room for uneven density).
FILL = 0.8
#: A too-large slice is cut into at most this many parts at once.
MAX_PARTS = 64

T = TypeVar("T")


class SliceStatus(StrEnum):
    complete = "complete"
    #: Too large for one query (row or size cap, server timeout): split and re-run.
    too_large = "too_large"
    #: Some data is missing for another reason (kept, but the hunt is incomplete).
    partial = "partial"
    #: The query failed; nothing of this slice is kept.
    failed = "failed"
    #: Not run because the workspace already failed for good (auth, missing workspace...).
    skipped = "skipped"


@dataclass
class SliceOutcome(Generic[T]):
    status: SliceStatus
    payload: T | None = None
    reason: str = ""
    #: A failure that makes every other slice of the same target pointless (403, 404, 400).
    fatal: bool = False
    #: The exception class of a failure, so an all-failed run exits with the right code.
    error: type[Exception] | None = None
    #: Sizing hints: rows the answer held, and the oldest time among them.
    rows: int = 0
    oldest: datetime | None = None


def plan(window: Window, slice_size: timedelta) -> list[Window]:
    """*window* cut into slices of at most *slice_size*, newest first."""
    if slice_size <= timedelta(0):
        raise ValueError("slice size must be positive")
    slices: list[Window] = []
    end = window.end
    while end > window.start:
        start = max(window.start, end - slice_size)
        slices.append(Window(start, end))
        end = start
    return slices


def split(window: Window) -> tuple[Window, Window]:
    """(a, b] as ((m, b], (a, m]) — newest half first; m is a whole microsecond."""
    middle = window.start + (window.end - window.start) // 2
    return Window(middle, window.end), Window(window.start, middle)


def minimum_queries(total_rows_per_slice: Sequence[int], row_cap: int) -> int:
    """Queries a perfect planner would need: each holds at most *row_cap* rows."""
    return max(1, -(-sum(total_rows_per_slice) // row_cap))


@dataclass
class SliceReport:
    """What a run did: queries sent, splits made, and windows left incomplete."""

    queries: int = 0
    splits: int = 0
    incomplete: list[tuple[Window, str]] | None = None

    def __post_init__(self) -> None:
        if self.incomplete is None:
            self.incomplete = []


@dataclass
class _Node(Generic[T]):
    target: str
    window: Window
    future: cf.Future[SliceOutcome[T]] | None = None
    #: None until its answer was used for sizing; then whether it gave a density hint.
    learned: bool | None = None


@dataclass
class _Target(Generic[T]):
    name: str
    window: Window
    #: The part of the window not planned yet is (window.start, next_end].
    next_end: datetime
    size: timedelta
    queue: list[_Node[T]]
    cap: int = 0
    dead: str = ""


class SliceRunner(Generic[T]):
    """Run ``run(target, window)`` over slices of several targets (workspaces) at once.

    One pool serves every target, so *concurrency* bounds the whole run (it is a limit per
    identity, and all targets share the identity). Each target's outcomes reach
    ``deliver(target, window, outcome)`` in window order, from the calling thread.
    """

    def __init__(self, run: Callable[[str, Window], SliceOutcome[T]],
                 deliver: Callable[[str, Window, SliceOutcome[T]], None], *,
                 concurrency: int = DEFAULT_CONCURRENCY,
                 min_slice: timedelta = DEFAULT_MIN_SLICE) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._run = run
        self._deliver = deliver
        self._concurrency = concurrency
        self._min_slice = min_slice
        self._max_slice = min_slice
        self.reports: dict[str, SliceReport] = {}

    def run(self, targets: Sequence[str], window: Window,
            slice_size: timedelta = DEFAULT_SLICE) -> dict[str, SliceReport]:
        if slice_size <= timedelta(0):
            raise ValueError("slice size must be positive")
        self._max_slice = max(slice_size, self._min_slice)
        state = [_Target[T](t, window, window.end, self._max_slice, []) for t in targets]
        self.reports = {t: SliceReport() for t in targets}
        with cf.ThreadPoolExecutor(max_workers=self._concurrency,
                                   thread_name_prefix="slice") as pool:
            turn = 0
            while True:
                # Plan and submit new slices, round-robin over targets, while workers idle.
                waiting = [n.future for t in state for n in t.queue
                           if n.future is not None and not n.future.done()]
                open_targets = [t for t in state if t.next_end > t.window.start and not t.dead]
                while len(waiting) < self._concurrency and open_targets:
                    target = open_targets[turn % len(open_targets)]
                    turn += 1
                    waiting.append(self._plan_next(pool, target))
                    open_targets = [t for t in state
                                    if t.next_end > t.window.start and not t.dead]
                if not waiting and not any(t.queue for t in state):
                    break
                if waiting:
                    cf.wait(waiting, return_when=cf.FIRST_COMPLETED)
                for target in state:
                    self._advance(pool, target)
        return self.reports

    def _plan_next(self, pool: cf.ThreadPoolExecutor,
                   target: _Target[T]) -> cf.Future[SliceOutcome[T]]:
        end = target.next_end
        start = max(target.window.start, end - target.size)
        if start - target.window.start < self._min_slice:
            start = target.window.start  # no sliver left behind
        node = _Node[T](target.name, Window(start, end))
        target.queue.append(node)
        target.next_end = start
        return self._submit(pool, node)

    def _submit(self, pool: cf.ThreadPoolExecutor,
                node: _Node[T]) -> cf.Future[SliceOutcome[T]]:
        node.future = pool.submit(self._run, node.target, node.window)
        self.reports[node.target].queries += 1
        return node.future

    def _clamp(self, size: timedelta) -> timedelta:
        return max(self._min_slice, min(self._max_slice, size))

    def _learn(self, target: _Target[T], window: Window, outcome: SliceOutcome[T]) -> bool:
        """Update the target's slice size from an answer; True when it gave a density."""
        span = window.end - window.start
        if (outcome.status is SliceStatus.too_large and outcome.rows
                and outcome.oldest is not None and window.start < outcome.oldest < window.end):
            target.cap = max(target.cap, outcome.rows)
            target.size = self._clamp((window.end - outcome.oldest) * FILL)
            return True
        if outcome.status is SliceStatus.complete and target.cap:
            if outcome.rows:
                target.size = self._clamp(span * (FILL * target.cap / outcome.rows))
            else:
                target.size = self._clamp(max(target.size, span) * 2)
        return False

    def _advance(self, pool: cf.ThreadPoolExecutor, target: _Target[T]) -> None:
        queue, report = target.queue, self.reports[target.name]
        # Split every finished slice that was too large, wherever it is in the queue.
        i = 0
        while i < len(queue):
            i += self._split(pool, target, i) or 1
        # Hand on, in order, everything finished at the front of the queue. (A slice that
        # finished since the loop above is checked for splitting again here.)
        while queue and queue[0].future is not None and queue[0].future.done():
            if self._split(pool, target, 0):
                continue
            node = queue.pop(0)
            assert node.future is not None
            if node.future.cancelled():
                outcome = SliceOutcome[T](SliceStatus.skipped, reason=target.dead,
                                          fatal=bool(target.dead))
            else:
                outcome = node.future.result()
            if outcome.status is SliceStatus.too_large:
                outcome = SliceOutcome(SliceStatus.partial, outcome.payload, reason=(
                    f"{outcome.reason}; not split further (minimum slice "
                    f"{self._min_slice})") if not target.dead else outcome.reason)
            if outcome.status is not SliceStatus.complete and report.incomplete is not None:
                report.incomplete.append((node.window, outcome.reason))
            self._deliver(target.name, node.window, outcome)

    def _split(self, pool: cf.ThreadPoolExecutor, target: _Target[T], i: int) -> int:
        """Split queue[i] if it finished too large and may still be split (returns the
        number of parts, 0 if not split); learn sizes; note fatal ends."""
        node = target.queue[i]
        if node.future is None or not node.future.done() or node.future.cancelled():
            return 0
        outcome = node.future.result()
        if node.learned is None:
            node.learned = self._learn(target, node.window, outcome)
        span = node.window.end - node.window.start
        if (outcome.status is SliceStatus.too_large and not target.dead
                and span >= 2 * self._min_slice):
            parts = cut(node.window, target.size if node.learned else span / 2,
                        self._min_slice)
            target.queue[i:i + 1] = [_Node[T](target.name, w) for w in parts]
            self.reports[target.name].splits += 1
            for child in target.queue[i:i + len(parts)]:
                self._submit(pool, child)
            return len(parts)
        if outcome.fatal and not target.dead:
            target.dead = outcome.reason or "failed"
            for other in target.queue:
                if other.future is not None:
                    other.future.cancel()
            if target.next_end > target.window.start:  # the unplanned rest: skipped too
                rest = _Node[T](target.name, Window(target.window.start, target.next_end),
                                cf.Future())
                assert rest.future is not None
                rest.future.cancel()
                target.queue.append(rest)
                target.next_end = target.window.start
        return 0


def cut(window: Window, size: timedelta, min_slice: timedelta) -> list[Window]:
    """*window* in parts of about *size* (at least 2, at most MAX_PARTS), newest first."""
    span = window.end - window.start
    count = max(2, min(MAX_PARTS, -(-span // max(size, min_slice)), span // min_slice))
    step = span / count
    bounds = [window.end - step * k for k in range(count)] + [window.start]
    return [Window(lo, hi) for hi, lo in itertools.pairwise(bounds) if hi > lo]
