"""docs/cli.md and the README's command table stay in step with the CLI's --help."""

from __future__ import annotations

import importlib.util
import re

from conftest import ROOT
from typer.main import get_command

from sentinel_t1190.cli import app


def _make_cli_docs():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_cli_docs",
                                                  ROOT / "scripts/make_cli_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_generated_from_help() -> None:
    committed = (ROOT / "docs/cli.md").read_text(encoding="utf-8")
    assert committed == _make_cli_docs().render(), "run: python scripts/make_cli_docs.py"


def test_readme_command_table_lists_exactly_the_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z]+)", table, re.M))
    commands = set(get_command(app).list_commands(None))  # type: ignore[attr-defined, arg-type]
    assert documented == commands
