"""Slices: they partition the window, re-split when too large, and run bounded."""

from __future__ import annotations

import itertools
import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from sentinel_t1190.hunt import Window
from sentinel_t1190.slicing import (
    SliceOutcome,
    SliceRunner,
    SliceStatus,
    minimum_queries,
    plan,
    split,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


def window(days: float) -> Window:
    return Window(START, START + timedelta(days=days))


def keeps(w: Window, t: datetime) -> bool:
    """The hunting query's filter: Timestamp > start and Timestamp <= end."""
    return w.start < t <= w.end


def test_plan_is_newest_first_and_covers_the_window() -> None:
    slices = plan(window(2.5), timedelta(days=1))
    assert [(s.start - START, s.end - START) for s in slices] == [
        (timedelta(days=1.5), timedelta(days=2.5)),
        (timedelta(days=0.5), timedelta(days=1.5)),
        (timedelta(0), timedelta(days=0.5)),
    ]
    with pytest.raises(ValueError):
        plan(window(1), timedelta(0))


def test_split_halves_share_one_boundary() -> None:
    newer, older = split(Window(START, START + timedelta(microseconds=3)))
    assert older.start == START and newer.end == START + timedelta(microseconds=3)
    assert older.end == newer.start


def test_any_split_tree_keeps_every_instant_exactly_once() -> None:
    rnd = random.Random(7)
    total = window(3)
    leaves = plan(total, timedelta(hours=7))
    for _ in range(40):  # split random leaves, like re-splits after too-large answers
        i = rnd.randrange(len(leaves))
        leaves[i:i + 1] = list(split(leaves[i]))
    boundaries = [w.end for w in leaves] + [w.start for w in leaves]
    probes = boundaries + [START + timedelta(microseconds=rnd.randrange(3 * 86400 * 10**6))
                           for _ in range(2000)]
    probes += [b + timedelta(microseconds=d) for b in boundaries for d in (-1, 1)]
    for t in probes:
        hits = sum(keeps(w, t) for w in leaves)
        assert hits == (1 if keeps(total, t) else 0), t


def run_outcomes(rows: list[datetime], cap: int, min_slice: timedelta, days: float,
                 slice_size: timedelta, concurrency: int = 3
                 ) -> tuple[list[tuple[Window, list[datetime]]], dict[str, object], int]:
    """A fake 'service': a slice returns its rows, or too_large above *cap*."""
    active, peak, lock = [0], [0], threading.Lock()

    def run(target: str, w: Window) -> SliceOutcome[list[datetime]]:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.002)
        got = sorted((t for t in rows if keeps(w, t)), reverse=True)
        with lock:
            active[0] -= 1
        if len(got) > cap:  # like Kusto: the first *cap* rows of the sorted result
            return SliceOutcome(SliceStatus.too_large, got[:cap], reason="too large",
                                rows=cap, oldest=got[cap - 1])
        return SliceOutcome(SliceStatus.complete, got, rows=len(got))

    delivered: list[tuple[Window, list[datetime]]] = []
    runner: SliceRunner[list[datetime]] = SliceRunner(
        run, lambda t, w, o: delivered.append((w, o.payload or [])),
        concurrency=concurrency, min_slice=min_slice)
    reports = runner.run(["ws"], window(days), slice_size)
    return delivered, dict(reports["ws"].__dict__), peak[0]


def test_resplits_return_every_row_once_in_order_with_bounded_concurrency() -> None:
    rnd = random.Random(3)
    rows = [START + timedelta(seconds=rnd.randrange(30 * 86400)) for _ in range(3000)]
    rows += [START + timedelta(days=d) for d in range(1, 30)]  # rows on slice boundaries
    delivered, report, peak = run_outcomes(rows, cap=200, min_slice=timedelta(minutes=1),
                                           days=30, slice_size=timedelta(days=30))
    got = [t for _, part in delivered for t in part]
    assert got == sorted(rows, reverse=True)  # all, none twice, query order
    assert report["incomplete"] == []
    assert peak <= 3
    print(report["queries"], minimum_queries([len(rows)], 200))
    assert report["queries"] <= 2 * minimum_queries([len(rows)], 200)


def test_too_large_at_the_minimum_slice_is_reported_partial() -> None:
    rows = [START + timedelta(hours=1, microseconds=i) for i in range(50)]
    _delivered, report, _ = run_outcomes(rows, cap=10, min_slice=timedelta(hours=1), days=1,
                                        slice_size=timedelta(days=1))
    incomplete = report["incomplete"]
    assert isinstance(incomplete, list) and len(incomplete) == 1
    assert "not split further" in incomplete[0][1]


def test_a_fatal_failure_stops_that_target_only() -> None:
    calls: dict[str, int] = {"bad": 0, "good": 0}
    lock = threading.Lock()

    def run(target: str, w: Window) -> SliceOutcome[int]:
        with lock:
            calls[target] += 1
        time.sleep(0.01)
        if target == "bad":
            return SliceOutcome(SliceStatus.failed, reason="403", fatal=True)
        return SliceOutcome(SliceStatus.complete, 1)

    out: dict[str, list[tuple[Window, SliceStatus]]] = {"bad": [], "good": []}
    runner: SliceRunner[int] = SliceRunner(
        run, lambda t, w, o: out[t].append((w, o.status)), concurrency=2)
    runner.run(["bad", "good"], window(20), timedelta(days=1))
    assert [status for _, status in out["good"]] == [SliceStatus.complete] * 20
    bad = out["bad"]
    assert {status for _, status in bad} <= {SliceStatus.failed, SliceStatus.skipped}
    # what was not searched is reported, end to end: the whole window, in order
    assert bad[0][0].end == window(20).end and bad[-1][0].start == START
    assert all(a.start == b.end for (a, _), (b, _) in itertools.pairwise(bad))
    assert calls["bad"] < 20  # the rest was never sent
