"""`init DIR` writes a pack repository that every rule command uses through --pack DIR."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from sentinel_t1190 import detection
from sentinel_t1190.alert_rule import owned_ids, shipped_rule_ids
from sentinel_t1190.cli import app
from sentinel_t1190.rules import load_pack
from tests.identity import Identity
from tests.test_pipelines import scripts

CLOCK = "2026-01-15T12:00:00Z"  # the sample telemetry's clock (data/sample/sample.json)
EXCLUSION = """exclusions:
  - name: iis02-whoami
    reason: monitoring probe runs whoami from the Default app pool
    owner: web@example.com
    device: web-iis-02.corp.example
    parent: w3wp.exe
    child: whoami.exe
"""


@pytest.fixture
def pack(tmp_path: Path, cli: Callable[..., Any]) -> Path:
    folder = tmp_path / "my-pack"
    result = cli("init", str(folder))
    assert result.code == 0, result.stderr
    return folder


def hunt(cli: Callable[..., Any], *args: str, env: dict[str, str] | None = None
         ) -> list[dict[str, Any]]:
    result = cli("hunt", *args, "--now", CLOCK, "--timespan", "30d", "--output", "json",
                 env=env)
    assert result.code == 0, result.stderr
    findings: list[dict[str, Any]] = result.json()["findings"]
    return findings


def excluded(row: dict[str, Any]) -> bool:
    return (row["DeviceName"] == "web-iis-02.corp.example"
            and row["InitiatingProcessFileName"].lower() == "w3wp.exe"
            and row["FileName"].lower() == "whoami.exe")


def test_init_pack_validates_and_its_tests_pass(pack: Path, cli: Callable[..., Any]) -> None:
    for path in ("analytics/web_server_child_process.yaml", "analytics/exclusions",
                 "analytics/fixtures/web_server_child_process.yaml", "hunting",
                 "shipped_rule_ids.txt", "telemetry/DeviceProcessEvents.csv", "README.md",
                 ".github/workflows/sentinel-t1190.yml", "azure-pipelines.yml"):
        assert (pack / path).exists(), path
    validated = cli("validate", "--pack", str(pack), "--output", "json")
    assert validated.code == 0, validated.stdout
    assert validated.json()["checked"] == 10
    tested = cli("test", "--pack", str(pack), "--output", "json")
    assert tested.code == 0, tested.stdout
    assert tested.json()["passed"] is True
    assert {r["fixtures"] for r in tested.json()["rules"]} == {
        str(p) for p in (pack / "analytics" / "fixtures").glob("*.yaml")}


def test_an_exclusion_added_to_the_pack_changes_its_hunt(pack: Path,
                                                         cli: Callable[..., Any]) -> None:
    telemetry = str(pack / "telemetry" / "DeviceProcessEvents.csv")
    before = hunt(cli, "--pack", str(pack), "--local", telemetry)
    assert sum(map(excluded, before)) == 3

    (pack / "analytics/exclusions/web_server_child_process.yaml").write_text(EXCLUSION)
    after = hunt(cli, "--local", telemetry, env={"SENTINEL_T1190_PACK": str(pack)})
    assert [r for r in before if not excluded(r)] == after
    # the bundled pack is untouched by the copy's tuning
    assert hunt(cli, "--local", telemetry) == before


def test_a_rule_edited_in_the_pack_is_what_commands_see(pack: Path,
                                                        cli: Callable[..., Any]) -> None:
    path = pack / "analytics/web_server_child_process.yaml"
    path.write_text(path.read_text().replace("severity: High", "severity: Low"))
    listed = cli("rules", "--pack", str(pack), "--output", "json").json()["rules"]
    assert {r["id"]: r["severity"] for r in listed}[detection.RULE_ID] == "Low"
    bundled = cli("rules", "--output", "json").json()["rules"]
    assert {r["id"]: r["severity"] for r in bundled}[detection.RULE_ID] == "High"


def test_init_refuses_a_folder_with_files(tmp_path: Path, cli: Callable[..., Any]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = cli("init", str(tmp_path))
    assert result.code == 2
    assert result.stderr.startswith("error: ") and "not an empty folder" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("command", ["rules", "validate", "test", "export --format yaml"])
def test_a_folder_that_is_no_pack_is_an_input_error(tmp_path: Path, cli: Callable[..., Any],
                                                    command: str) -> None:
    result = cli(*command.split(), "--pack", str(tmp_path))
    assert result.code == 2
    assert "is not a rule pack" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_pack_keeps_its_own_shipped_ids_for_prune(pack: Path) -> None:
    own = pack / "shipped_rule_ids.txt"
    assert shipped_rule_ids(pack) == shipped_rule_ids()
    retired = "6f0d3f4e-52a1-4c55-9a53-0d1b1f7c2a11"
    own.write_text(own.read_text() + f"{retired}  # retired in our fork\n")
    loaded = load_pack(pack)
    assert retired in owned_ids(loaded)
    assert retired not in owned_ids(load_pack())
    assert {r.id.lower() for r in loaded.rules} <= owned_ids(loaded)


def _command_params(name: str) -> set[str]:
    info = next(c for c in app.registered_commands if c.name == name)
    command = typer.main.get_command_from_info(info, pretty_exceptions_short=True,
                                               rich_markup_mode=None)
    return {opt for p in command.params for opt in p.opts}


@pytest.mark.parametrize("name", [".github/workflows/sentinel-t1190.yml", "azure-pipelines.yml"])
def test_starter_ci_checks_pull_requests_and_deploys_on_merge(pack: Path, name: str) -> None:
    document = yaml.safe_load((pack / name).read_text())
    lines = [line for script in scripts(document)
             for line in script.replace("\\\n", " ").splitlines() if "sentinel-t1190 " in line]
    used = {re.search(r"sentinel-t1190 ([a-z]+)", line)[1]: line  # type: ignore[index]
            for line in lines}
    assert {"validate", "test", "backtest", "rollout"} <= used.keys()
    for command, line in used.items():
        if command == "backtest" and "backtest" not in {c.name for c in app.registered_commands}:
            continue
        options = set(re.findall(r"(?<!\S)(--[a-z-]+)", line))
        assert "--pack" in options
        assert options <= _command_params(command), options - _command_params(command)
    assert "--prune" in used["rollout"]


def test_validate_warns_about_a_rule_missing_from_the_shipped_ids(
        pack: Path, cli: Callable[..., Any]) -> None:
    rule = pack / "analytics/web_server_child_process.yaml"
    new_id = "9d1c7b52-3f0e-4a8b-b6c1-2e4f5a6b7c8d"
    (pack / "analytics/copy_of_seed.yaml").write_text(
        rule.read_text().replace(f"id: {detection.RULE_ID}", f"id: {new_id}"))
    (pack / "hunting/copy_of_seed.yaml").write_text(
        (pack / "hunting/web_server_child_process.yaml").read_text().replace(
            detection.RULE_ID, new_id).replace("id: ", "id: 0", 1))
    result = cli("validate", "--pack", str(pack), "--output", "json")
    warned = [f for f in result.json()["findings"] if f["code"] == "not-in-shipped-ids"]
    assert [(f["rule_id"], f["level"]) for f in warned] == [(new_id, "warning")]
    with (pack / "shipped_rule_ids.txt").open("a") as listed:
        listed.write(f"{new_id}\n")
    again = cli("validate", "--pack", str(pack), "--output", "json")
    assert not [f for f in again.json()["findings"] if f["code"] == "not-in-shipped-ids"]


def test_rollout_prune_uses_the_packs_own_shipped_ids(
        pack: Path, tmp_path: Path, cli: Callable[..., Any], identity: Identity) -> None:
    from tests.fleet_server import FleetServer
    from tests.test_rollout import FOREIGN, _foreign_rules, make_fleet, write_targets

    ours = "9d1c7b52-3f0e-4a8b-b6c1-2e4f5a6b7c8d"  # a rule only this pack ever shipped
    for folder in ("analytics", "hunting"):
        seed = (pack / folder / "web_server_child_process.yaml").read_text()
        (pack / folder / "our_variant.yaml").write_text(
            seed.replace(detection.RULE_ID, ours).replace("id: ", "id: 0", folder == "hunting"))
    with (pack / "shipped_rule_ids.txt").open("a") as listed:
        listed.write(f"{ours}\n")
    bundled = [r.id for r in load_pack().rules]
    with FleetServer(tmp_path) as server:
        fleet = make_fleet(server, 1)
        _foreign_rules(fleet[0])
        targets = str(write_targets(tmp_path / "t.csv", fleet))

        def rollout(*args: str) -> Any:
            run = cli("rollout", "--targets", targets, "--report", str(tmp_path / "r.json"),
                      "--output", "json", *args, env=server.env)
            assert run.code == 0, run.stderr
            return run

        rollout("--pack", str(pack))
        assert ours in fleet[0].rules
        for folder in ("analytics", "hunting"):  # the pack retires its own rule
            (pack / folder / "our_variant.yaml").unlink()
        rollout("--prune")  # the bundled pack's list does not know the rule: kept
        assert ours in fleet[0].rules
        rollout("--pack", str(pack), "--prune")
        remaining = sorted(fleet[0].rules)
    assert remaining == sorted(["builtinfusion", FOREIGN, *bundled])
