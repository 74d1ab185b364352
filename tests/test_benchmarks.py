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
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^ratio \d+\.\d\d <= 1\.5: (PASS|FAIL)$", result.stdout, re.M)
    assert re.search(r"^hunt peak RSS \d+ MiB <= 1024 MiB: (PASS|FAIL)$", result.stdout, re.M)
    counts = re.search(r"^findings sql (\d+) hunt (\d+): EQUAL$", result.stdout, re.M)
    assert counts and counts[1] == counts[2]
    # The generated file is cached under --data, keyed by rows and format.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "DeviceProcessEvents-g1-2000.parquet", "work"]
    assert [p.name for p in work.iterdir()] == ["timed.json"]
