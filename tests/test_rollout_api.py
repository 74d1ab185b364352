"""The public fleet API (sentinel_t1190.api) and examples/rollout_script.py, end to end."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest

import sentinel_t1190 as st
from sentinel_t1190.azure.clouds import resolve_cloud
from sentinel_t1190.azure.credentials import default_credential
from sentinel_t1190.deploy import Action, Target
from tests.fleet_server import FleetServer, forbidden
from tests.identity import Identity

ROOT = Path(__file__).resolve().parent.parent
SUB = "00000000-0000-0000-0000-000000000001"
SEED_ID = "5b8c3f1e-7d2a-4e6b-9c41-0f3a8e2d1b77"
PACK_IDS = [r.id for r in st.load_pack(ROOT).rules]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, identity: Identity) -> Any:
    with FleetServer(tmp_path) as fleet:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fleet.ca_path))
        yield fleet


def endpoints(server: FleetServer) -> dict[str, str]:
    return {"arm_endpoint": server.arm_endpoint, "logs_endpoint": server.logs_endpoint}


def test_plan_then_deploy_one_target(server: FleetServer) -> None:
    ws = server.add_fleet_workspace(SUB, "rg", "ws-one")
    target = Target(SUB, "rg", "ws-one")
    steps = st.plan_target(target, **endpoints(server))
    assert [(s.rule.id, s.action) for s in steps] == [(i, Action.WOULD_CREATE) for i in PACK_IDS]
    assert server.done_writes() == 0
    result = st.deploy_to_target(target, **endpoints(server))
    assert [p.action for p in result.rules] == [Action.CREATED] * len(PACK_IDS)
    assert result.workspace.customer_id == ws.customer_id
    assert sorted(ws.rules) == sorted(PACK_IDS)
    again = st.plan_target(target, **endpoints(server))
    assert [s.action for s in again] == [Action.UNCHANGED] * len(PACK_IDS)


def test_plan_and_deploy_a_chosen_rule(server: FleetServer) -> None:
    ws = server.add_fleet_workspace(SUB, "rg", "ws-one")
    target = Target(SUB, "rg", "ws-one")
    [step] = st.plan_target(target, rule_ids=[SEED_ID], **endpoints(server))
    assert (step.rule.id, step.action) == (SEED_ID, Action.WOULD_CREATE)
    result = st.deploy_to_target(target, rule_ids=[SEED_ID], **endpoints(server))
    assert [p.action for p in result.rules] == [Action.CREATED]
    assert list(ws.rules) == [SEED_ID]


def test_rollout_and_fleet_status_with_one_credential_for_all(server: FleetServer,
                                                               tmp_path: Path,
                                                               identity: Identity) -> None:
    targets = [Target(SUB, "rg", f"ws-{i}") for i in range(3)]
    for t in targets:
        server.add_fleet_workspace(t.subscription_id, t.resource_group, t.workspace)
    seen: list[str] = []
    report = st.run_rollout(targets, concurrency=2, report_path=tmp_path / "r.json",
                        credential=default_credential(resolve_cloud()),
                        on_result=lambda r: seen.append(r.status), **endpoints(server))
    assert report.summary()["created"] == 3 and sorted(seen) == ["created"] * 3
    # The one credential given, and its tokens, served every workspace: one per audience.
    assert len(identity.token_requests) == 2
    assert json.loads((tmp_path / "r.json").read_text())["complete"] is True
    fleet = st.fleet_status(targets, **endpoints(server))
    assert fleet.in_sync and fleet.summary()["in-sync"] == 3


def test_example_script_plans_then_applies_then_resumes(server: FleetServer, tmp_path: Path,
                                                        identity: Identity,
                                                        capsys: pytest.CaptureFixture[str],
                                                        ) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps([
        {"customer": "Contoso", "tenant_id": None, "workspaces": [
            {"subscription_id": SUB, "resource_group": "rg", "name": "contoso-ws"}]},
        {"customer": "Fabrikam", "tenant_id": "dddddddd-0000-0000-0000-000000000000",
         "workspaces": [{"subscription_id": SUB, "resource_group": "rg2",
                         "name": "fabrikam-ws"}]},
    ]))
    identity.guest_of("dddddddd-0000-0000-0000-000000000000")
    contoso = server.add_fleet_workspace(SUB, "rg", "contoso-ws")
    fabrikam = server.add_fleet_workspace(SUB, "rg2", "fabrikam-ws")
    main = runpy.run_path(str(ROOT / "examples" / "rollout_script.py"))["main"]
    args = [str(inventory), "--report", str(tmp_path / "report.json"),
            "--arm-endpoint", server.arm_endpoint, "--logs-endpoint", server.logs_endpoint]

    assert main(args) == 0
    assert "would-create" in capsys.readouterr().out and server.done_writes() == 0

    server.inject(forbidden(server.key(fabrikam)))
    assert main([*args, "--apply"]) == 1
    out, err = capsys.readouterr()
    assert '"created": 1' in out and "FAILED fabrikam-ws: " in err and "403" in err

    server.faults.clear()
    before = len(server.replies)
    assert main([*args, "--apply", "--resume"]) == 0
    assert server.touched(before) >= {"fabrikam-ws"}
    assert server.done_writes(server.key(contoso)) == len(PACK_IDS)  # one PUT per rule
    assert server.done_writes(server.key(fabrikam)) == len(PACK_IDS)
