"""Help as people use it: -h, an example in every command's help that runs as written,
metavars without Python types, and shell completion that installs and answers."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from typer.main import get_command

from sentinel_t1190.cli import app
from sentinel_t1190.cli.examples import EXAMPLES

COMMANDS = sorted(get_command(app).list_commands(None))  # type: ignore[attr-defined, arg-type]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_examples_and_h(cli: Callable[..., Any], command: str) -> None:
    short = cli(command, "-h")
    assert short.code == 0, short.stderr
    assert short.stdout == cli(command, "--help").stdout
    examples = [line.strip() for line in short.stdout.split("Examples:\n", 1)[1].splitlines()]
    assert examples and all(line.startswith("sentinel-t1190 ") for line in examples)
    assert any(re.search(rf"(^|&& )sentinel-t1190 {command}( |$)", line) for line in examples)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_shows_no_python_types(cli: Callable[..., Any], command: str | None) -> None:
    text = cli(*([command] if command else []), "--help").stdout
    leaks = re.findall(r"<(?:list\[|path|dir|file|str|int|text|bool)[^>]*>", text, re.I)
    assert leaks == []


def _offline_examples() -> list[str]:
    """Examples that need neither Azure nor a file the user brings (targets.csv, a git repo)."""
    azure_or_yours = ("$", "--defender", "targets.csv", "rollout.json", "origin/main",
                      "--local DeviceProcessEvents.csv")
    return [line for lines in EXAMPLES.values() for line in lines
            if not any(word in line for word in azure_or_yours)]


@pytest.mark.parametrize("example", _offline_examples())
def test_offline_examples_run_as_written(cli: Callable[..., Any], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, example: str) -> None:
    monkeypatch.chdir(tmp_path)
    for step in example.split(" && "):
        words = shlex.split(step)
        assert words[0] == "sentinel-t1190"
        run = cli(*words[1:])
        assert run.code == 0, (step, run.stdout[-2000:], run.stderr)


def test_install_completion_from_bash_then_complete(tmp_path: Path) -> None:
    """The real thing: bash runs --install-completion, sources what it wrote, and completes."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    entry = tmp_path / "bin" / "sentinel-t1190"
    entry.parent.mkdir()
    entry.write_text(f"#!{sys.executable}\nfrom sentinel_t1190.cli import main\nmain()\n")
    entry.chmod(0o755)
    env = {"HOME": str(tmp_path), "PATH": f"{entry.parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "SHELL": bash}
    script = ("set -e; sentinel-t1190 --install-completion; source ~/.bashrc; "
              "COMP_WORDS=(sentinel-t1190 dep); COMP_CWORD=1; "
              "_sentinel_t1190_completion sentinel-t1190; echo \"${COMPREPLY[@]}\"; "
              "COMP_WORDS=(sentinel-t1190 export --format ar); COMP_CWORD=3; "
              "_sentinel_t1190_completion sentinel-t1190; echo \"${COMPREPLY[@]}\"")
    done = subprocess.run([bash, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "bash completion installed in" in done.stdout
    assert done.stdout.splitlines()[-2:] == ["deploy", "arm"]
    assert (tmp_path / ".bash_completions" / "sentinel-t1190.sh").is_file()


@pytest.mark.parametrize(("shell", "env"), [
    ("zsh", {"_TYPER_COMPLETE_ARGS": "sentinel-t1190 rollo"}),
    ("fish", {"_TYPER_COMPLETE_ARGS": "sentinel-t1190 rollo",
              "_TYPER_COMPLETE_FISH_ACTION": "get-args"}),
    ("powershell", {"_TYPER_COMPLETE_ARGS": "sentinel-t1190 rollo",
                    "_TYPER_COMPLETE_WORD_TO_COMPLETE": "rollo"}),
])
def test_zsh_fish_and_powershell_complete_commands(cli: Callable[..., Any], shell: str,
                                                   env: dict[str, str]) -> None:
    run = cli(env={"_SENTINEL_T1190_COMPLETE": f"complete_{shell}", **env})
    assert run.code == 0, run.stderr
    assert "rollout" in run.stdout and "deploy" not in run.stdout
