"""Benchmark: ``sentinel-t1190 --help`` and every command's ``--help`` against a bare start-up.

Each case is a fresh interpreter (``python -m sentinel_t1190 [COMMAND] --help``), run R times
after one untimed run, alternating with the baselines measured in the same run:
``python -c pass`` (the interpreter) and ``python -c "import typer"`` (the CLI framework).
Prints the median wall and CPU time of each, the cost above ``import typer``, which heavy
libraries each help imported (none expected), and PASS/FAIL against the 0.3 s target.

Byte code is cached the way an installed package has it: the children write and read their
``.pyc`` files under a temporary ``PYTHONPYCACHEPREFIX`` (never in the repository), filled by
the untimed run. ``--no-bytecode`` measures the worst case instead: the package compiled
from source on every start (a copy of it without ``__pycache__``, run with
``PYTHONDONTWRITEBYTECODE``; the standard library's and installed libraries' byte code is
still used).

    python benchmarks/bench_startup.py [--repeat 7] [--commands hunt,deploy] [--enforce]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 0.3
HEAVY = ("azure", "duckdb", "duckdb_kql", "yaml", "rich", "requests", "msal", "orjson")

#: Prints the CLI's command names (in a child, so this process imports nothing of it).
_LIST = ("from typer.main import get_command; from sentinel_t1190.cli import app; "
         "print(' '.join(get_command(app).list_commands(None)))")
#: Runs the CLI in-process, then prints the heavy packages it imported (stderr).
_PROBE = ("import sys, runpy; sys.argv[0] = 'sentinel-t1190'\n"
          "try:\n runpy.run_module('sentinel_t1190', run_name='__main__')\n"
          "except SystemExit: pass\n"
          "import json; sys.stderr.write(json.dumps(sorted({m.split('.')[0] for m in "
          f"sys.modules}} & {set(HEAVY)!r})))")


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child (its own rusage, from wait4)."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each case")
    parser.add_argument("--commands", help="comma-separated commands (default: all)")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="compile the package from source on every start (worst case)")
    parser.add_argument("--enforce", action="store_true",
                        help="exit 1 when a help misses the target")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if args.no_bytecode:  # the installed libraries' and stdlib's .pyc are still read
            # A copy of the package without __pycache__, so none of its byte code is found.
            shutil.copytree(ROOT / "sentinel_t1190", Path(tmp) / "src" / "sentinel_t1190",
                            ignore=shutil.ignore_patterns("__pycache__"))
            env["PYTHONPATH"] = str(Path(tmp) / "src")
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            env.pop("PYTHONPYCACHEPREFIX", None)
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")

        py = sys.executable
        listed = subprocess.run([py, "-c", _LIST], env=env, capture_output=True, text=True,
                                check=True, cwd=tmp).stdout.split()
        commands = args.commands.split(",") if args.commands else listed
        cases: dict[str, list[str]] = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import typer'": [py, "-c", "import typer"],
            "--help": [py, "-m", "sentinel_t1190", "--help"],
            **{f"{c} --help": [py, "-m", "sentinel_t1190", c, "--help"] for c in commands},
        }
        heavy: dict[str, str] = {}
        for name, argv in cases.items():  # untimed: fills the byte-code cache, warms the disk
            _run(argv, env)
            if argv[1] == "-m":
                probe = subprocess.run([py, "-c", _PROBE, *argv[3:]], env=env, cwd=tmp,
                                       capture_output=True, text=True, check=False)
                found = json.loads(probe.stderr.strip().splitlines()[-1])
                heavy[name] = ", ".join(found) or "none"
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeat):  # alternating, so a busy moment hits every case alike
            for name, argv in cases.items():
                wall, cpu = _run(argv, env)
                walls[name].append(wall)
                cpus[name].append(cpu)

    typer_wall = statistics.median(walls["python -c 'import typer'"])
    mode = "no byte code (compiled on every start)" if args.no_bytecode else "byte code cached"
    print(f"{sys.version.split()[0]}, {mode}, {args.repeat} runs each, median; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'case':<28} {'wall s':>7} {'cpu s':>7} {'+typer s':>8} {'max s':>6}  "
          f"{'heavy imports':<14} result")
    failed = []
    for name in cases:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        extra = f"{wall - typer_wall:+8.3f}" if name in heavy else " " * 8
        verdict = ""
        if name in heavy:
            verdict = "PASS" if wall <= LIMIT else "FAIL"
            if verdict == "FAIL":
                failed.append(name)
        print(f"{name:<28} {wall:7.3f} {cpu:7.3f} {extra} {max(walls[name]):6.3f}  "
              f"{heavy.get(name, ''):<14} {verdict}".rstrip())
    worst = max((statistics.median(walls[n]) for n in heavy), default=0.0)
    print(f"target: every --help <= {LIMIT} s (median wall): worst {worst:.3f} s: "
          f"{'FAIL ' + ', '.join(failed) if failed else 'PASS'}")
    return 1 if failed and args.enforce else 0


if __name__ == "__main__":
    sys.exit(main())
