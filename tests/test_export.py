from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190 import export
from sentinel_t1190.alert_rule import API_VERSION, to_api_properties
from sentinel_t1190.export import ExportFormat
from sentinel_t1190.rules import Rule, load_pack, load_rule

ROOT = Path(__file__).resolve().parent.parent
SEED_ID = "5b8c3f1e-7d2a-4e6b-9c41-0f3a8e2d1b77"


def _rules() -> tuple[Rule, ...]:
    return load_pack(ROOT).rules


def _seed() -> Rule:
    (rule,) = [r for r in _rules() if r.id == SEED_ID]
    return rule


# A reader for the Bicep literals export writes (objects, arrays, strings, bools, numbers),
# so the test can check the Bicep properties are exactly the API properties.
_TOKEN = re.compile(r"""'''(?P<multi>.*?)'''|'(?P<single>(?:\\.|[^'\\])*)'|(?P<word>[A-Za-z_]\w*)
                        |(?P<num>-?\d+)|(?P<punct>[{}\[\]:])""", re.S | re.X)
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", "$": "$"}


def _bicep_literal(text: str) -> Any:
    tokens = [m for m in _TOKEN.finditer(text)]
    pos = 0

    def value() -> Any:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok["punct"] == "{":
            obj: dict[str, Any] = {}
            while tokens[pos]["punct"] != "}":
                key = tokens[pos]["word"] or value_of(tokens[pos])
                assert tokens[pos + 1]["punct"] == ":"
                pos += 2
                obj[key] = value()
            pos += 1
            return obj
        if tok["punct"] == "[":
            items = []
            while tokens[pos]["punct"] != "]":
                items.append(value())
            pos += 1
            return items
        return value_of(tok)

    def value_of(tok: re.Match[str]) -> Any:
        if tok["multi"] is not None:
            return tok["multi"]
        if tok["single"] is not None:
            return re.sub(r"\\(.)", lambda m: _UNESCAPE[m[1]], tok["single"])
        if tok["num"] is not None:
            return int(tok["num"])
        return {"true": True, "false": False, "null": None}[tok["word"]]

    return value()


def test_arm_template_shape() -> None:
    template = json.loads(export.render([_seed()], ExportFormat.arm))
    assert template["$schema"].endswith("/2019-04-01/deploymentTemplate.json#")
    assert template["parameters"] == {"workspace": {"type": "string", "metadata": {
        "description": "Name of the Log Analytics workspace where Microsoft Sentinel is "
                       "enabled."}}}
    (resource,) = template["resources"]
    assert resource["type"] == "Microsoft.OperationalInsights/workspaces/providers/alertRules"
    assert resource["apiVersion"] == API_VERSION == "2025-10-01-preview"
    assert resource["name"] == (
        "[concat(parameters('workspace'), '/Microsoft.SecurityInsights/" + SEED_ID + "')]")
    assert resource["kind"] == "Scheduled"
    assert resource["properties"] == to_api_properties(_seed())
    assert resource["properties"]["techniques"] == ["T1190"]
    assert len(resource["properties"]["entityMappings"]) == 4


def test_arm_escapes_strings_that_look_like_expressions(tmp_path: Path) -> None:
    source = (ROOT / "analytics" / "web_server_child_process.yaml").read_text()
    path = tmp_path / "bracket.yaml"
    path.write_text(source.replace(
        "name: Web server process spawned", "name: '[lab] Web server process spawned", 1
    ).replace("(T1190)\n", "(T1190)'\n", 1))
    rule, _ = load_rule(path)
    assert rule is not None
    (resource,) = export.arm_template([rule])["resources"]
    assert resource["properties"]["displayName"].startswith("[[lab] Web server")


def test_bicep_properties_equal_api_properties() -> None:
    text = export.render([_seed()], ExportFormat.bicep)
    assert "param workspace string\n" in text
    assert ("resource sentinelWorkspace 'Microsoft.OperationalInsights/workspaces@2023-09-01'"
            " existing = {\n  name: workspace\n}") in text
    assert (f"resource rule_web_server_child_process 'Microsoft.SecurityInsights/alertRules@"
            f"{API_VERSION}' = {{\n  name: '{SEED_ID}'\n  scope: sentinelWorkspace\n"
            "  kind: 'Scheduled'\n") in text
    body = text[text.index("  properties: ") + len("  properties: "):]
    assert _bicep_literal(body) == to_api_properties(_seed())


@pytest.mark.parametrize(("value", "bicep"), [
    ("it's ${x}", r"'it\'s \${x}'"),
    ("a\\b", r"'a\\b'"),
    ("one\ntwo", "'''one\ntwo'''"),
    ("\nleading newline", r"'\nleading newline'"),
    ("has ''' inside\nand lines", r"'has \'\'\' inside\nand lines'"),
    ("crlf\r\nline", r"'crlf\r\nline'"),
])
def test_bicep_strings(value: str, bicep: str) -> None:
    assert export._bicep_string(value) == bicep
    assert _bicep_literal(bicep) == value


