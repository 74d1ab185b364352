"""`doctor` through the CLI, the real DefaultAzureCredential (fake `az` / managed-identity
endpoint, tests/identity.py) and the real SDK clients against the loopback ARM + Logs server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190.doctor import WRITE_RULES, allowed
from tests.azure_server import READER, AzureServer, Workspace, fail, iter_bearer_tokens
from tests.identity import HOME_TENANT, MI_OID, USER_OID, Identity

TENANT = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa"
PACK_TABLES = ["CommonSecurityLog", "DeviceFileEvents", "DeviceNetworkEvents",
               "DeviceProcessEvents", "W3CIISLog"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AzureServer]:
    with AzureServer(tmp_path) as azure:
        yield azure


@pytest.fixture
def ws(server: AzureServer) -> Workspace:
    return server.add_workspace()


@pytest.fixture
def doctor(cli: Callable[..., Any], server: AzureServer, identity: Identity
           ) -> Callable[..., Any]:
    def run(*args: str, workspace: Workspace | None = None, env: dict[str, str] | None = None
            ) -> Any:
        where = [] if workspace is None else [
            "--subscription-id", workspace.subscription_id, "--resource-group",
            workspace.resource_group, "--workspace", workspace.name]
        return cli("doctor", *where, *args, env={**server.env, **(env or {})})

    return run


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["status"] for c in doc["checks"]}


def test_signed_in_it_shows_the_credential_tenant_and_object_id_never_the_token(
        doctor: Any, server: AzureServer, identity: Identity) -> None:
    run = doctor()
    assert run.code == 0, run.stderr
    assert "AzureCliCredential" in run.stdout
    assert HOME_TENANT in run.stdout and USER_OID in run.stdout
    assert "login.microsoftonline.com" in run.stdout and server.arm_endpoint in run.stdout
    assert "eyJ" not in run.stdout + run.stderr  # no token, not even its header
    doc = doctor("--output", "json").json()
    assert doc["identity"] == {"credential": "AzureCliCredential", "tenant_id": HOME_TENANT,
                               "object_id": USER_OID, "name": "analyst@contoso.com",
                               "tenant_asked": None}
    assert doc["cloud"]["arm_endpoint"] == server.arm_endpoint
    assert doc["workspace"] is None and statuses(doc) == {"sign-in": "ok"}


def test_a_reachable_workspace_passes_every_check_and_shows_the_tenant(
        doctor: Any, server: AzureServer, ws: Workspace, identity: Identity) -> None:
    identity.guest_of(TENANT)
    server.token_tenants[ws.subscription_id] = TENANT
    run = doctor("--tenant-id", TENANT, workspace=ws)
    assert run.code == 0, run.stdout + run.stderr
    assert TENANT in run.stdout and "failed" not in run.stdout
    doc = doctor("--output", "json", workspace=ws, env={"AZURE_TENANT_ID": TENANT}).json()
    assert doc["identity"]["tenant_id"] == TENANT == doc["identity"]["tenant_asked"]
    assert doc["workspace"]["customer_id"] == ws.customer_id
    assert statuses(doc) == {
        "sign-in": "ok", "workspace": "ok", "sentinel": "ok", "read rules": "ok",
        "write rules": "ok", "query": "ok", **{f"table {t}": "ok" for t in PACK_TABLES}}
    assert identity.tenants_asked() == {TENANT}
    permissions = server.calls("GET", "/providers/Microsoft.Authorization/permissions")
    assert [r.api_version for r in permissions] == ["2022-04-01", "2022-04-01"]
    output = run.stdout + run.stderr
    assert not any(token in output for token in iter_bearer_tokens(server))


def test_signed_out_is_exit_3_in_one_line(doctor: Any, ws: Workspace, identity: Identity
                                          ) -> None:
    identity.log_out()
    for run in (doctor(), doctor(workspace=ws)):
        assert run.code == 3
        assert run.stdout == ""
        assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: cannot get a token")


def test_a_reader_cannot_write_rules_and_is_told_the_role(
        doctor: Any, ws: Workspace) -> None:
    ws.permissions = [READER]
    run = doctor("--output", "json", workspace=ws)
    assert run.code == 1
    [write] = [c for c in run.json()["checks"] if c["check"] == "write rules"]
    assert write["status"] == "failed"
    assert "Microsoft Sentinel Contributor" in write["hint"]
    assert statuses(run.json())["read rules"] == "ok"


def test_403_names_the_role_each_check_needs(doctor: Any, server: AzureServer,
                                              ws: Workspace) -> None:
    denied = "does not have authorization to perform action"
    server.inject(fail(403, times=-1, method="GET", contains="/alertRules",
                       code="AuthorizationFailed", message=denied))
    server.inject(fail(403, times=-1, method="POST", contains="/query",
                       code="InsufficientAccessError", message=denied))
    doc = doctor("--output", "json", workspace=ws).json()
    checks = {c["check"]: c for c in doc["checks"]}
    assert checks["read rules"]["status"] == "failed"
    assert "Microsoft Sentinel Reader" in checks["read rules"]["hint"]
    assert checks["query"]["status"] == "failed"
    assert "Log Analytics Reader" in checks["query"]["hint"]
    assert checks["write rules"]["status"] == "ok"
    assert not any(name.startswith("table ") for name in checks)  # not queried past a 403


def test_missing_tables_and_sentinel_are_failed_checks(doctor: Any, server: AzureServer,
                                                       identity: Identity) -> None:
    ws = server.add_workspace(sentinel=False, tables={"DeviceProcessEvents": {
        "Timestamp": "datetime"}})
    doc = doctor("--output", "json", workspace=ws).json()
    checks = statuses(doc)
    assert checks["sentinel"] == "failed"
    assert checks["table DeviceProcessEvents"] == "ok"
    assert checks["table W3CIISLog"] == "failed"
    assert not doc["ok"]


def test_an_unknown_workspace_skips_the_rest(doctor: Any, server: AzureServer) -> None:
    run = doctor("--output", "json", "--subscription-id", "d0cfe6b2-9ac0-4464-9919-dccaee2e48c0",
                 "-g", "rg", "-w", "nowhere")
    assert run.code == 1
    checks = statuses(run.json())
    assert checks["workspace"] == "failed"
    assert {checks[c] for c in ("sentinel", "read rules", "write rules", "query")} == {
        "skipped"}


def test_azure_subscription_id_alone_does_not_ask_for_a_workspace(doctor: Any) -> None:
    run = doctor("--output", "json", env={"AZURE_SUBSCRIPTION_ID": TENANT})
    assert run.code == 0, run.stderr
    assert statuses(run.json()) == {"sign-in": "ok"}
    typed = doctor("--subscription-id", TENANT)  # typed, it asks for the rest of the target
    assert typed.code == 2 and "--resource-group" in typed.stderr


def test_a_managed_identity_is_named_and_cannot_change_tenant(
        doctor: Any, identity: Identity) -> None:
    identity.use_managed_identity()
    doc = doctor("--output", "json").json()
    assert doc["identity"]["credential"] == "ManagedIdentityCredential"
    assert doc["identity"]["object_id"] == MI_OID
    run = doctor("--output", "json", "--tenant-id", TENANT)
    assert run.code == 1
    [tenant] = [c for c in run.json()["checks"] if c["check"] == "tenant"]
    assert tenant["status"] == "failed" and HOME_TENANT in tenant["detail"]


@pytest.mark.parametrize(("permissions", "expected"), [
    ([{"actions": ["*"], "notActions": []}], True),  # Owner / Contributor
    ([{"actions": ["microsoft.securityinsights/*"], "notActions": []}], True),  # any case
    ([{"actions": ["*/read"], "notActions": []}], False),  # Reader
    ([{"actions": ["Microsoft.SecurityInsights/*"],
       "notActions": ["Microsoft.SecurityInsights/alertRules/*"]}], False),
    # A notAction removes only from its own role, not from another one.
    ([{"actions": ["*/read"], "notActions": []},
      {"actions": ["Microsoft.SecurityInsights/alertRules/write"],
       "notActions": ["Microsoft.SecurityInsights/ConfidentialWatchlists/*"]}], True),
    ([{"actions": ["Microsoft.SecurityInsights/alertRules/writeX"]}], False),
    ([{"actions": "Microsoft.SecurityInsights/*"}], False),  # malformed: no list
    ([], False),
])
def test_allowed_evaluates_actions_and_not_actions_per_role(
        permissions: list[dict[str, Any]], expected: bool) -> None:
    assert allowed(WRITE_RULES, permissions) is expected
