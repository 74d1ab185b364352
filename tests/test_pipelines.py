"""The shipped pipeline examples stay valid YAML and run the hunt the way the docs say."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from sentinel_t1190.cli import app
from tests.identity import HOME_TENANT, Identity

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


# --- the hunt step, run as the pipeline runs it ------------------------------------------------

WORKSPACES = ("11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222")
TENANT = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa"


def hunt_step(path: Path) -> dict[str, Any]:
    """The step whose script runs `sentinel-t1190 hunt` (its script and env)."""
    document = yaml.safe_load(path.read_text())
    steps = document["steps"] if "steps" in document else document["jobs"]["hunt"]["steps"]
    [step] = [s for s in steps if any("sentinel-t1190 hunt" in x for x in scripts(s))]
    return step


def recent_telemetry(server: Any, workspace: str) -> None:
    """The sample telemetry moved to end about now (the pipelines hunt the last 24 h)."""
    from sentinel_t1190.sample import sample_clock, sample_files

    shift = int((datetime.now(UTC) - sample_clock()).total_seconds()) - 600
    moved = f"CAST(Timestamp AS TIMESTAMP) + INTERVAL ({shift}) SECOND"
    server.add_workspace(workspace, (
        f"SELECT * REPLACE ({moved} AS Timestamp), {moved} + INTERVAL 5 MINUTE AS TimeGenerated "
        f"FROM read_csv('{sample_files()[0]}', header = true, all_varchar = true)"))


@pytest.mark.parametrize(("name", "variables"), [
    ("github-actions.yml", {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": "app-id"}),
    ("azure-pipelines.yml", {}),
])
def test_the_hunt_step_runs_with_the_environment_the_pipeline_sets(
        name: str, variables: dict[str, str], tmp_path: Path, identity: Identity) -> None:
    """Its script, with the pipeline's variables filled in and the environment its step sets,
    in bash: signed in through the Azure CLI session (a fake `az`), hunting the loopback Logs
    API. Findings exit 1 (--fail-on-findings), written as NDJSON; the state file is saved."""
    from tests.logs_server import LogsServer

    identity.guest_of(TENANT)
    step = hunt_step(PIPELINES / name)
    values = {**variables, "SENTINEL_WORKSPACE_IDS": " ".join(WORKSPACES),
              "stateDir": str(tmp_path / "state"),
              "Build.ArtifactStagingDirectory": str(tmp_path / "staging")}

    def fill(text: str) -> str:  # ${{ vars.NAME }} (GitHub) and $(Name) (Azure DevOps)
        text = re.sub(r"\$\{\{\s*vars\.(\w+)\s*\}\}", lambda m: values[m[1]], text)
        return re.sub(r"\$\(([\w.]+)\)", lambda m: values[m[1]], text)

    [script] = scripts(step)
    bin_dir = tmp_path / "bin"  # the installed entry point (`pip install .`)
    bin_dir.mkdir()
    (bin_dir / "sentinel-t1190").write_text(
        f"#!{sys.executable}\nfrom sentinel_t1190.cli import main\nmain()\n")
    (bin_dir / "sentinel-t1190").chmod(0o755)
    with LogsServer() as server:
        for workspace in WORKSPACES:
            recent_telemetry(server, workspace)
            server.tenants[workspace] = TENANT if variables else HOME_TENANT
        env = {**os.environ, **{k: fill(str(v)) for k, v in (step.get("env") or {}).items()},
               "PATH": f"{os.environ['PATH']}{os.pathsep}{bin_dir}",
               "SENTINEL_LOGS_ENDPOINT": server.url, "REQUESTS_CA_BUNDLE": server.ca_path,
               "PYTHONPATH": str(PIPELINES.parent.parent)}
        run = subprocess.run(["bash", "-c", fill(script)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300, check=False)
        queried = {seen.workspace for seen in server.requests}
    assert run.returncode == 1, run.stderr  # findings, as --fail-on-findings asks
    assert "Traceback" not in run.stderr
    out = next(tmp_path.glob("**/findings.ndjson"))
    findings = [json.loads(line) for line in out.read_text().splitlines()]
    assert findings and {f["WorkspaceId"] for f in findings} == set(WORKSPACES)
    assert next(tmp_path.glob("**/state.json")).exists()
    assert queried == set(WORKSPACES)
    assert identity.tenants_asked() == {variables.get("AZURE_TENANT_ID")}
    assert {r.resource for r in identity.token_requests} == {"https://api.loganalytics.io"}
