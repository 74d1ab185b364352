"""deploy / status / remove end to end: the CLI, the real Azure SDK clients, a loopback
HTTPS server answering like ARM and the Logs API (tests/azure_server.py), the real
DefaultAzureCredential signed in through a fake `az` (tests/identity.py)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure_server import AzureServer, Workspace, fail, iter_bearer_tokens, pack_tables
from conftest import assert_schema

from sentinel_t1190 import alert_rule
from sentinel_t1190.compile import deployed_query
from sentinel_t1190.rules import Rule, load_pack
from sentinel_t1190.schema import known_tables
from tests.identity import Identity

ROOT = Path(__file__).resolve().parent.parent
SEED_ID = "5b8c3f1e-7d2a-4e6b-9c41-0f3a8e2d1b77"
RULES_PREFIX = "/providers/Microsoft.SecurityInsights/alertRules"
RULES = f"{RULES_PREFIX}/{SEED_ID}"

def pack() -> tuple[Rule, ...]:
    return load_pack(ROOT).rules


def seed() -> Rule:
    (rule,) = [r for r in pack() if r.id == SEED_ID]
    return rule


#: Every rule of the pack, in the order deploy reports them.
PACK_IDS = [r.id for r in pack()]
COMPANION_IDS = [i for i in PACK_IDS if i != SEED_ID]
LINUX_ID = "de708d3e-acec-4d4f-9549-1275e8105f64"
#: The rules that do not read DeviceProcessEvents (the seed and the Linux rule do).
OTHER_TABLE_IDS = [r.id for r in pack() if "DeviceProcessEvents" not in r.tables]


def dpe_columns(*without: str) -> dict[str, str]:
    columns = dict(known_tables()["DeviceProcessEvents"].columns)
    return {c: t for c, t in columns.items() if c not in without}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AzureServer]:
    with AzureServer(tmp_path) as azure:
        yield azure


@pytest.fixture
def ws(server: AzureServer) -> Workspace:
    """A workspace holding every table (and column) the pack's rules read."""
    return server.add_workspace()


@pytest.fixture
def az(cli: Callable[..., Any], server: AzureServer, ws: Workspace,
       identity: Identity) -> Callable[..., Any]:
    """Run an Azure command against the test server's workspace."""

    def run(command: str, *args: str, workspace: Workspace | None = None) -> Any:
        target = workspace or ws
        return cli(command, "--subscription-id", target.subscription_id, "--resource-group",
                   target.resource_group, "--workspace", target.name, *args, env=server.env)

    return run


def rule_puts(server: AzureServer, rule_id: str | None = None) -> list[Any]:
    """PUTs of alert rules (of *rule_id* only, if given)."""
    return server.calls("PUT", f"{RULES_PREFIX}/{rule_id}" if rule_id else RULES_PREFIX)


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in doc["rules"]}


def test_the_default_workspace_holds_every_table_the_pack_reads(ws: Workspace) -> None:
    assert set(ws.tables) == {"DeviceProcessEvents", "DeviceFileEvents", "DeviceNetworkEvents",
                              "W3CIISLog", "CommonSecurityLog"}
    assert ws.tables["W3CIISLog"] == dict(known_tables()["W3CIISLog"].columns)


# --- acceptance ---------------------------------------------------------------------------------


