from __future__ import annotations

import json
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
