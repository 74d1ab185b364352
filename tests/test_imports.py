"""Start-up cost: help and the offline commands never import the Azure SDK, and help imports
none of the heavy libraries (YAML, DuckDB, rich, the Azure SDK).

Each case runs the CLI in a fresh interpreter (nothing imported by another test can hide an
import) and reports which top-level packages ended up in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

SAMPLE = ROOT / "sentinel_t1190" / "data" / "sample" / "DeviceProcessEvents.csv"
NOW = "2026-01-15T12:00:00Z"

#: Runs the CLI with the given arguments in this interpreter, then writes its exit code and
#: the loaded modules of interest to the file named by the first argument.
_PROBE = """
import json, sys
report, args = sys.argv[1], sys.argv[2:]
from sentinel_t1190.cli import app
try:
    app(args, prog_name="sentinel-t1190")
    code = 0
except SystemExit as done:
    code = done.code
heavy = ("azure", "duckdb", "duckdb_kql", "yaml", "rich", "requests", "msal")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
with open(report, "w") as f:
    json.dump({"code": code, "modules": loaded}, f)
"""


def _run(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    report = tmp_path / "probe.json"
    done = subprocess.run([sys.executable, "-c", _PROBE, str(report), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert report.exists(), done.stderr
    result = json.loads(report.read_text())
    return result["code"], result["modules"]


def _top(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


OFFLINE = {
    "rules": ["rules", "--output", "json", "--out", "rules.json"],
    "validate": ["validate", "--output", "json", "--out", "validate.json"],
    "test": ["test", "--output", "json", "--out", "test.json"],
    "hunt --sample": ["hunt", "--sample", "--output", "json", "--out", "sample.json"],
    "hunt --local": ["hunt", "--local", str(SAMPLE), "--timespan", "7d", "--now", NOW,
                     "--output", "ndjson", "--out", "local.ndjson"],
    "hunt --local, table": ["hunt", "--local", str(SAMPLE), "--now", NOW, "--out", "t.txt"],
    "export arm": ["export", "--format", "arm", "--format", "bicep", "--out", "exported"],
    "export sigma": ["export", "--format", "sigma", "--out", "sigma"],
    "init": ["init", "pack"],
}


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_commands_import_no_azure(tmp_path: Path, name: str) -> None:
    code, modules = _run(tmp_path, *OFFLINE[name])
    assert code == 0, (name, code)
    assert "azure" not in _top(modules), [m for m in modules if m.startswith("azure")][:10]


@pytest.mark.parametrize("args", [["--help"], ["hunt", "--help"], ["deploy", "--help"],
                                  ["rollout", "--help"], ["export", "--help"], ["--version"]],
                         ids=" ".join)
def test_help_imports_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    code, modules = _run(tmp_path, *args)
    assert code == 0
    assert _top(modules) == set(), modules[:10]



def test_public_names_stay_what_they_are(tmp_path: Path) -> None:
    """``st.validate`` is the function before and after a call, though a submodule of the same
    name is imported by it; an unknown name is an AttributeError (``hasattr`` is False)."""
    code = ("import sentinel_t1190 as st\n"
            "first = st.validate\n"
            "st.validate()\n"
            "assert st.validate is first and callable(st.validate), st.validate\n"
            "assert not hasattr(st, 'no_such_name') and not hasattr(st, 'a.b')\n"
            "assert st.alert_rule.API_VERSION and 'classify' in dir(st)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
