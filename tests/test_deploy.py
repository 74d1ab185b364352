"""deploy / status / remove end to end: the CLI, the real Azure SDK clients, a loopback
HTTPS server answering like ARM and the Logs API (tests/azure_server.py), a fake credential."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure_server import AzureServer, Workspace, fail, iter_bearer_tokens

from sentinel_t1190 import alert_rule
from sentinel_t1190.azure import credentials
from sentinel_t1190.compile import deployed_query
from sentinel_t1190.rules import Rule, load_pack
from sentinel_t1190.schema import known_tables

ROOT = Path(__file__).resolve().parent.parent
SEED_ID = "5b8c3f1e-7d2a-4e6b-9c41-0f3a8e2d1b77"
RULES = f"/providers/Microsoft.SecurityInsights/alertRules/{SEED_ID}"
#: Shaped like a JWT on purpose: if it ever reaches the output, the redaction failed.
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJmYWtlIjoidGVzdCJ9.ZmFrZS1zaWduYXR1cmU"


class FakeCredential:
    """Hands out a dummy token and remembers the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(TOKEN, int(time.time()) + 3600)


def seed() -> Rule:
    (rule,) = [r for r in load_pack(ROOT).rules if r.id == SEED_ID]
    return rule


def dpe_columns(*without: str) -> dict[str, str]:
    columns = dict(known_tables()["DeviceProcessEvents"].columns)
    return {c: t for c, t in columns.items() if c not in without}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AzureServer]:
    with AzureServer(tmp_path) as azure:
        yield azure


@pytest.fixture
def ws(server: AzureServer) -> Workspace:
    return server.add_workspace(tables={"DeviceProcessEvents": dpe_columns()})


@pytest.fixture
def credential(monkeypatch: pytest.MonkeyPatch) -> FakeCredential:
    fake = FakeCredential()
    monkeypatch.setattr(credentials, "default_credential", lambda cloud, tenant=None: fake)
    return fake


@pytest.fixture
def az(cli: Callable[..., Any], server: AzureServer, ws: Workspace,
       credential: FakeCredential) -> Callable[..., Any]:
    """Run an Azure command against the test server's workspace."""

    def run(command: str, *args: str, workspace: Workspace | None = None) -> Any:
        target = workspace or ws
        return cli(command, "--subscription-id", target.subscription_id, "--resource-group",
                   target.resource_group, "--workspace", target.name, *args, env=server.env)

    return run


def rule_puts(server: AzureServer) -> list[Any]:
    return server.calls("PUT", RULES)


# --- acceptance ---------------------------------------------------------------------------------