def test_yaml_export_round_trips(tmp_path: Path) -> None:
    text = export.render([_seed()], ExportFormat.yaml)
    assert text.startswith(f"id: {SEED_ID}\nname: Web server process spawned")
    assert "\nquery: |\n  DeviceProcessEvents\n  | where Timestamp > ago(24h)\n" in text
    assert "\ntactics:\n  - InitialAccess\n" in text
    path = tmp_path / "web_server_child_process.yaml"
    path.write_text(text)
    rule, findings = load_rule(path)
    assert rule is not None and findings == []
    assert to_api_properties(rule) == to_api_properties(_seed())


def test_several_rules_make_one_document() -> None:
    rules = (_seed(), _seed())
    assert len(json.loads(export.render(rules, ExportFormat.arm))["resources"]) == 2
    assert export.render(rules, ExportFormat.yaml).count("\n---\n") == 1


def test_infra_templates_are_up_to_date() -> None:
    """infra/ holds the exported pack; regenerate with
    `sentinel-t1190 export -f arm --out infra/arm` and `... -f bicep --out infra/bicep`."""
    stale = []
    for fmt, folder in ((ExportFormat.arm, "arm"), (ExportFormat.bicep, "bicep")):
        expected = export.files(_rules(), [fmt])
        present = {p.name for p in (ROOT / "infra" / folder).glob("*" + export.SUFFIX[fmt])}
        stale += [f"infra/{folder}/{name} (no such rule)" for name in present - set(expected)]
        for name, text in expected.items():
            path = ROOT / "infra" / folder / name
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(f"infra/{folder}/{name}")
    assert stale == [], "out of date with analytics/: " + ", ".join(stale)


def test_cli_export_arm_to_stdout(cli: Callable[..., Any]) -> None:
    run = cli("export", "--format", "arm", "--rule", "web_server_child_process")
    assert run.code == 0, run.stderr
    assert run.json()["resources"][0]["properties"]["queryFrequency"] == "PT1H"


def test_cli_export_to_folder(cli: Callable[..., Any], tmp_path: Path) -> None:
    run = cli("export", "-f", "arm", "-f", "bicep", "-f", "yaml", "--out", str(tmp_path))
    assert run.code == 0, run.stderr
    assert run.stdout == ""
    stems = sorted(Path(r.path).stem for r in _rules())
    assert stems == ["linux_web_server_child_process", "log4shell_jndi_lookup",
                     "sql_injection_in_request", "web_server_child_process",
                     "web_shell_file_in_web_root"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        f"{folder}/{stem}.{ext}" for folder, ext in (("arm", "json"), ("bicep", "bicep"),
                                                     ("yaml", "yaml")) for stem in stems]
    assert "wrote 15 file(s)" in run.stderr
    for stem in stems:  # what the committed infra/ holds, rule by rule
        assert (tmp_path / "arm" / f"{stem}.json").read_text() == (
            ROOT / "infra" / "arm" / f"{stem}.json").read_text()
        assert (tmp_path / "bicep" / f"{stem}.bicep").read_text() == (
            ROOT / "infra" / "bicep" / f"{stem}.bicep").read_text()

    single = tmp_path / "one"
    assert cli("export", "-f", "bicep", "--rule", SEED_ID, "--out", str(single)).code == 0
    assert [p.name for p in single.iterdir()] == ["web_server_child_process.bicep"]


def test_arm_export_of_the_web_shell_rule_carries_its_sub_technique() -> None:
    (rule,) = [r for r in _rules() if Path(r.path).stem == "web_shell_file_in_web_root"]
    (resource,) = export.arm_template([rule])["resources"]
    assert resource["properties"] == to_api_properties(rule)
    assert resource["properties"]["techniques"] == ["T1190", "T1505"]
    assert resource["properties"]["subTechniques"] == ["T1505.003"]


@pytest.mark.parametrize(("args", "message"), [
    (("--format", "sigma", "--rule", "sql_injection_in_request"),
     "Sigma cannot express sql_injection_in_request"),
    (("-f", "arm", "-f", "yaml"), "several --format values need --out FOLDER"),
    (("-f", "arm", "--rule", "nope"), "--rule 'nope' matches no rule"),
])
def test_cli_export_usage_errors(cli: Callable[..., Any], args: tuple[str, ...],
                                 message: str) -> None:
    run = cli("export", *args)
    assert run.code == 2
    assert message in run.stderr
    assert run.stdout == ""


def test_cli_export_out_must_be_a_folder(cli: Callable[..., Any], tmp_path: Path) -> None:
    target = tmp_path / "file.json"
    target.write_text("{}")
    run = cli("export", "-f", "arm", "--out", str(target))
    assert run.code == 2


def test_cli_export_sigma_writes_the_expressible_rules(cli: Callable[..., Any],
                                                       tmp_path: Path) -> None:
    import yaml

    run = cli("export", "--format", "sigma", "--rule", "web_server_child_process")
    assert run.code == 0, run.stderr
    document = yaml.safe_load(run.stdout)
    assert document["logsource"] == {"category": "process_creation", "product": "windows"}
    run = cli("export", "--format", "sigma", "--out", str(tmp_path))
    assert run.code == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["web_server_child_process.yml"]
