"""The bundled sample: made by scripts/make_sample.py, byte for byte, and covering the rule."""

from __future__ import annotations

import csv
import importlib.util
import io
import random

from conftest import ROOT

from sentinel_t1190 import detection
from sentinel_t1190.sample import sample_files


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "scripts/make_sample.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_sample_is_what_the_script_makes() -> None:
    script = _script()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=script.COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(script.build(random.Random(1190)))
    [path] = sample_files()
    with open(path, encoding="utf-8", newline="") as handle:
        assert handle.read() == buffer.getvalue(), "run: python scripts/make_sample.py"


def test_sample_holds_every_parent_child_and_the_near_misses() -> None:
    [path] = sample_files()
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    parents = {r["InitiatingProcessFileName"] for r in rows}
    children = {r["FileName"] for r in rows}
    assert set(detection.WEB_SERVER_PARENTS) <= parents
    assert set(detection.SUSPICIOUS_CHILDREN) <= children
    assert {"powershell_ise.exe", "cmd.exe "} <= children
    assert "w3wp.exe.bak" in parents
    labels = {detection.classify(r["InitiatingProcessFileName"], r["FileName"]) for r in rows}
    assert labels - {None} == set(detection.LABELS)
