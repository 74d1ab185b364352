"""`export --format navigator`: an ATT&CK Navigator layer (format 4.5) of the pack's coverage."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinel_t1190.rules import load_pack

#: Enterprise ATT&CK tactic short names (the ``tactic`` values a layer may use).
ENTERPRISE_TACTICS = {
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "credential-access", "discovery",
    "lateral-movement", "collection", "command-and-control", "exfiltration", "impact",
}
TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")


def check_layer_format(layer: dict[str, Any]) -> None:
    """The required fields and value rules of layers/spec/v4.5/layerformat.md."""
    assert isinstance(layer["name"], str) and layer["name"]
    assert layer["domain"] == "enterprise-attack"
    assert layer["versions"]["layer"] == "4.5"
    navigator = tuple(int(p) for p in layer["versions"]["navigator"].split("."))
    assert navigator >= (4, 9, 0)
    assert layer["sorting"] in (0, 1, 2, 3)
    gradient = layer["gradient"]
    assert len(gradient["colors"]) >= 2 and gradient["maxValue"] > gradient["minValue"]
    for entry in layer["techniques"]:
        assert TECHNIQUE.match(entry["techniqueID"]), entry
        assert entry.get("tactic", "initial-access") in ENTERPRISE_TACTICS, entry
        for item in entry.get("metadata", []):
            assert isinstance(item["name"], str) and isinstance(item["value"], str)
        for link in entry.get("links", []):
            assert link["url"].startswith("https://")


def entries(layer: dict[str, Any], technique: str) -> list[dict[str, Any]]:
    return [e for e in layer["techniques"] if e["techniqueID"] == technique]


def test_layer_holds_t1190_with_every_rule_that_covers_it(cli: Callable[..., Any]) -> None:
    result = cli("export", "--format", "navigator")
    assert result.code == 0, result.stderr
    layer = result.json()
    check_layer_format(layer)
    pack = load_pack()
    covering = {r.id for r in pack.rules if "T1190" in r.techniques}
    assert len(covering) == 5
    [t1190] = entries(layer, "T1190")
    assert t1190["tactic"] == "initial-access"
    assert t1190["score"] == len(covering)
    named = {re.search(r"\(([0-9a-f-]{36})\)$", m["value"])[1]  # type: ignore[index]
             for m in t1190["metadata"] if m["name"] == "rule"}
    assert named == covering
    [tables] = [m["value"] for m in t1190["metadata"] if m["name"] == "tables"]
    assert "DeviceProcessEvents" in tables and "W3CIISLog" in tables


def test_sub_techniques_sit_under_their_tactic_and_open_their_parent(
        cli: Callable[..., Any]) -> None:
    layer = cli("export", "--format", "navigator").json()
    [web_shell] = entries(layer, "T1505.003")
    assert web_shell["tactic"] == "persistence" and web_shell["score"] == 1
    [parent] = entries(layer, "T1505")
    assert parent["showSubtechniques"] is True and "score" not in parent
    [ingress] = entries(layer, "T1105")
    assert ingress["tactic"] == "command-and-control"


def test_rule_selection_and_out_folder(tmp_path: Path, cli: Callable[..., Any]) -> None:
    result = cli("export", "--format", "navigator", "--format", "arm", "--rule",
                 "web_server_child_process", "--out", str(tmp_path / "out"))
    assert result.code == 0, result.stderr
    layer = json.loads((tmp_path / "out/navigator/attack-navigator-layer.json").read_text())
    check_layer_format(layer)
    assert [e["techniqueID"] for e in layer["techniques"]] == ["T1190"]
    assert (tmp_path / "out/arm/web_server_child_process.json").is_file()
