"""Real sign-in for every Azure command (issue 9): the CLI, the real DefaultAzureCredential
and SDK clients, tokens from a fake `az` or a managed-identity endpoint (tests/identity.py),
loopback servers that refuse a token of the wrong tenant or audience.

The matrix: {no tenant, AZURE_TENANT_ID, --tenant-id, per-target tenants, AZURE_SUBSCRIPTION_ID
beside --targets, signed out} x {deploy, status, remove, hunt, rollout, doctor}: the exit code, no
traceback, and the tenant each token was asked in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190.sample import sample_files
from tests.fleet_server import FleetServer
from tests.identity import HOME_TENANT, Identity
from tests.logs_server import LogsServer

TENANT_A = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa"
TENANT_B = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"
SUB_A = "5a5a5a5a-0000-4000-8000-00000000000a"
SUB_B = "5b5b5b5b-0000-4000-8000-00000000000b"
WORKSPACE_ID = "11111111-1111-1111-1111-111111111111"
CLOCK = "2026-01-15T12:00:00Z"
#: Exit codes on a fresh workspace: status finds the pack's rules missing (1, "found").
EXPECTED = {"deploy": 0, "status": 1, "remove": 0, "hunt": 0, "rollout": 0, "doctor": 0}
COMMANDS = list(EXPECTED)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[FleetServer]:
    """Workspace ws-a in TENANT_A's subscription; ws-b in TENANT_B's (each takes only tokens
    of its own tenant)."""
    with FleetServer(tmp_path) as server:
        server.add_workspace(SUB_A, "rg", "ws-a", token_tenant=TENANT_A)
        server.add_workspace(SUB_B, "rg", "ws-b", token_tenant=TENANT_B)
        yield server


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[LogsServer]:
    with LogsServer() as server:
        server.add_csv_workspace(WORKSPACE_ID, sample_files()[0])
        server.tenants[WORKSPACE_ID] = TENANT_A
        yield server


def targets_file(tmp_path: Path, *rows: tuple[str, str, str]) -> Path:
    path = tmp_path / "targets.csv"
    lines = ["subscription_id,resource_group,workspace,tenant_id"]
    lines += [f"{sub},rg,{ws},{tenant}" for sub, ws, tenant in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_command(cli: Callable[..., Any], command: str, fleet: FleetServer, logs: LogsServer,
                tmp_path: Path, *extra: str, env: dict[str, str] | None = None,
                targets: Path | None = None) -> Any:
    """*command* against ws-a (or the Logs workspace for hunt, *targets* for rollout)."""
    env = {**fleet.env, **(env or {})}
    if command == "hunt":
        env = {**env, "SENTINEL_LOGS_ENDPOINT": logs.url, "REQUESTS_CA_BUNDLE": logs.ca_path}
        return cli("hunt", "--workspace-id", WORKSPACE_ID, "--now", CLOCK, "--timespan", "1d",
                   "--output", "json", *extra, env=env)
    if command == "rollout":
        path = targets or targets_file(tmp_path, (SUB_A, "ws-a", ""))
        return cli("rollout", "--targets", str(path), "--report", str(tmp_path / "report.json"),
                   "--output", "json", *extra, env=env)
    where = ["--subscription-id", SUB_A, "--resource-group", "rg", "--workspace", "ws-a"]
    return cli(command, *where, *(["--yes"] if command == "remove" else []),
               "--output", "json", *extra, env=env)


def assert_clean(run: Any, code: int) -> None:
    assert run.code == code, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr


# --- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("how", ["AZURE_TENANT_ID", "--tenant-id"])
def test_the_tenant_asked_for_is_the_tenant_of_every_token(
        cli: Callable[..., Any], identity: Identity, fleet: FleetServer, logs: LogsServer,
        tmp_path: Path, command: str, how: str) -> None:
    identity.guest_of(TENANT_A, TENANT_B)
    if how == "AZURE_TENANT_ID":
        run = run_command(cli, command, fleet, logs, tmp_path, env={"AZURE_TENANT_ID": TENANT_A})
    else:
        run = run_command(cli, command, fleet, logs, tmp_path, "--tenant-id", TENANT_A)
    assert_clean(run, EXPECTED[command])
    assert identity.tenants_asked() == {TENANT_A}
    audience = "https://api.loganalytics.io" if command == "hunt" else "https://management.azure.com"
    assert audience in {r.resource for r in identity.token_requests}


@pytest.mark.parametrize("command", COMMANDS)
def test_without_a_tenant_the_identity_uses_its_own(
        cli: Callable[..., Any], identity: Identity, fleet: FleetServer, logs: LogsServer,
        tmp_path: Path, command: str) -> None:
    identity.guest_of(TENANT_A)
    # The CLI user's home tenant is not TENANT_A: ws-a refuses its tokens (ARM's 401).
    run = run_command(cli, command, fleet, logs, tmp_path)
    assert identity.tenants_asked() == {None}
    if command == "rollout":
        assert_clean(run, 1)  # the target failed; the report says why
        assert "InvalidAuthenticationTokenTenant" in run.json()["targets"][0]["error"]
    elif command == "doctor":
        assert_clean(run, 1)  # signed in, but the workspace check failed: it says why
        [workspace] = [c for c in run.json()["checks"] if c["check"] == "workspace"]
        assert "InvalidAuthenticationTokenTenant" in workspace["detail"]
    else:
        assert_clean(run, 3)
        assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("error: ")
    # Signed in to the right tenant as the CLI default, no tenant needed.
    identity.state["tenant"] = TENANT_A
    identity.guest_of()
    assert_clean(run_command(cli, command, fleet, logs, tmp_path), EXPECTED[command])


@pytest.mark.parametrize("command", COMMANDS)
def test_signed_out_is_exit_3_in_one_line(
        cli: Callable[..., Any], identity: Identity, fleet: FleetServer, logs: LogsServer,
        tmp_path: Path, command: str) -> None:
    identity.log_out()
    run = run_command(cli, command, fleet, logs, tmp_path, env={"AZURE_TENANT_ID": TENANT_A})
    if command == "rollout":
        assert_clean(run, 1)
        assert run.json()["targets"][0]["error_type"] == "AuthError"
        assert "cannot get a token" in run.json()["targets"][0]["error"]
    else:
        assert_clean(run, 3)
        assert run.stdout == ""
        assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: ")
        assert "token" in run.stderr
    assert identity.tenants_asked() == {TENANT_A}
    assert fleet.requests == [] and logs.requests == []


@pytest.mark.parametrize("command", ["rollout", "status"])
def test_targets_in_two_tenants_ask_each_tenant_once(
        cli: Callable[..., Any], identity: Identity, fleet: FleetServer, logs: LogsServer,
        tmp_path: Path, command: str) -> None:
    identity.guest_of(TENANT_A, TENANT_B)
    fleet.add_workspace(SUB_A, "rg", "ws-a2")
    targets = targets_file(tmp_path, (SUB_A, "ws-a", TENANT_A), (SUB_B, "ws-b", TENANT_B),
                           (SUB_A, "ws-a2", TENANT_A))
    if command == "rollout":
        run = run_command(cli, "rollout", fleet, logs, tmp_path, targets=targets)
        assert_clean(run, 0)
        assert run.json()["summary"]["created"] == 3
    else:
        run = cli("status", "--targets", str(targets), "--output", "json", env=fleet.env)
        assert_clean(run, 1)  # nothing deployed yet: every rule missing
        assert len(run.json()["targets"]) == 3
    assert identity.tenants_asked() == {TENANT_A, TENANT_B}
    # One credential (and one token per audience) per tenant, reused across its targets.
    arm = [r for r in identity.token_requests if r.resource == "https://management.azure.com"]
    assert sorted(r.tenant or "" for r in arm) == [TENANT_A, TENANT_B]


@pytest.mark.parametrize("command", ["rollout", "status"])
def test_azure_subscription_id_beside_targets_is_ignored(
        cli: Callable[..., Any], identity: Identity, fleet: FleetServer, tmp_path: Path,
        command: str) -> None:
    identity.guest_of(TENANT_A)
    targets = targets_file(tmp_path, (SUB_A, "ws-a", TENANT_A))
    env = {**fleet.env, "AZURE_SUBSCRIPTION_ID": SUB_B}
    args = ["--targets", str(targets), "--output", "json"]
    if command == "rollout":
        args += ["--report", str(tmp_path / "report.json")]
    run = cli(command, *args, env=env)
    assert_clean(run, 0 if command == "rollout" else 1)
    assert {r.path.split("/")[2] for r in fleet.requests
            if r.path.startswith("/subscriptions/")} == {SUB_A}
    # Typed on the command line, the same subscription contradicts --targets: an error.
    typed = cli(command, *args, "--subscription-id", SUB_B, env=env)
    assert_clean(typed, 2)
    assert typed.stderr.startswith("error: ") and "--targets" in typed.stderr


# --- managed identity --------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_a_managed_identity_signs_in_every_command(
        cli: Callable[..., Any], identity: Identity, fleet: FleetServer, logs: LogsServer,
        tmp_path: Path, command: str) -> None:
    identity.use_managed_identity(tenant=TENANT_A)
    run = run_command(cli, command, fleet, logs, tmp_path, env={"AZURE_TENANT_ID": TENANT_A})
    assert_clean(run, EXPECTED[command])
    assert {r.source for r in identity.token_requests} == {"managed-identity"}


def test_a_managed_identity_of_another_tenant_is_refused_by_the_workspace(
        cli: Callable[..., Any], identity: Identity, fleet: FleetServer, logs: LogsServer,
        tmp_path: Path) -> None:
    identity.use_managed_identity(tenant=HOME_TENANT)
    run = run_command(cli, "deploy", fleet, logs, tmp_path, "--tenant-id", TENANT_A)
    assert_clean(run, 3)
    assert "InvalidAuthenticationTokenTenant" in run.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_a_tenant_that_is_no_tenant_id_is_a_usage_error(
        cli: Callable[..., Any], identity: Identity, fleet: FleetServer, logs: LogsServer,
        tmp_path: Path, command: str) -> None:
    run = run_command(cli, command, fleet, logs, tmp_path, "--tenant-id", "contoso; rm -rf")
    assert_clean(run, 2)
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
    assert "tenant 'contoso; rm -rf' is not a tenant id (a GUID or a domain)" in run.stderr
    assert identity.token_requests == [] and fleet.requests == [] and logs.requests == []
