"""Benchmark: a rollout to 200 workspaces, 150 ms per request, --concurrency 16.

Runs the real rollout (api.run_rollout: real SDK clients, retry policy, ARM throttle, report
written after every target) against the loopback fleet server (tests/fleet_server.py), which
sleeps ``--latency`` seconds in every request and announces a realistic ARM budget per
subscription. The ideal time is requests x latency / concurrency (perfect overlap, zero
client cost); the ratio elapsed / ideal must stay within 1.5.

    PYTHONPATH=. python benchmarks/bench_rollout.py [--workspaces 200] [--latency 0.15]
                                                    [--concurrency 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sentinel_t1190 import api  # noqa: E402
from sentinel_t1190.deploy import Target  # noqa: E402
from tests.fleet_server import FakeCredential, FleetServer, client_kwargs  # noqa: E402

LIMIT = 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.150)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--subscriptions", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, \
            FleetServer(Path(tmp), latency=args.latency, arm_budget=(200, 10)) as server:
        targets = []
        for i in range(args.workspaces):
            subscription = f"00000000-0000-0000-0000-{i % args.subscriptions:012d}"
            ws = server.add_fleet_workspace(subscription, f"rg-{i % 7}", f"ws-{i:04d}")
            targets.append(Target(ws.subscription_id, ws.resource_group, ws.name))
        started = time.perf_counter()
        report = api.run_rollout(targets, concurrency=args.concurrency,
                             report_path=Path(tmp) / "report.json",
                             arm_endpoint=server.arm_endpoint,
                             logs_endpoint=server.logs_endpoint, credential=FakeCredential(),
                             **client_kwargs(server))
        elapsed = time.perf_counter() - started
        requests = len(server.replies)
    summary = report.summary()
    ideal = requests * args.latency / args.concurrency
    ratio = elapsed / ideal
    print(f"workspaces={args.workspaces} latency={args.latency * 1000:.0f}ms "
          f"concurrency={args.concurrency}")
    print(f"requests={requests} ({requests / args.workspaces:.1f} per workspace) "
          f"created={summary['created']} failed={summary['failed']} "
          f"throttle_wait={report.throttle_wait_seconds:.2f}s")
    print(f"elapsed={elapsed:.2f}s ideal={ideal:.2f}s ratio={ratio:.3f} (limit {LIMIT})")
    ok = ratio <= LIMIT and summary["created"] == args.workspaces
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
