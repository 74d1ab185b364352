from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sentinel_t1190.cli import app
from tests.identity import Identity

ROOT = Path(__file__).resolve().parent.parent


class Run:
    def __init__(self, result: Any) -> None:
        self.code: int = result.exit_code
        self.stdout: str = result.stdout
        self.stderr: str = result.stderr
        self.exception = result.exception

    def json(self) -> Any:
        return json.loads(self.stdout)


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis keeps its caches (./.hypothesis, written while tests are collected) in a
    temporary folder of this run instead, removed at the end: nothing lands in the repo."""
    from hypothesis.configuration import set_hypothesis_home_dir

    folder = tempfile.mkdtemp(prefix="sentinel-t1190-hypothesis-")
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    set_hypothesis_home_dir(folder)
    # Tables written to a pipe are PIPE_WIDTH wide unless COLUMNS says otherwise: a terminal's
    # exported COLUMNS must not change what the tests see.
    os.environ.pop("COLUMNS", None)


@pytest.fixture
def cli() -> Callable[..., Run]:
    """Run the CLI in-process; returns exit code, stdout and stderr separately."""

    def run(*args: str, env: dict[str, str] | None = None) -> Run:
        result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=True)
        return Run(result)

    return run


@pytest.fixture
def identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Identity]:
    """A clean Azure environment (no real AZURE_*/IDENTITY_* variables) signed in through a
    fake `az` on PATH; see tests/identity.py for managed identity and signing out."""
    signed_in = Identity(tmp_path / "identity", monkeypatch)
    yield signed_in
    signed_in.close()


def table_column(text: str, header: str) -> str:
    """The text under *header* in the first table of *text* that has that header.

    Cells folded over several lines are joined, rows one after another, and whitespace is
    dropped (wrapping eats spaces): enough to check what a table shows of a value without
    depending on column widths. Compare with :func:`squashed`. Findings tables (one line per
    row, no box): see :func:`table_cells`.
    """
    lines = text.splitlines()
    boxed = next(((i, cells.index(header)) for i, cells in
                  enumerate([part.strip() for part in line.split("┃")] for line in lines)
                  if header in cells), None)
    if boxed is None:
        return squashed("".join(table_cells(text, header)))
    start, index = boxed
    body = []
    for line in lines[start + 1:]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            body.append(line.split("│")[index])
    return squashed("".join(body))


def table_cells(text: str, header: str) -> list[str]:
    """The cells under *header* in the first findings table of *text* with that header, one
    per row, as shown (a cut cell ends with "…"). Such a table has a line of headers, a rule
    of "─", then one line per row; columns are found at their headers' positions on screen."""
    import re

    from rich.cells import cell_len

    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines[:-1])
              if re.fullmatch("─+", lines[i + 1]) and header in re.split(r"  +", line.strip()))
    spans = [m.span() for m in re.finditer(r"\S+(?: \S+)*", lines[at])]
    starts = [a for a, _ in spans]
    column = [lines[at][a:b] for a, b in spans].index(header)
    begin = starts[column]
    end = starts[column + 1] if column + 1 < len(starts) else None
    cells = []
    for line in lines[at + 2:]:
        if not line.strip():
            break
        shown, width = [], 0
        for ch in line:  # slice by screen columns: wide characters take two
            if width >= begin and (end is None or width < end):
                shown.append(ch)
            width += cell_len(ch)
        cells.append("".join(shown).strip())
    return cells


def squashed(text: str) -> str:
    """*text* without whitespace."""
    return "".join(text.split())


# Property-based tests: the same examples on every run (derandomized), a few hundred each at
# most, no example database (nothing written outside tmp_path), no per-example deadline on a
# shared CI machine.
# (Only tests/test_properties.py imports Hypothesis itself: a venv made before it joined the
# `test` extra still runs every other test.)
try:
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                              max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("ci")


def assert_schema(document: Any, kind: str) -> None:
    """*document* is valid against the shipped JSON Schema of *kind* (output_schemas/)."""
    import jsonschema

    from sentinel_t1190.output_schemas import schema

    jsonschema.Draft202012Validator(schema(kind)).validate(document)
