"""Benchmark: a rollout to 200 workspaces, 150 ms per request, --concurrency 16.

Runs the real rollout (api.run_rollout: real SDK clients, retry policy, ARM throttle, shared
connection pool, report written after every workspace) against the loopback fleet server
(tests/fleet_server.py) in its own process, as Azure would be: every request sleeps
``--latency`` seconds and ARM budgets are announced per subscription. The ideal time is
requests x latency / concurrency (perfect overlap, zero client cost); the ratio
elapsed / ideal must stay within 1.5.

    PYTHONPATH=. python benchmarks/bench_rollout.py [--workspaces 200] [--latency 0.15]
                                                    [--concurrency 16]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sentinel_t1190 import api  # noqa: E402
from sentinel_t1190.deploy import Target  # noqa: E402

LIMIT = 1.5


def _subscription(i: int, subscriptions: int) -> str:
    return f"00000000-0000-0000-0000-{i % subscriptions:012d}"


def serve(conn: Connection, workspaces: int, subscriptions: int, latency: float) -> None:
    """The fleet server, in a child process: send its endpoints, serve until told to stop,
    then send how many requests it answered."""
    sys.path.insert(0, str(ROOT))
    from tests.fleet_server import FleetServer

    with tempfile.TemporaryDirectory() as tmp, \
            FleetServer(Path(tmp), latency=latency, arm_budget=(200, 10)) as server:
        for i in range(workspaces):
            server.add_fleet_workspace(_subscription(i, subscriptions), f"rg-{i % 7}",
                                       f"ws-{i:04d}")
        conn.send((server.arm_endpoint, server.logs_endpoint, str(server.ca_path)))
        conn.recv()
        conn.send(len(server.replies))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.150)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--subscriptions", type=int, default=20)
    args = parser.parse_args()

    from sentinel_t1190.azure.clouds import resolve_cloud
    from sentinel_t1190.azure.credentials import default_credential
    from tests.identity import signed_in

    parent, child = multiprocessing.get_context("spawn").Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(child, args.workspaces, args.subscriptions, args.latency),
        daemon=True)
    server.start()
    arm, logs, ca = parent.recv()
    targets = [Target(_subscription(i, args.subscriptions), f"rg-{i % 7}", f"ws-{i:04d}")
               for i in range(args.workspaces)]
    with tempfile.TemporaryDirectory() as tmp, signed_in(Path(tmp) / "identity"):
        started, cpu = time.perf_counter(), time.process_time()
        report = api.run_rollout(
            targets, concurrency=args.concurrency, report_path=Path(tmp) / "report.json",
            arm_endpoint=arm, logs_endpoint=logs,
            credential=default_credential(resolve_cloud()),
            connection_verify=ca, retry_backoff_factor=0.01, retry_backoff_max=0.05)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        report_size = (Path(tmp) / "report.json").stat().st_size
    parent.send("stop")
    requests = parent.recv()
    server.join(10)
    # The server's own CPU (a child process, reaped by join): on a 2-core machine it competes
    # with the client for the same cores.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = children.ru_utime + children.ru_stime

    summary = report.summary()
    ideal = requests * args.latency / args.concurrency
    ratio = elapsed / ideal
    print(f"workspaces={args.workspaces} latency={args.latency * 1000:.0f}ms "
          f"concurrency={args.concurrency}")
    print(f"requests={requests} ({requests / args.workspaces:.1f} per workspace) "
          f"created={summary['created']} failed={summary['failed']} "
          f"throttle_wait={report.throttle_wait_seconds:.2f}s "
          f"client_cpu={cpu:.2f}s ({cpu / args.workspaces * 1000:.0f} ms per workspace)")
    print(f"server_cpu={server_cpu:.2f}s; client and server CPU together "
          f"{(cpu + server_cpu) / elapsed:.2f} of the {os.cpu_count()} cores over the run")
    print(f"elapsed={elapsed:.2f}s ideal={ideal:.2f}s ratio={ratio:.3f} (limit {LIMIT})")
    # Linux reports ru_maxrss in KiB; the server runs in its own process.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"client peak RSS {peak:.0f} MiB ({peak * 1024 / args.workspaces:.0f} KiB per "
          f"workspace); report {report_size / 1024:.0f} KiB; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0 if ratio <= LIMIT and summary["created"] == args.workspaces else 1


if __name__ == "__main__":
    sys.exit(main())
