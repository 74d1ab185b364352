"""The benchmark script runs end to end on a small file (the real run is 5M rows by hand)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_smoke(tmp_path: Path) -> None:
    # Every output goes under tmp_path: a test never writes to /dev/null or a system folder.
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_hunt_local.py"),
         "--rows", "2000", "--repeat", "1", "--data", str(tmp_path), "--work", str(work)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    for rate in ("0.4", "5.0"):
        for output, base in (("ndjson", "sql"), ("json", "sql"), ("csv", "sql"),
                             ("table", "hunt-ndjson")):
            assert re.search(rf"^ +{rate} +{output} +\d+ +{base} .* (PASS|FAIL)$",
                             result.stdout, re.M), (rate, output)
    assert re.search(r"^targets: .*: (PASS|FAIL)$", result.stdout, re.M)
    counts = re.search(r"^findings \(NDJSON lines\) 0\.4%: sql (\d+) hunt (\d+), "
                       r"5\.0%: sql (\d+) hunt (\d+): EQUAL$", result.stdout, re.M)
    assert counts and counts[1] == counts[2] and counts[3] == counts[4]
    assert int(counts[3]) > int(counts[1])
    # The generated files are cached under --data, keyed by rows, match rate and format.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "DeviceProcessEvents-g1-2000-m500.parquet", "DeviceProcessEvents-g1-2000.parquet", "work"]
    assert list(work.iterdir()) == []  # each run's output deleted after it


def test_startup_benchmark_smoke(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_startup.py"), "--repeat", "1",
         "--commands", "hunt,export"],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for case in ("--help", "hunt --help", "export --help"):
        # Help imports none of the heavy libraries (tests/test_imports.py holds that too).
        assert re.search(rf"^{re.escape(case)} +[\d.]+ +[\d.]+ +[+-][\d.]+ +[\d.]+  none +"
                         r"(PASS|FAIL)$", result.stdout, re.M), (case, result.stdout)
    assert re.search(r"^python -c pass +[\d.]+", result.stdout, re.M)
    assert re.search(r"^target: every --help <= 0.3 s .*: (PASS|FAIL.*)$", result.stdout, re.M)
    assert list(tmp_path.iterdir()) == []  # the byte-code cache went to a temporary folder
