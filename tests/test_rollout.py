"""Fleet rollout through the REAL SDK clients against tests/fleet_server.py (loopback HTTPS).

Issue 5's reliability case: 50 workspaces, ~10 % transient 429/503 replies and one workspace
answering 403 every time -> 49 deployed, 1 failed with the reason; a second run writes
nothing; --resume touches only the failed workspace; a killed run resumes to every target
done once; --prune removes only rules the tool deployed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_schema

from sentinel_t1190.alert_rule import resource_name
from sentinel_t1190.azure.clouds import resolve_cloud
from sentinel_t1190.deploy import Target
from sentinel_t1190.rollout import (
    ArmClientFactory,
    RolloutReport,
    TargetStatus,
    load_report,
    remaining_targets,
    rollout,
)
from sentinel_t1190.rules import load_pack
from tests.azure_server import Workspace
from tests.fleet_server import (
    FleetServer,
    TransientFaults,
    client_kwargs,
    forbidden,
)
from tests.identity import Identity

ROOT = Path(__file__).resolve().parent.parent
RULE_ID = "5b8c3f1e-7d2a-4e6b-9c41-0f3a8e2d1b77"
FOREIGN = "0f9e8d7c-6b5a-4321-8765-43210fedcba9"  # a customer's own rule, never ours
#: The whole pack (four rules): a rollout deploys each of them to every workspace.
PACK_IDS = [r.id for r in load_pack(ROOT).rules]
#: The rules a workspace without DeviceProcessEvents refuses (the seed and its Linux variant).
DPE_IDS = [r.id for r in load_pack(ROOT).rules if "DeviceProcessEvents" in r.tables]


def sub(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


@pytest.fixture(autouse=True)
def signed_in(identity: Identity) -> Identity:
    """Every test here signs in through the fake `az` (the real DefaultAzureCredential)."""
    return identity


def make_fleet(server: FleetServer, count: int, subscriptions: int = 5) -> list[Workspace]:
    return [server.add_fleet_workspace(sub(i % subscriptions), f"rg-{i % 3}", f"ws-{i:03d}")
            for i in range(count)]


def write_targets(path: Path, workspaces: list[Workspace]) -> Path:
    lines = ["subscription_id,resource_group,workspace"]
    lines += [f"{w.subscription_id},{w.resource_group},{w.name}" for w in workspaces]
    path.write_text("\n".join(lines) + "\n")
    return path


def factory(server: FleetServer, **kwargs: Any) -> ArmClientFactory:
    cloud = resolve_cloud("AzureCloud", arm_endpoint=server.arm_endpoint,
                          logs_endpoint=server.logs_endpoint)
    return ArmClientFactory(cloud, **client_kwargs(server), **kwargs)


def targets_of(workspaces: list[Workspace]) -> list[Target]:
    return [Target(w.subscription_id, w.resource_group, w.name) for w in workspaces]


def by_workspace(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["workspace"]: t for t in report["targets"]}


# --- the reliability case, through the CLI ----------------------------------------------------


def test_fifty_targets_transient_faults_and_one_forbidden(
        cli: Callable[..., Any], tmp_path: Path, identity: Identity) -> None:
    with FleetServer(tmp_path) as server:
        fleet = make_fleet(server, 50)
        denied = fleet[17]
        deny = forbidden(server.key(denied))
        # One retry each at most: the CLI keeps its real back-off, whose first retry is at once.
        transient = TransientFaults(0.10, max_in_a_row=1)
        server.inject(deny)
        server.inject(transient)
        targets = write_targets(tmp_path / "targets.csv", fleet)
        report = tmp_path / "report.json"

        run = cli("rollout", "--targets", str(targets), "--report", str(report),
                  "--concurrency", "8", "--output", "json", env=server.env)

        assert run.code == 1, run.stderr
        assert transient.injected >= 20  # ~10 % of ~300 requests really failed once
        doc = json.loads(report.read_text())
        assert_schema(doc, "rollout")
        assert_schema(run.json(), "rollout")
        assert run.json()["summary"] == doc["summary"]
        assert doc["summary"] == {"total": 50, "created": 49, "updated": 0, "unchanged": 0,
                                  "refused": 0, "failed": 1, "skipped": 0, "pending": 0,
                                  "pruned": 0}
        failed = by_workspace(doc)[denied.name]
        assert failed["status"] == "failed"
        assert failed["error_type"] == "AuthError"
        assert "403 AuthorizationFailed" in failed["error"]
        assert denied.name in failed["error"]
        assert doc["complete"] is True
        for ws in fleet:
            expected = 0 if ws is denied else len(PACK_IDS)  # one PUT per rule
            assert server.done_writes(server.key(ws)) == expected, ws.name
            assert sorted(ws.rules) == ([] if ws is denied else sorted(PACK_IDS))
        assert "error: " not in run.stderr
        assert "report: " in run.stderr and "created 49" in run.stderr

        # Again: nothing to write, 49 unchanged (the forbidden one still fails).
        server.faults.remove(transient)
        writes_before = server.done_writes()
        again = cli("rollout", "--targets", str(targets), "--report",
                    str(tmp_path / "again.json"), "--output", "json", env=server.env)
        assert again.code == 1
        assert server.done_writes() == writes_before
        summary = again.json()["summary"]
        assert (summary["unchanged"], summary["failed"], summary["created"]) == (49, 1, 0)

        # The role is granted; --resume redoes only the failed workspace.
        server.faults.remove(deny)
        seen_before = len(server.replies)
        resumed = cli("rollout", "--targets", str(targets), "--resume", str(report),
                      "--output", "json", env=server.env)
        assert resumed.code == 0, resumed.stderr
        assert server.touched(seen_before) == {denied.name}
        assert "50 workspace(s), 1 to do" in resumed.stderr
        final = json.loads(report.read_text())  # --resume updates its report in place
        assert final["summary"]["created"] == 50 and final["summary"]["failed"] == 0
        assert by_workspace(final)[denied.name]["status"] == "created"


def test_resume_without_targets_uses_the_report_and_keeps_other_results(
        cli: Callable[..., Any], tmp_path: Path, identity: Identity) -> None:
    with FleetServer(tmp_path) as server:
        fleet = make_fleet(server, 4)
        server.inject(forbidden(server.key(fleet[2])))
        report = tmp_path / "r.json"
        first = cli("rollout", "--targets", str(write_targets(tmp_path / "t.csv", fleet)),
                    "--report", str(report), "--output", "json", env=server.env)
        assert first.code == 1
        assert f"exit 1: 1 workspace(s) failed; after fixing them: sentinel-t1190 rollout " \
            f"--resume {report}" in first.stderr
        server.faults.clear()
        second = cli("rollout", "--resume", str(report), "--output", "json", env=server.env)
        assert second.code == 0, second.stderr
        assert [t["status"] for t in second.json()["targets"]] == ["created"] * 4


# --- interrupted runs ---------------------------------------------------------------------------

def test_killed_run_resumed_ends_with_every_target_done_once(
        cli: Callable[..., Any], tmp_path: Path, identity: Identity) -> None:
    with FleetServer(tmp_path, latency=0.03) as server:
        fleet = make_fleet(server, 40)
        targets = write_targets(tmp_path / "targets.csv", fleet)
        report = tmp_path / "report.json"
        env = {**os.environ, **server.env, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(
            [sys.executable, "-m", "sentinel_t1190", "rollout", "--targets", str(targets),
             "--report", str(report), "--concurrency", "2", "--output", "json"],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            done = 0
            while time.monotonic() < deadline and done < 8:
                time.sleep(0.05)
                if report.exists():
                    done = load_report(report).summary()["created"]
            assert done >= 8, "the run never got going"
            process.send_signal(signal.SIGKILL)  # no clean-up: a killed CI job
            process.wait(10)
        finally:
            if process.poll() is None:
                process.kill()
        interrupted = load_report(report)  # still a whole, valid report
        assert not interrupted.complete
        left = remaining_targets(targets_of(fleet), interrupted)
        assert 0 < len(left) < 40
        assert interrupted.summary()["created"] + interrupted.summary()["pending"] == 40

        resumed = cli("rollout", "--targets", str(targets), "--resume", str(report),
                      "--output", "json", env=server.env)

        assert resumed.code == 0, resumed.stderr
        final = resumed.json()
        assert final["complete"] and final["summary"]["pending"] == 0
        assert final["summary"]["created"] + final["summary"]["unchanged"] == 40
        for ws in fleet:  # a rule written just before the kill is found unchanged, not rewritten
            assert server.done_writes(server.key(ws)) == len(PACK_IDS), ws.name


def test_ctrl_c_names_the_report_to_resume(tmp_path: Path) -> None:
    with FleetServer(tmp_path, latency=0.03) as server:
        fleet = make_fleet(server, 40)
        targets = write_targets(tmp_path / "targets.csv", fleet)
        report = tmp_path / "my report.json"
        env = {**os.environ, **server.env, "PYTHONPATH": str(ROOT)}
        # A shell's background job (`bash .ci/run &`) ignores SIGINT, and so would the child:
        # with a handler here instead, the child starts with the default, as from a terminal.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "sentinel_t1190", "rollout", "--targets", str(targets),
                 "--report", str(report), "--concurrency", "2", "--output", "json"],
                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True)
        finally:
            signal.signal(signal.SIGINT, previous)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                    report.exists() and load_report(report).summary()["created"] >= 2):
                time.sleep(0.05)
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, stderr
    assert (f"interrupted: finished workspaces are in {report}; to do the rest: "
            f"sentinel-t1190 rollout --resume '{report}'") in stderr
    assert not load_report(report).complete


def test_without_report_the_report_goes_to_the_state_folder(
        cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with FleetServer(tmp_path) as server:
        fleet = make_fleet(server, 2)
        targets = write_targets(tmp_path / "t.csv", fleet)
        run = cli("rollout", "--targets", str(targets), "--output", "json",
                  env={**server.env, "XDG_STATE_HOME": str(tmp_path / "state")})
    assert run.code == 0, run.stderr
    (report,) = (tmp_path / "state" / "sentinel-t1190" / "rollouts").glob("rollout-*.json")
    assert json.loads(report.read_text())["summary"]["created"] == 2
    assert f"report: {report}" in run.stderr
    assert list(work.iterdir()) == []  # nothing left in the current folder


def test_an_exception_mid_run_keeps_every_finished_target(tmp_path: Path) -> None:
    with FleetServer(tmp_path) as server:
        fleet = make_fleet(server, 12)
        rules = load_pack(ROOT).rules
        path = tmp_path / "report.json"
        seen: list[str] = []

        def crash_after_five(result: Any) -> None:
            seen.append(result.target.workspace)
            if len(seen) == 5:
                raise RuntimeError("CI job cancelled")

        with pytest.raises(RuntimeError, match="CI job cancelled"):
            rollout(targets_of(fleet), rules, factory(server), concurrency=2,
                    report_path=path, on_result=crash_after_five)

        saved = load_report(path)
        finished = {t.target.workspace for t in saved.targets
                    if t.status is TargetStatus.CREATED}
        assert set(seen) <= finished  # nothing reported finished is missing from the file
        assert len(finished) < 12 and saved.finished_at is not None

        final = rollout(targets_of(fleet), rules, factory(server), concurrency=2,
                        report_path=path, resume_from=saved)
        assert final.complete and final.summary()["created"] == 12
        assert all(server.done_writes(server.key(ws)) == len(PACK_IDS) for ws in fleet)


# --- dry run, prune, status ----------------------------------------------------------------------


def test_dry_run_prints_the_fleet_plan_and_writes_nothing(
        cli: Callable[..., Any], tmp_path: Path, identity: Identity) -> None:
    with FleetServer(tmp_path) as server:
        fleet = make_fleet(server, 3)
        # No DeviceProcessEvents: that rule would be auto-disabled, the others can go.
        del fleet[1].tables["DeviceProcessEvents"]
        fleet[2].tables.clear()  # none of the pack's tables: every rule refused
        targets = str(write_targets(tmp_path / "t.csv", fleet))
        run = cli("rollout", "--targets", targets, "--dry-run", "--report",
                  str(tmp_path / "plan.json"), "--output", "json", env=server.env)
        table = cli("rollout", "--targets", targets, "--dry-run", "--report",
                    str(tmp_path / "plan2.json"), env=server.env)
        rows = cli("rollout", "--targets", targets, "--dry-run", "--report",
                   str(tmp_path / "plan3.json"), "--output", "csv", env=server.env)
        assert server.done_writes() == 0
    assert run.code == 1, run.stderr
    assert "exit 1: 2 workspace(s) refused a rule" in run.stderr
    doc = run.json()
    assert_schema(doc, "rollout")
    assert doc["dry_run"] is True
    assert [t["status"] for t in doc["targets"]] == ["would-create", "refused", "refused"]
    assert doc["summary"]["would-create"] == 1 and doc["summary"]["refused"] == 2
    assert [r["action"] for r in doc["targets"][0]["rules"]] == ["would-create"] * len(PACK_IDS)
    partial = {r["id"]: r for r in doc["targets"][1]["rules"]}
    assert partial[RULE_ID]["action"] == "refused"
    assert "DeviceProcessEvents" in partial[RULE_ID]["reason"]
    assert [partial[i]["action"] for i in DPE_IDS] == ["refused"] * len(DPE_IDS)
    assert [partial[i]["action"] for i in PACK_IDS if i not in DPE_IDS] == (
        ["would-create"] * (len(PACK_IDS) - len(DPE_IDS)))
    assert all(r["action"] == "refused" for r in doc["targets"][2]["rules"])
    reasons = " ".join(r["reason"] for r in doc["targets"][2]["rules"])
    assert "DeviceProcessEvents" in reasons and "W3CIISLog" in reasons
    assert doc["targets"][2]["error"] is None  # a refusal is not an error: said once, per rule
    assert "fleet plan (dry run: nothing written)" in table.stdout
    assert "ws-001" in table.stdout and "would-create" in table.stdout
    assert "refused" in table.stdout
    assert rows.stdout.splitlines()[0] == ("subscription_id,resource_group,workspace,status,"
                                           "rule_id,rule_name,action,changes,error")
    lines = list(csv.DictReader(io.StringIO(rows.stdout)))
    assert len(lines) == 3 * len(PACK_IDS)  # a row per workspace and rule
    assert {line["action"] for line in lines[:len(PACK_IDS)]} == {"would-create"}
    (seed_row,) = [line for line in lines
                   if line["workspace"] == "ws-001" and line["rule_id"] == RULE_ID]
    assert seed_row["action"] == "refused" and "DeviceProcessEvents" in seed_row["error"]


def test_a_refused_rule_shows_even_where_the_rest_is_unchanged(
        cli: Callable[..., Any], tmp_path: Path, identity: Identity) -> None:
    with FleetServer(tmp_path) as server:
        fleet = make_fleet(server, 2)
        del fleet[1].tables["DeviceProcessEvents"]
        targets = str(write_targets(tmp_path / "t.csv", fleet))
        first = cli("rollout", "--targets", targets, "--report", str(tmp_path / "1.json"),
                    "--output", "json", env=server.env)
        again = cli("rollout", "--targets", targets, "--report", str(tmp_path / "2.json"),
                    env=server.env)
    assert first.code == 1, first.stderr
    assert [t["status"] for t in first.json()["targets"]] == ["created", "refused"]
    assert first.json()["summary"]["refused"] == 1
    assert sorted(fleet[1].rules) == sorted(i for i in PACK_IDS if i not in DPE_IDS)
    # Second run: ws-000 unchanged (not shown), ws-001 still refused: shown, with its reason.
    assert again.code == 1, again.stderr
    text = " ".join(again.stdout.split())
    assert "ws-001" in text and "refused" in text and "ws-000" not in text
    assert "exit 1: 1 workspace(s) refused a rule" in again.stderr


def _foreign_rules(ws: Workspace) -> None:
    template = {"type": "Microsoft.SecurityInsights/alertRules", "etag": '"1"'}
    ws.rules[FOREIGN] = {**template, "id": f"{ws.path}/x/{FOREIGN}", "name": FOREIGN,
                         "kind": "Scheduled", "properties": {"displayName": "SOC's own rule"}}
    ws.rules["builtinfusion"] = {**template, "id": f"{ws.path}/x/BuiltInFusion",
                                 "name": "BuiltInFusion", "kind": "Fusion",
                                 "properties": {"displayName": "Advanced Multistage Attack "
                                                "Detection"}}


def test_prune_deletes_only_retired_rules_the_tool_deployed(tmp_path: Path) -> None:
    with FleetServer(tmp_path) as server:
        fleet = make_fleet(server, 3)
        pack = load_pack(ROOT).rules
        first = rollout(targets_of(fleet), pack, factory(server))
        assert first.summary()["created"] == 3
        for ws in fleet:
            _foreign_rules(ws)
        # The current pack keeps its rules: prune deletes nothing.
        kept = rollout(targets_of(fleet), pack, factory(server), prune=True)
        assert kept.summary()["pruned"] == 0 and server.count(method="DELETE") == 0
        # A later pack retired the rules (they stay in shipped_rule_ids.txt).
        plan = rollout(targets_of(fleet), (), factory(server), prune=True, keep_ids=(),
                       dry_run=True)
        assert server.count(method="DELETE") == 0
        assert [p["action"] for t in plan.targets for p in t.pruned] == (
            ["would-delete"] * 3 * len(pack))
        assert plan.summary()["would-update"] == 3
        pruned = rollout(targets_of(fleet), (), factory(server), prune=True, keep_ids=())

    assert pruned.summary()["pruned"] == 3 * len(pack) and pruned.summary()["updated"] == 3
    assert sorted((p["name"], p["displayName"], p["action"]) for p in pruned.targets[0].pruned
                  ) == sorted((r.id, r.name, "deleted") for r in pack)
    for ws in fleet:
        assert sorted(ws.rules) == sorted(["builtinfusion", FOREIGN])


def test_prune_through_the_cli_keeps_the_pack_and_foreign_rules(
        cli: Callable[..., Any], tmp_path: Path, identity: Identity) -> None:
    with FleetServer(tmp_path) as server:
        fleet = make_fleet(server, 2)
        for ws in fleet:
            _foreign_rules(ws)
        run = cli("rollout", "--targets", str(write_targets(tmp_path / "t.csv", fleet)),
                  "--prune", "--report", str(tmp_path / "r.json"), "--output", "json",
                  env=server.env)
        assert run.code == 0, run.stderr
        assert server.count(method="DELETE") == 0
        for ws in fleet:
            assert sorted(ws.rules) == sorted(["builtinfusion", FOREIGN, *PACK_IDS])


def test_fleet_status_reports_every_workspace_and_rule(
        cli: Callable[..., Any], tmp_path: Path, identity: Identity) -> None:
    with FleetServer(tmp_path) as server:
        fleet = make_fleet(server, 4)
        rollout(targets_of(fleet[:3]), load_pack(ROOT).rules, factory(server))
        fleet[1].edit_rule(RULE_ID, queryFrequency="PT5H")
        server.inject(forbidden(server.key(fleet[2])))
        targets = str(write_targets(tmp_path / "t.yaml.csv", fleet))
        run = cli("status", "--targets", targets, "--output", "json", env=server.env)
        table = cli("status", "--targets", targets, env=server.env)
        server.faults.clear()
        clean = cli("status", "--targets", str(write_targets(tmp_path / "ok.csv", fleet[:1])),
                    "--output", "json", env=server.env)
    assert run.code == 1, run.stderr
    doc = run.json()
    assert_schema(doc, "fleet-status")
    states = {t["workspace"]: (t["status"], [r["state"] for r in t["rules"]])
              for t in doc["targets"]}
    drifted = ["drifted" if i == RULE_ID else "in-sync" for i in PACK_IDS]
    assert states == {"ws-000": ("in-sync", ["in-sync"] * len(PACK_IDS)),
                      "ws-001": ("out-of-sync", drifted), "ws-002": ("failed", []),
                      "ws-003": ("out-of-sync", ["missing"] * len(PACK_IDS))}
    (seed,) = [r for r in by_workspace(doc)["ws-001"]["rules"] if r["id"] == RULE_ID]
    assert {"field": "queryFrequency", "from": "PT5H", "to": "PT1H",
            "diff": {"kind": "value"}} in seed["changes"]
    assert "403" in by_workspace(doc)["ws-002"]["error"]
    assert doc["summary"]["failed"] == 1
    assert doc["summary"]["rules_missing"] == len(PACK_IDS)
    assert doc["summary"]["rules_drifted"] == 1
    assert "fleet status" in table.stdout and "queryFrequency" in table.stdout
    assert clean.code == 0 and clean.json()["summary"]["in-sync"] == 1


# --- options, tenants ----------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    ((), "which workspaces? give --targets FILE or --discover"),
    (("--targets", "t.csv", "--discover"), "not both"),
    (("--targets", "t.csv", "--subscription-id", sub(1)), "--subscription-id filters --discover"),
    (("--targets", "absent.csv"), "cannot read targets file"),
    (("--resume", "absent.json"), "cannot read the rollout report"),
])
def test_usage_errors_exit_2(cli: Callable[..., Any], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...],
                             message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text(f"subscription_id,resource_group,workspace\n{sub(1)},g,ws-1\n")
    run = cli("rollout", *args)
    assert run.code == 2
    assert message in run.stderr and run.stdout == ""


def test_each_tenant_gets_its_own_credential_once(tmp_path: Path, identity: Identity) -> None:
    tenant_a = "aaaaaaaa-0000-0000-0000-000000000000"
    tenant_b = "bbbbbbbb-0000-0000-0000-000000000000"
    tenant_c = "cccccccc-0000-0000-0000-000000000000"
    identity.guest_of(tenant_a, tenant_b, tenant_c)
    with FleetServer(tmp_path) as server:
        fleet = make_fleet(server, 6, subscriptions=6)
        tenants = [tenant_a, tenant_b, None] * 2
        for ws, tenant in zip(fleet, tenants, strict=True):  # each takes its tenant's tokens
            server.token_tenants[ws.subscription_id] = tenant or tenant_c
        cloud = resolve_cloud("AzureCloud", arm_endpoint=server.arm_endpoint,
                              logs_endpoint=server.logs_endpoint)
        clients = ArmClientFactory(cloud, tenant_id=tenant_c, **client_kwargs(server))
        targets = [Target(w.subscription_id, w.resource_group, w.name, t)
                   for w, t in zip(fleet, tenants, strict=True)]
        report = rollout(targets, load_pack(ROOT).rules, clients, concurrency=3)
    assert report.summary()["created"] == 6
    # One token per tenant and audience, whatever the number of workspaces in it.
    asked = [(r.tenant, r.resource) for r in identity.token_requests]
    assert sorted(asked) == sorted((t, a) for t in (tenant_a, tenant_b, tenant_c)
                                   for a in ("https://api.loganalytics.io",
                                             "https://management.azure.com"))
    assert [t["tenant_id"] for t in report.to_dict()["targets"]] == tenants


def test_report_round_trips_and_a_dry_run_report_finishes_nothing(tmp_path: Path) -> None:
    fleet = [Target(sub(1), "rg", "ws-a"), Target(sub(2), "rg", "ws-b")]
    with FleetServer(tmp_path) as server:
        for t in fleet:
            server.add_fleet_workspace(t.subscription_id, t.resource_group, t.workspace)
        path = tmp_path / "plan.json"
        plan = rollout(fleet, load_pack(ROOT).rules, factory(server), dry_run=True,
                       report_path=path)
    loaded = load_report(path)
    assert loaded.to_dict()["targets"] == plan.to_dict()["targets"]
    assert loaded.dry_run and remaining_targets(fleet, loaded) == fleet
    real = RolloutReport(list(loaded.targets))
    assert remaining_targets(fleet, real) == fleet  # would-create is not done either
    assert [resource_name(r) for r in load_pack(ROOT).rules] == [i.lower() for i in PACK_IDS]


def test_never_more_workspaces_at_once_than_the_concurrency(tmp_path: Path) -> None:
    import threading

    active = [0, 0]  # now, peak
    lock = threading.Lock()

    with FleetServer(tmp_path, latency=0.02) as server:
        fleet = make_fleet(server, 12)
        real = factory(server)

        class Counted:
            def __init__(self, target: Target) -> None:
                self._client = real(target)
                with lock:
                    active[0] += 1
                    active[1] = max(active[1], active[0])

            def __getattr__(self, name: str) -> Any:
                return getattr(self._client, name)

            def close(self) -> None:
                with lock:
                    active[0] -= 1
                self._client.close()

        report = rollout(targets_of(fleet), load_pack(ROOT).rules, Counted, concurrency=3)
    assert report.summary()["created"] == 12
    assert active == [0, 3]