def test_deploy_sends_the_whole_scheduled_rule(az: Any, server: AzureServer, ws: Workspace,
                                               credential: FakeCredential) -> None:
    run = az("deploy", "--output", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["workspace"]["workspace"] == ws.name
    assert doc["workspace"]["customer_id"] == ws.customer_id
    assert [(r["id"], r["action"], r["changes"]) for r in doc["rules"]] == [
        (SEED_ID, "created", [])]

    (put,) = rule_puts(server)
    assert put.api_version == alert_rule.API_VERSION
    assert put.body["kind"] == "Scheduled"
    props = put.body["properties"]
    rule = seed()
    assert props["query"] == deployed_query(rule)
    assert (props["queryFrequency"], props["queryPeriod"]) == ("PT1H", "PT1H")
    assert props["severity"] == "High"
    assert props["tactics"] == ["InitialAccess"]
    assert props["techniques"] == ["T1190"]
    assert props["triggerOperator"] == "GreaterThan"
    assert props["enabled"] is True
    assert props["entityMappings"] == rule.data["entityMappings"]
    assert [m["entityType"] for m in props["entityMappings"]] == [
        "Host", "Account", "Process", "FileHash"]
    assert props["customDetails"] == dict(rule.data["customDetails"])
    # Pre-flight went first, and the write was read back.
    paths = [(r.method, r.path.rsplit("/", 2)[-2:]) for r in server.requests]
    assert paths[0] == ("GET", ["workspaces", ws.name])
    assert ("GET", ["onboardingStates", "default"]) in paths
    assert server.calls("POST", f"/v1/workspaces/{ws.customer_id}/query")
    assert paths[-1] == ("GET", ["alertRules", SEED_ID])
    assert ws.rules[SEED_ID]["properties"]["techniques"] == ["T1190"]
    # ARM scope for ARM, Logs scope for the getschema query: never one for the other.
    assert ("https://management.azure.com/.default",) in credential.scopes
    assert ("https://api.loganalytics.io/.default",) in credential.scopes


def test_second_deploy_is_unchanged_and_sends_no_put(az: Any, server: AzureServer) -> None:
    assert az("deploy").code == 0
    run = az("deploy", "--output", "json")
    assert run.code == 0
    assert [r["action"] for r in run.json()["rules"]] == ["unchanged"]
    assert len(rule_puts(server)) == 1


def test_dry_run_writes_nothing(az: Any, server: AzureServer, ws: Workspace) -> None:
    run = az("deploy", "--dry-run", "--output", "json")
    assert [r["action"] for r in run.json()["rules"]] == ["would-create"]
    assert server.writes == []
    assert az("deploy").code == 0
    ws.edit_rule(SEED_ID, severity="Low")
    run = az("deploy", "--dry-run", "--output", "json")
    (rule,) = run.json()["rules"]
    assert rule["action"] == "would-update"
    assert rule["changes"] == [{"field": "severity", "from": "Low", "to": "High"}]
    assert len(rule_puts(server)) == 1


def test_update_after_an_edit_answers_200_and_lists_the_fields(
        az: Any, server: AzureServer, ws: Workspace) -> None:
    assert az("deploy").code == 0
    ws.edit_rule(SEED_ID, query="DeviceProcessEvents | take 1", queryFrequency="PT5H")
    etag = ws.rules[SEED_ID]["etag"]
    run = az("deploy", "--output", "json")
    assert run.code == 0, run.stderr
    (rule,) = run.json()["rules"]
    assert rule["action"] == "updated"
    assert {c["field"] for c in rule["changes"]} == {"query", "queryFrequency"}
    assert rule_puts(server)[-1].body["etag"] == etag
    assert ws.rules[SEED_ID]["properties"]["query"] == deployed_query(seed())


def test_status_reports_an_edit_behind_our_back_as_drift(az: Any, ws: Workspace) -> None:
    run = az("status", "--output", "json")
    assert run.code == 1
    assert [r["state"] for r in run.json()["rules"]] == ["missing"]
    assert az("deploy").code == 0
    run = az("status", "--output", "json")
    assert (run.code, [r["state"] for r in run.json()["rules"]]) == (0, ["in-sync"])

    ws.edit_rule(SEED_ID, query="DeviceProcessEvents | where FileName == 'cmd.exe'")
    run = az("status", "--output", "json")
    assert run.code == 1
    (rule,) = run.json()["rules"]
    assert rule["state"] == "drifted"
    assert rule["changes"] == [{"field": "query",
                                "from": "DeviceProcessEvents | where FileName == 'cmd.exe'",
                                "to": deployed_query(seed()).strip()}]
    table = az("status")
    assert table.code == 1 and "drifted" in table.stdout and "query:" in table.stdout


def test_status_disabled_and_auto_disabled(az: Any, ws: Workspace) -> None:
    assert az("deploy", "--disabled").code == 0
    run = az("status", "--output", "json")
    assert (run.code, run.json()["rules"][0]["state"]) == (1, "disabled")

    original = ws.rules[SEED_ID]["properties"]
    ws.edit_rule(SEED_ID, displayName="AUTO DISABLED " + original["displayName"],
                 description="The rule was disabled: table DeviceProcessEvents was not found. "
                 + original["description"])
    (rule,) = az("status", "--output", "json").json()["rules"]
    assert rule["state"] == "auto-disabled"
    assert rule["reason"] == "The rule was disabled: table DeviceProcessEvents was not found."


def test_remove_deletes_and_a_second_remove_succeeds(az: Any, server: AzureServer,
                                                     ws: Workspace) -> None:
    assert az("deploy").code == 0
    run = az("remove", "--yes", "--output", "json")
    assert run.code == 0, run.stderr
    assert [r["action"] for r in run.json()["rules"]] == ["deleted"]
    assert ws.rules == {}
    run = az("remove", "--yes", "--output", "json")
    assert run.code == 0
    assert [r["action"] for r in run.json()["rules"]] == ["absent"]
    assert len(server.calls("DELETE", RULES)) == 2


def test_remove_without_a_terminal_needs_yes(az: Any, server: AzureServer) -> None:
    run = az("remove")
    assert run.code == 2
    assert "--yes" in run.stderr
    assert server.requests == []


def test_workspace_without_the_table_gets_a_refused_deploy(
        az: Any, server: AzureServer) -> None:
    bare = server.add_workspace(name="noDefender", tables={"SecurityEvent": {"Computer": "string"}})
    run = az("deploy", "--output", "json", workspace=bare)
    assert run.code == 2
    (rule,) = run.json()["rules"]
    assert rule["action"] == "refused"
    assert "DeviceProcessEvents" in rule["reason"]
    assert "Failed to resolve table or column expression named 'DeviceProcessEvents'" in (
        rule["reason"])
    assert "refused" in run.stderr
    assert server.writes == []
    forced = az("deploy", "--force", "--output", "json", workspace=bare)
    assert forced.code == 0
    (rule,) = forced.json()["rules"]
    assert rule["action"] == "created" and rule["reason"].startswith("forced: ")


def test_a_missing_column_refuses_the_rule(az: Any, server: AzureServer) -> None:
    old = server.add_workspace(name="old", tables={"DeviceProcessEvents": dpe_columns("SHA256")})
    (rule,) = az("deploy", "--output", "json", workspace=old).json()["rules"]
    assert rule["action"] == "refused"
    assert "SHA256" in rule["reason"]


def test_read_back_that_lost_a_field_fails_loudly(az: Any, server: AzureServer) -> None:
    server.drop_on_write = {"techniques"}
    run = az("deploy", "--output", "json")
    assert run.code == 4
    (rule,) = run.json()["rules"]
    assert rule["action"] == "failed"
    assert "techniques" in rule["reason"]
    assert "error: rule" in run.stderr and "techniques" in run.stderr


# --- errors and exit codes -----------------------------------------------------------------------


def test_unknown_workspace_is_an_input_error(az: Any, server: AzureServer) -> None:
    ghost = Workspace("d0cfe6b2-9ac0-4464-9919-dccaee2e48c0", "myRg", "ghost", "x")
    run = az("deploy", workspace=ghost)
    assert run.code == 2
    assert "workspace 'ghost'" in run.stderr and "not found" in run.stderr


def test_workspace_without_sentinel_is_an_input_error(az: Any, server: AzureServer) -> None:
    plain = server.add_workspace(name="plain", sentinel=False)
    run = az("deploy", workspace=plain)
    assert run.code == 2
    assert "Microsoft Sentinel is not enabled" in run.stderr
    assert server.writes == []


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_exit_3(az: Any, server: AzureServer, status: int) -> None:
    server.inject(fail(status, times=-1, code="AuthorizationFailed",
                       message="The client does not have authorization to perform action"))
    run = az("status")
    assert run.code == 3
    assert "AuthorizationFailed" in run.stderr and "Microsoft Sentinel Reader" in run.stderr


def test_no_credential_exits_3(az: Any, server: AzureServer,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    class NoCredential:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    monkeypatch.setattr(credentials, "default_credential", lambda cloud, tenant=None:
                        NoCredential())
    run = az("deploy")
    assert run.code == 3
    assert "cannot get a token: DefaultAzureCredential failed" in run.stderr
    assert server.requests == []


def test_403_on_write_names_the_contributor_role(az: Any, server: AzureServer) -> None:
    server.inject(fail(403, times=-1, method="PUT", code="AuthorizationFailed",
                       message="does not have authorization to perform action 'write'"))
    run = az("deploy")
    assert run.code == 3
    assert "Microsoft Sentinel Contributor" in run.stderr


def test_400_reaches_the_user_with_the_service_text(az: Any, server: AzureServer) -> None:
    message = ("Failed to run the analytics rule query. One of the tables does not exist in "
               "the workspace, or the query has a semantic error.")
    server.inject(fail(400, method="PUT", code="BadRequest", message=message))
    run = az("deploy")
    assert run.code == 2
    assert message in run.stderr and "BadRequest" in run.stderr


def test_409_replans_and_retries_once(az: Any, server: AzureServer) -> None:
    server.inject(fail(409, method="PUT", code="Conflict", message="etag mismatch"))
    run = az("deploy", "--output", "json")
    assert run.code == 0, run.stderr
    assert [r["action"] for r in run.json()["rules"]] == ["created"]
    assert len(rule_puts(server)) == 2


def test_409_twice_is_reported(az: Any, server: AzureServer) -> None:
    server.inject(fail(409, times=2, method="PUT", code="Conflict", message="etag mismatch"))
    run = az("deploy", "--output", "json")
    assert run.code == 4
    (rule,) = run.json()["rules"]
    assert rule["action"] == "failed" and "etag mismatch" in rule["reason"]


def test_429_with_retry_after_is_retried(az: Any, server: AzureServer) -> None:
    server.inject(fail(429, method="PUT", code="TooManyRequests", message="throttled",
                       headers={"Retry-After": "1"}))
    started = time.monotonic()
    run = az("deploy", "--output", "json")
    assert run.code == 0, run.stderr
    assert time.monotonic() - started >= 1.0
    assert [r["action"] for r in run.json()["rules"]] == ["created"]
    assert len(rule_puts(server)) == 2


def test_service_failure_after_retries_exits_4(az: Any, server: AzureServer) -> None:
    server.inject(fail(503, times=-1, contains="/alertRules", code="ServiceUnavailable",
                       message="try later", headers={"Retry-After": "1"}))
    run = az("status")
    assert run.code == 4
    assert "503" in run.stderr and "ServiceUnavailable" in run.stderr
    assert len(server.calls("GET", "/alertRules")) == 4  # 1 + 3 retries


@pytest.mark.parametrize("args", [
    ("deploy", "--resource-group", "g", "--workspace", "w"),  # no subscription
    ("deploy", "--subscription-id", "s", "--resource-group", "g", "--workspace", "w",
     "--rule", "no-such-rule"),
    ("status", "--subscription-id", "s", "--resource-group", "g", "--workspace", "w",
     "--cloud", "Mars"),
    ("status", "--workspace", "w"),
    ("remove", "--subscription-id", "s", "--resource-group", "g", "--workspace", "w",
     "--arm-endpoint", "http://plain-text"),
])
def test_bad_options_exit_2(cli: Callable[..., Any], credential: FakeCredential,
                            args: tuple[str, ...]) -> None:
    run = cli(*args, "--yes" if args[0] == "remove" else "--output=json",
              env={"AZURE_SUBSCRIPTION_ID": ""})
    assert run.code == 2, (run.stdout, run.stderr)


def test_verbose_shows_http_calls_without_the_token(az: Any, server: AzureServer) -> None:
    run = az("deploy", "--verbose")
    assert run.code == 0
    assert set(iter_bearer_tokens(server)) == {TOKEN}  # the token did travel...
    output = "".join((run.stdout + run.stderr).split())  # rich wraps long lines
    assert TOKEN not in output and "eyJ" not in output  # ...but never into the output
    assert "Bearer" not in output
    assert f"PUT{server.arm_endpoint}/subscriptions/" in output and "->201" in output
    assert f"POST{server.logs_endpoint}/workspaces/" in output and "/query->200" in output
