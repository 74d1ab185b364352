"""Slowing down before ARM throttles: x-ms-ratelimit-remaining-subscription-* headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel_t1190.azure.clouds import resolve_cloud
from sentinel_t1190.azure.throttle import ArmThrottle, Bucket
from sentinel_t1190.deploy import Target
from sentinel_t1190.rollout import ArmClientFactory, rollout
from sentinel_t1190.rules import load_pack
from tests.fleet_server import FleetServer, client_kwargs
from tests.identity import Identity

ROOT = Path(__file__).resolve().parent.parent
SUB = "00000000-0000-0000-0000-000000000001"
OTHER = "00000000-0000-0000-0000-000000000002"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_waits_only_when_the_subscriptions_budget_is_low() -> None:
    clock = Clock()
    throttle = ArmThrottle(clock=clock, sleep=clock.sleep)
    throttle.before(SUB, "PUT")  # nothing known yet: no wait
    throttle.after(SUB, "PUT", {"x-ms-ratelimit-remaining-subscription-writes": "5"})
    throttle.before(OTHER, "PUT")  # another subscription is not held up
    throttle.before(SUB, "GET")  # reads have their own bucket
    assert clock.slept == []
    throttle.before(SUB, "PUT")  # 5 left < floor 20: wait for (20 - 5 + 1) / 10 per second
    assert clock.slept == [pytest.approx(1.6)]
    assert throttle.waited == pytest.approx(1.6)
    throttle.after(SUB, "DELETE", {"x-ms-ratelimit-remaining-subscription-deletes": "199"})
    throttle.before(SUB, "DELETE")
    assert len(clock.slept) == 1


def test_each_request_spends_from_the_estimate_until_the_next_header() -> None:
    clock = Clock()
    throttle = ArmThrottle({"reads": Bucket(10, 1, 3)}, clock=clock, sleep=clock.sleep)
    throttle.after(SUB, "GET", {"x-ms-ratelimit-remaining-subscription-reads": "5"})
    throttle.before(SUB, "GET")
    throttle.before(SUB, "GET")
    assert clock.slept == []  # 5 -> 4 -> 3
    throttle.before(SUB, "GET")  # 3 - 1 spent would go below the floor... 3 >= 3: allowed
    throttle.before(SUB, "GET")  # 2 < 3: wait (3 - 2 + 1) / 1
    assert clock.slept == [pytest.approx(2.0)]
    throttle.after(SUB, "GET", {"x-ms-ratelimit-remaining-subscription-reads": "not a number"})
    throttle.after(SUB, "GET", {})


def _run(tmp_path: Path, floor: float) -> tuple[int, float, dict[str, int]]:
    tmp_path.mkdir()
    with FleetServer(tmp_path, arm_budget=(12, 6)) as server:
        workspaces = [server.add_fleet_workspace(SUB, "rg", f"ws-{i:02d}") for i in range(8)]
        cloud = resolve_cloud("AzureCloud", arm_endpoint=server.arm_endpoint,
                              logs_endpoint=server.logs_endpoint)
        bucket = Bucket(12, 6, floor)
        throttle = ArmThrottle({"reads": bucket, "writes": bucket, "deletes": bucket})
        clients = ArmClientFactory(cloud, throttle=throttle, **client_kwargs(server))
        targets = [Target(w.subscription_id, w.resource_group, w.name) for w in workspaces]
        report = rollout(targets, load_pack(ROOT).rules, clients, concurrency=8,
                         throttle=throttle)
        return server.count(status=429), report.throttle_wait_seconds, report.summary()


def test_a_fleet_in_one_subscription_slows_down_instead_of_being_throttled(
        tmp_path: Path, identity: Identity) -> None:
    throttled, waited, summary = _run(tmp_path / "careful", floor=3)
    assert summary["created"] == 8 and summary["failed"] == 0
    assert waited > 0
    assert throttled == 0
    # The same run without the floor hits ARM's 429s (the server is strict enough).
    reckless, _, _ = _run(tmp_path / "reckless", floor=-1000)
    assert reckless > 0
