"""The shipped pipeline examples stay valid YAML and run the hunt the way the docs say."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sentinel_t1190.cli import app

PIPELINES = Path(__file__).resolve().parent.parent / "infra" / "pipelines"


def scripts(node: Any) -> list[str]:
    """Every shell script in a workflow/pipeline document."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("run", "script", "inlineScript") and isinstance(value, str):
                found.append(value)
            else:
                found.extend(scripts(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(scripts(item))
    return found


def hunt_command(path: Path) -> str:
    document = yaml.safe_load(path.read_text())
    commands = [s for s in scripts(document) if "sentinel-t1190 hunt" in s]
    assert len(commands) == 1, commands
    return commands[0].replace("\\\n", " ")


@pytest.mark.parametrize("name", ["github-actions.yml", "azure-pipelines.yml"])
def test_pipeline_runs_an_incremental_ndjson_hunt(name: str) -> None:
    command = hunt_command(PIPELINES / name)
    for option in ("--workspace-id", "--state", "--fail-on-findings", "--out"):
        assert option in command
    assert re.search(r"--output ndjson\b", command)
    # every option it passes exists on the real command
    hunt = next(c for c in app.registered_commands if c.name == "hunt")
    import typer.main

    params = typer.main.get_command_from_info(
        hunt, pretty_exceptions_short=True, rich_markup_mode=None).params
    known = {opt for p in params for opt in p.opts}
    used = set(re.findall(r"(?<!\S)(--[a-z-]+)", command))
    assert used <= known, used - known


def test_github_workflow_uses_oidc_a_schedule_and_keeps_state() -> None:
    document = yaml.safe_load((PIPELINES / "github-actions.yml").read_text())
    triggers = document[True] if True in document else document["on"]  # YAML 1.1: on -> True
    assert triggers["schedule"][0]["cron"]
    assert document["permissions"]["id-token"] == "write"
    steps = document["jobs"]["hunt"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    login = next(s for s in steps if s.get("uses", "").startswith("azure/login@"))
    assert "client-secret" not in login["with"] and "creds" not in login["with"]
    assert any(u.startswith("actions/cache/restore@") for u in uses)
    assert any(u.startswith("actions/cache/save@") for u in uses)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"


def test_azure_pipeline_schedule_and_state_artifact() -> None:
    document = yaml.safe_load((PIPELINES / "azure-pipelines.yml").read_text())
    assert document["schedules"][0]["cron"]
    tasks = [s.get("task", "") for s in document["steps"]]
    assert "DownloadPipelineArtifact@2" in tasks and "AzureCLI@2" in tasks
    assert tasks.count("PublishPipelineArtifact@1") == 2
