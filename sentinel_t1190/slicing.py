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
split in two and both halves re-run, down to *min_slice*; below that it is reported as
incomplete. Results are handed on in window order (newest slice first, the order of the
query's ``sort by Timestamp desc``) as soon as every newer slice is done.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from .hunt import Window

DEFAULT_CONCURRENCY = 5
DEFAULT_SLICE = timedelta(days=1)
DEFAULT_MIN_SLICE = timedelta(minutes=1)

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
        self.reports: dict[str, SliceReport] = {}

    def run(self, targets: Sequence[str], slices: Sequence[Window]) -> dict[str, SliceReport]:
        queues: dict[str, list[_Node[T]]] = {t: [_Node(t, w) for w in slices] for t in targets}
        self.reports = {t: SliceReport() for t in targets}
        dead: dict[str, str] = {}
        with cf.ThreadPoolExecutor(max_workers=self._concurrency,
                                   thread_name_prefix="slice") as pool:
            # Submit in round-robin order so every target makes progress.
            for i in range(max((len(q) for q in queues.values()), default=0)):
                for queue in queues.values():
                    if i < len(queue):
                        self._submit(pool, queue[i])
            while any(queues.values()):
                running = [n.future for q in queues.values() for n in q if n.future]
                cf.wait([f for f in running if f is not None], return_when=cf.FIRST_COMPLETED)
                for target, queue in queues.items():
                    self._advance(pool, target, queue, dead)
        return self.reports

    def _submit(self, pool: cf.ThreadPoolExecutor, node: _Node[T]) -> None:
        node.future = pool.submit(self._run, node.target, node.window)
        self.reports[node.target].queries += 1

    def _advance(self, pool: cf.ThreadPoolExecutor, target: str, queue: list[_Node[T]],
                 dead: dict[str, str]) -> None:
        report = self.reports[target]
        # Split every finished slice that was too large, wherever it is in the queue.
        i = 0
        while i < len(queue):
            i += 2 if self._split(pool, target, queue, i, dead) else 1
        # Hand on, in order, everything finished at the front of the queue. (A slice that
        # finished since the loop above is checked for splitting again here.)
        while queue and queue[0].future is not None and queue[0].future.done():
            if self._split(pool, target, queue, 0, dead):
                continue
            node = queue.pop(0)
            assert node.future is not None
            if node.future.cancelled():
                outcome = SliceOutcome[T](SliceStatus.skipped, reason=dead.get(target, ""))
                if dead.get(target):
                    outcome.fatal = True
            else:
                outcome = node.future.result()
            if outcome.status is SliceStatus.too_large:
                outcome = SliceOutcome(SliceStatus.partial, outcome.payload, reason=(
                    f"{outcome.reason}; not split further (minimum slice "
                    f"{self._min_slice})") if target not in dead else outcome.reason)
            if outcome.status is not SliceStatus.complete and report.incomplete is not None:
                report.incomplete.append((node.window, outcome.reason))
            self._deliver(target, node.window, outcome)

    def _split(self, pool: cf.ThreadPoolExecutor, target: str, queue: list[_Node[T]], i: int,
               dead: dict[str, str]) -> bool:
        """Split queue[i] if it finished too large and may still be split; note fatal ends."""
        node = queue[i]
        if node.future is None or not node.future.done() or node.future.cancelled():
            return False
        outcome = node.future.result()
        if (outcome.status is SliceStatus.too_large and target not in dead
                and node.window.end - node.window.start >= 2 * self._min_slice):
            newer, older = split(node.window)
            queue[i:i + 1] = [_Node(target, newer), _Node(target, older)]
            self.reports[target].splits += 1
            for child in queue[i:i + 2]:
                self._submit(pool, child)
            return True
        if outcome.fatal and target not in dead:
            dead[target] = outcome.reason
            for other in queue:
                if other.future is not None:
                    other.future.cancel()
        return False
