"""Write docs/cli.md from the CLI's own --help (tests/test_cli_docs.py fails when it drifts).

    python scripts/make_cli_docs.py
"""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command
from typer.testing import CliRunner

from sentinel_t1190.cli import app

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def render() -> str:
    runner = CliRunner()
    group = get_command(app)
    parts = ["# Command-line reference\n",
             "Generated from `--help` by `scripts/make_cli_docs.py`; do not edit by hand.\n"]
    for name in [None, *group.list_commands(None)]:  # type: ignore[attr-defined, arg-type]
        args = [name, "--help"] if name else ["--help"]
        text = runner.invoke(app, args, terminal_width=100, prog_name="sentinel-t1190").stdout
        parts.append(f"## `sentinel-t1190{' ' + name if name else ''}`\n\n```text\n"
                     f"{text.rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