def test_deploy_sends_each_rule_of_the_pack_whole(az: Any, server: AzureServer, ws: Workspace,
                                                  identity: Identity) -> None:
    run = az("deploy", "--output", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert_schema(doc, "deploy")
    assert doc["workspace"]["workspace"] == ws.name
    assert doc["workspace"]["customer_id"] == ws.customer_id
    assert [(r["id"], r["action"], r["changes"]) for r in doc["rules"]] == [
        (i, "created", []) for i in PACK_IDS]
    assert len(PACK_IDS) == 5

    # One PUT per rule, each carrying that rule's own deployed query and ATT&CK mapping.
    puts = {p.path.rsplit("/", 1)[-1]: p for p in rule_puts(server)}
    assert sorted(puts) == sorted(PACK_IDS)
    for rule in pack():
        props = puts[rule.id].body["properties"]
        assert puts[rule.id].api_version == alert_rule.API_VERSION
        assert puts[rule.id].body["kind"] == "Scheduled"
        assert props["displayName"] == rule.name
        assert props["query"] == deployed_query(rule)
        assert props["tactics"] == list(rule.tactics)
        assert props["techniques"] == list(dict.fromkeys(t.split(".")[0]
                                                         for t in rule.techniques))
        assert "T1190" in props["techniques"]
        assert props["entityMappings"] == rule.data["entityMappings"]
        assert ws.rules[rule.id]["properties"]["query"] == deployed_query(rule)
    assert puts["e7c48b62-1115-4cc1-8814-929c734334ff"].body["properties"][
        "subTechniques"] == ["T1505.003"]

    # The seed rule's own fields.
    props = puts[SEED_ID].body["properties"]
    rule = seed()
    assert (props["queryFrequency"], props["queryPeriod"]) == ("PT1H", "PT1H")
    assert props["severity"] == "High"
    assert props["tactics"] == ["InitialAccess"]
    assert props["techniques"] == ["T1190"]
    assert props["triggerOperator"] == "GreaterThan"
    assert props["enabled"] is True
    assert [m["entityType"] for m in props["entityMappings"]] == [
        "Host", "Account", "Process", "FileHash"]
    assert props["customDetails"] == dict(rule.data["customDetails"])
    # Pre-flight went first; every table the pack reads was checked; writes were read back.
    paths = [(r.method, r.path.rsplit("/", 2)[-2:]) for r in server.requests]
    assert paths[0] == ("GET", ["workspaces", ws.name])
    assert ("GET", ["onboardingStates", "default"]) in paths
    queried = [r.body["query"].split("|", 1)[0].strip()
               for r in server.calls("POST", f"/v1/workspaces/{ws.customer_id}/query")]
    assert sorted(queried) == sorted(ws.tables)  # each table once, not once per rule
    for rule_id in PACK_IDS:
        put_at = paths.index(("PUT", ["alertRules", rule_id]))
        assert ("GET", ["alertRules", rule_id]) in paths[put_at + 1:]
    assert ws.rules[SEED_ID]["properties"]["techniques"] == ["T1190"]
    # ARM scope for ARM, Logs scope for the getschema query: never one for the other.
    assert {r.resource for r in identity.token_requests} == {
        "https://management.azure.com", "https://api.loganalytics.io"}


def test_deploy_one_chosen_rule(az: Any, server: AzureServer) -> None:
    run = az("deploy", "--rule", SEED_ID, "--output", "json")
    assert run.code == 0, run.stderr
    assert [(r["id"], r["action"]) for r in run.json()["rules"]] == [(SEED_ID, "created")]
    assert [p.path.rsplit("/", 1)[-1] for p in rule_puts(server)] == [SEED_ID]


def test_second_deploy_is_unchanged_and_sends_no_put(az: Any, server: AzureServer) -> None:
    assert az("deploy").code == 0
    run = az("deploy", "--output", "json")
    assert run.code == 0
    assert [r["action"] for r in run.json()["rules"]] == ["unchanged"] * len(PACK_IDS)
    assert len(rule_puts(server)) == len(PACK_IDS)


def test_dry_run_writes_nothing(az: Any, server: AzureServer, ws: Workspace) -> None:
    run = az("deploy", "--dry-run", "--output", "json")
    assert [r["action"] for r in run.json()["rules"]] == ["would-create"] * len(PACK_IDS)
    assert server.writes == []
    assert az("deploy").code == 0
    ws.edit_rule(SEED_ID, severity="Low")
    run = az("deploy", "--dry-run", "--output", "json")
    rules = by_id(run.json())
    assert rules[SEED_ID]["action"] == "would-update"
    assert rules[SEED_ID]["changes"] == [{"field": "severity", "from": "Low", "to": "High",
                                          "diff": {"kind": "value"}}]
    assert [rules[i]["action"] for i in COMPANION_IDS] == ["unchanged"] * len(COMPANION_IDS)
    assert len(rule_puts(server)) == len(PACK_IDS)


def test_update_after_an_edit_answers_200_and_lists_the_fields(
        az: Any, server: AzureServer, ws: Workspace) -> None:
    assert az("deploy").code == 0
    ws.edit_rule(SEED_ID, query="DeviceProcessEvents | take 1", queryFrequency="PT5H")
    etag = ws.rules[SEED_ID]["etag"]
    run = az("deploy", "--output", "json")
    assert run.code == 0, run.stderr
    rules = by_id(run.json())
    assert rules[SEED_ID]["action"] == "updated"
    assert {c["field"] for c in rules[SEED_ID]["changes"]} == {"query", "queryFrequency"}
    assert [rules[i]["action"] for i in COMPANION_IDS] == ["unchanged"] * len(COMPANION_IDS)
    (put,) = rule_puts(server, SEED_ID)[1:]
    assert put.body["etag"] == etag
    assert len(rule_puts(server)) == len(PACK_IDS) + 1
    assert ws.rules[SEED_ID]["properties"]["query"] == deployed_query(seed())


def test_status_reports_an_edit_behind_our_back_as_drift(az: Any, ws: Workspace) -> None:
    run = az("status", "--output", "json")
    assert run.code == 1
    assert [r["state"] for r in run.json()["rules"]] == ["missing"] * len(PACK_IDS)
    assert az("deploy").code == 0
    run = az("status", "--output", "json")
    assert (run.code, [r["state"] for r in run.json()["rules"]]) == (
        0, ["in-sync"] * len(PACK_IDS))

    ws.edit_rule(SEED_ID, query="DeviceProcessEvents | where FileName == 'cmd.exe'")
    run = az("status", "--output", "json")
    assert run.code == 1
    assert_schema(run.json(), "status")
    rules = by_id(run.json())
    assert rules[SEED_ID]["state"] == "drifted"
    (change,) = rules[SEED_ID]["changes"]
    assert (change["field"], change["from"], change["to"]) == (
        "query", "DeviceProcessEvents | where FileName == 'cmd.exe'",
        deployed_query(seed()).strip())
    assert change["diff"]["kind"] == "text"
    assert change["diff"]["unified"].startswith("--- deployed\n+++ pack\n@@ ")
    assert "\n-DeviceProcessEvents | where FileName == 'cmd.exe'" in change["diff"]["unified"]
    assert [rules[i]["state"] for i in COMPANION_IDS] == ["in-sync"] * len(COMPANION_IDS)
    table = az("status")
    assert table.code == 1 and "drifted" in table.stdout and "query:" in table.stdout
    assert "exit 1: 1 rule(s) not in sync: 1 drifted" in table.stderr


def _unboxed(table: str) -> str:
    """A rich table's text without borders and spaces: folded cells read as one string."""
    return "".join(table.replace("│", "").split())


#: A one-character edit far along a long line of the SQL-injection rule: a prefix of the
#: line (what tables used to show) is the same on both sides.
SQLI = "427d2c25-b200-43f2-8d98-fc3686ec3258"


def _drift_sqli_first_line(ws: Workspace) -> tuple[str, str]:
    """Delete one character near the end of the query's longest line (past any prefix a
    table could show); returns (the pack's line, the deployed line)."""
    lines = ws.rules[SQLI]["properties"]["query"].split("\n")
    at = max(range(len(lines)), key=lambda i: len(lines[i]))
    first = lines[at]
    assert len(first) > 60
    edited = first[:-3] + first[-2:]
    ws.edit_rule(SQLI, query="\n".join([*lines[:at], edited, *lines[at + 1:]]))
    return first, edited


@pytest.mark.parametrize("command", [("deploy", "--dry-run"), ("status",)])
def test_a_drifted_query_shows_its_changed_line(az: Any, ws: Workspace,
                                                command: tuple[str, ...]) -> None:
    assert az("deploy").code == 0
    pack_line, deployed_line = _drift_sqli_first_line(ws)

    plan = az(*command, "--rule", SQLI, "--output", "json").json()
    assert_schema(plan, command[0])
    (change,) = by_id(plan)[SQLI]["changes"]
    diff_lines = change["diff"]["unified"].splitlines()
    assert ("-" + deployed_line) in diff_lines and ("+" + pack_line) in diff_lines
    assert deployed_line in change["from"] and pack_line in change["to"]

    table = az(*command, "--rule", "sql_injection_in_request")
    assert table.code == (0 if command[0] == "deploy" else 1), table.stderr
    flat = _unboxed(table.stdout)
    assert "query:" in flat
    assert _unboxed("-" + deployed_line) in flat and _unboxed("+" + pack_line) in flat

    markdown = az(*command, "--rule", "sql_injection_in_request.yaml", "--output", "markdown")
    assert "```diff\n--- deployed\n+++ pack\n" in markdown.stdout
    assert f"\n-{deployed_line}\n" in markdown.stdout
    assert f"\n+{pack_line}\n" in markdown.stdout
    assert "| sql_injection_in_request |" in markdown.stdout


def test_status_of_a_companion_rule_drifting(az: Any, ws: Workspace) -> None:
    sqli = "427d2c25-b200-43f2-8d98-fc3686ec3258"
    assert az("deploy").code == 0
    ws.edit_rule(sqli, severity="Low")
    run = az("status", "--rule", sqli, "--output", "json")
    assert run.code == 1
    (rule,) = run.json()["rules"]
    assert (rule["id"], rule["state"]) == (sqli, "drifted")
    assert rule["changes"] == [{"field": "severity", "from": "Low", "to": "Medium",
                                "diff": {"kind": "value"}}]


def test_status_disabled_and_auto_disabled(az: Any, ws: Workspace) -> None:
    assert az("deploy", "--disabled").code == 0
    run = az("status", "--output", "json")
    assert (run.code, [r["state"] for r in run.json()["rules"]]) == (
        1, ["disabled"] * len(PACK_IDS))

    original = ws.rules[SEED_ID]["properties"]
    ws.edit_rule(SEED_ID, displayName="AUTO DISABLED " + original["displayName"],
                 description="The rule was disabled: table DeviceProcessEvents was not found. "
                 + original["description"])
    rule = by_id(az("status", "--output", "json").json())[SEED_ID]
    assert rule["state"] == "auto-disabled"
    assert rule["reason"] == "The rule was disabled: table DeviceProcessEvents was not found."


def test_remove_deletes_and_a_second_remove_succeeds(az: Any, server: AzureServer,
                                                     ws: Workspace) -> None:
    assert az("deploy").code == 0
    run = az("remove", "--yes", "--output", "json")
    assert run.code == 0, run.stderr
    assert_schema(run.json(), "remove")
    assert [r["action"] for r in run.json()["rules"]] == ["deleted"] * len(PACK_IDS)
    assert ws.rules == {}
    run = az("remove", "--yes", "--output", "json")
    assert run.code == 0
    assert [r["action"] for r in run.json()["rules"]] == ["absent"] * len(PACK_IDS)
    assert len(server.calls("DELETE", RULES_PREFIX)) == 2 * len(PACK_IDS)
    assert len(server.calls("DELETE", RULES)) == 2


def test_remove_without_a_terminal_needs_yes(az: Any, server: AzureServer) -> None:
    run = az("remove")
    assert run.code == 2
    assert "--yes" in run.stderr
    assert server.requests == []
    # The question names what it would delete.
    one = az("remove", "--rule", "sql_injection_in_request")
    assert "Delete 1 rule(s) from workspace 'myWorkspace' (resource group 'myRg'): " \
        "sql_injection_in_request (SQL injection" in one.stderr


def test_workspace_without_the_table_gets_a_refused_deploy(
        az: Any, server: AzureServer) -> None:
    bare = server.add_workspace(name="noDefenderProcesses",
                                tables=pack_tables("DeviceProcessEvents"))
    run = az("deploy", "--output", "json", workspace=bare)
    assert run.code == 1
    rules = by_id(run.json())
    rule = rules[SEED_ID]
    assert rule["action"] == "refused"
    assert "DeviceProcessEvents" in rule["reason"]
    assert "Failed to resolve table or column expression named 'DeviceProcessEvents'" in (
        rule["reason"])
    assert rules[LINUX_ID]["action"] == "refused"
    # stderr says why the exit is 1, naming the rules; the reason is in the output, once.
    assert "exit 1: 2 rule(s) refused: " in run.stderr
    assert "web_server_child_process" in run.stderr
    assert "linux_web_server_child_process" in run.stderr
    assert "Failed to resolve" not in run.stderr
    # The rules whose tables are there proceed.
    assert [rules[i]["action"] for i in OTHER_TABLE_IDS] == ["created"] * len(OTHER_TABLE_IDS)
    assert sorted(bare.rules) == sorted(OTHER_TABLE_IDS)
    assert rule_puts(server, SEED_ID) == []
    forced = az("deploy", "--force", "--output", "json", workspace=bare)
    assert forced.code == 0
    rules = by_id(forced.json())
    assert rules[SEED_ID]["action"] == rules[LINUX_ID]["action"] == "created"
    assert rules[SEED_ID]["reason"].startswith("forced: ")
    assert [rules[i]["action"] for i in OTHER_TABLE_IDS] == ["unchanged"] * len(OTHER_TABLE_IDS)


def test_a_workspace_with_none_of_the_tables_refuses_every_rule(
        az: Any, server: AzureServer) -> None:
    bare = server.add_workspace(name="noDefender", tables={"SecurityEvent": {"Computer": "string"}})
    run = az("deploy", "--output", "json", workspace=bare)
    assert run.code == 1
    reasons = {r["id"]: r["reason"] for r in run.json()["rules"] if r["action"] == "refused"}
    assert sorted(reasons) == sorted(PACK_IDS)
    assert "'DeviceFileEvents'" in reasons["e7c48b62-1115-4cc1-8814-929c734334ff"]
    assert "'W3CIISLog'" in reasons["427d2c25-b200-43f2-8d98-fc3686ec3258"]
    assert server.writes == []
    assert az("deploy", "--allow-refused", workspace=bare).code == 0


def test_refused_reads_the_same_in_deploy_and_status(az: Any, server: AzureServer) -> None:
    bare = server.add_workspace(name="noProcesses", tables=pack_tables("DeviceProcessEvents"))
    deployed = by_id(az("deploy", "--output", "json", workspace=bare).json())[SEED_ID]
    run = az("status", "--output", "json", workspace=bare)
    assert run.code == 1
    assert_schema(run.json(), "status")
    states = by_id(run.json())
    assert (states[SEED_ID]["state"], states[SEED_ID]["reason"]) == (
        "refused", deployed["reason"])
    assert states[LINUX_ID]["state"] == "refused"
    assert [states[i]["state"] for i in OTHER_TABLE_IDS] == ["in-sync"] * len(OTHER_TABLE_IDS)
    assert "exit 1: 2 rule(s) refused: " in run.stderr
    assert az("status", "--allow-refused", workspace=bare).code == 0
    # The table says it once per refused rule, in that rule's row.
    table = az("status", workspace=bare)
    assert _unboxed(table.stdout).count("Failedtoresolve") == 2
    assert "refused" in table.stdout and "missing" not in table.stdout


def test_a_missing_column_refuses_the_rule(az: Any, server: AzureServer) -> None:
    old = server.add_workspace(name="old", tables={**pack_tables(),
                                                   "DeviceProcessEvents": dpe_columns("SHA256")})
    rules = by_id(az("deploy", "--output", "json", workspace=old).json())
    assert rules[SEED_ID]["action"] == "refused"
    assert "SHA256" in rules[SEED_ID]["reason"]
    assert rules[LINUX_ID]["action"] == "refused"
    assert [rules[i]["action"] for i in OTHER_TABLE_IDS] == ["created"] * len(OTHER_TABLE_IDS)


def test_a_missing_column_of_a_companion_table_refuses_that_rule(
        az: Any, server: AzureServer) -> None:
    sqli = "427d2c25-b200-43f2-8d98-fc3686ec3258"
    iis = {c: t for c, t in known_tables()["W3CIISLog"].columns.items() if c != "csUriQuery"}
    old = server.add_workspace(name="oldIis", tables={**pack_tables(), "W3CIISLog": iis})
    rules = by_id(az("deploy", "--output", "json", workspace=old).json())
    assert rules[sqli]["action"] == "refused"
    assert "W3CIISLog" in rules[sqli]["reason"] and "csUriQuery" in rules[sqli]["reason"]
    assert rules[SEED_ID]["action"] == "created"


def test_read_back_that_lost_a_field_fails_loudly(az: Any, server: AzureServer) -> None:
    server.drop_on_write = {"techniques"}
    run = az("deploy", "--output", "json")
    assert run.code == 4
    for rule in run.json()["rules"]:
        assert rule["action"] == "failed"
        assert "techniques" in rule["reason"]
    assert f"error: rule {SEED_ID}" in run.stderr and "techniques" in run.stderr


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


def test_no_credential_exits_3(az: Any, server: AzureServer, identity: Identity) -> None:
    identity.log_out()
    run = az("deploy")
    assert run.code == 3
    assert "cannot get a token: DefaultAzureCredential failed" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert server.requests == []


def test_403_on_a_read_during_deploy_names_the_role_that_can_write(
        az: Any, server: AzureServer) -> None:
    server.inject(fail(403, times=-1, code="AuthorizationFailed",
                       message="The client does not have authorization to perform action"))
    run = az("deploy")
    assert run.code == 3
    assert "Microsoft Sentinel Contributor to deploy" in run.stderr


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
    server.inject(fail(409, method="PUT", contains=RULES, code="Conflict",
                       message="etag mismatch"))
    run = az("deploy", "--output", "json")
    assert run.code == 0, run.stderr
    assert [r["action"] for r in run.json()["rules"]] == ["created"] * len(PACK_IDS)
    assert len(rule_puts(server, SEED_ID)) == 2
    assert len(rule_puts(server)) == len(PACK_IDS) + 1


def test_409_twice_is_reported(az: Any, server: AzureServer) -> None:
    server.inject(fail(409, times=2, method="PUT", contains=RULES, code="Conflict",
                       message="etag mismatch"))
    run = az("deploy", "--output", "json")
    assert run.code == 4
    rules = by_id(run.json())
    assert rules[SEED_ID]["action"] == "failed" and "etag mismatch" in rules[SEED_ID]["reason"]
    assert [rules[i]["action"] for i in COMPANION_IDS] == ["created"] * len(COMPANION_IDS)


def test_429_with_retry_after_is_retried(az: Any, server: AzureServer) -> None:
    server.inject(fail(429, method="PUT", contains=RULES, code="TooManyRequests",
                       message="throttled", headers={"Retry-After": "1"}))
    started = time.monotonic()
    run = az("deploy", "--rule", SEED_ID, "--output", "json")
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
def test_bad_options_exit_2(cli: Callable[..., Any], identity: Identity,
                            args: tuple[str, ...]) -> None:
    run = cli(*args, "--yes" if args[0] == "remove" else "--output=json",
              env={"AZURE_SUBSCRIPTION_ID": ""})
    assert run.code == 2, (run.stdout, run.stderr)


def test_verbose_shows_http_calls_without_the_token(az: Any, server: AzureServer) -> None:
    run = az("deploy", "--verbose")
    assert run.code == 0
    tokens = set(iter_bearer_tokens(server))
    assert len(tokens) == 2  # the tokens (ARM, Logs) did travel...
    output = run.stdout + run.stderr
    assert "eyJ" not in output  # ...but never into the output
    assert not any(token in output for token in tokens)
    assert "Bearer" not in output
    # one line per HTTP call, however long, for CI logs and grep
    calls = [line for line in run.stderr.splitlines() if line.startswith("info: ")]
    assert any(re.fullmatch(rf"info: PUT {re.escape(server.arm_endpoint)}/subscriptions/\S+ "
                            r"-> 201 \(\d+ ms\)", line) for line in calls), calls
    assert any(re.fullmatch(rf"info: POST {re.escape(server.logs_endpoint)}/workspaces/\S+"
                            r"/query -> 200 \(\d+ ms\)", line) for line in calls), calls


def test_markdown_keeps_a_hostile_deployed_query_inside_its_block(
        az: Any, ws: Workspace) -> None:
    assert az("deploy", "--rule", SQLI).code == 0
    pack_first_line = ws.rules[SQLI]["properties"]["query"].split("\n", 1)[0]
    ws.edit_rule(SQLI, query="W3CIISLog\n````\n<img src=x onerror=alert(1)>\n| x | y\u202e")
    out = az("status", "--rule", SQLI, "--output", "markdown").stdout
    block = out.split("`````diff\n", 1)[1].split("\n`````\n", 1)[0]  # a fence of 5 > 4
    assert "-````" in block and f"\n+{pack_first_line}" in block and "<U+202E>" in block
    row = next(line for line in out.splitlines() if line.startswith("| sql_injection"))
    assert "<img" not in out.replace(block, "") and row.count(" | ") == 3
