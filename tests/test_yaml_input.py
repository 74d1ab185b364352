"""YAML from pull requests (rules, exclusions, fixtures, targets): alias bombs refused fast,
duplicate keys refused — each with the file and line."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run

from sentinel_t1190 import api
from sentinel_t1190._yaml import MAX_ALIAS_NODES, YamlSyntaxError, load_with_lines
from sentinel_t1190.errors import InputError
from sentinel_t1190.exclusions import load_exclusions
from sentinel_t1190.ruletest import load_cases
from sentinel_t1190.targets import load_targets

ROOT = Path(__file__).resolve().parent.parent
#: "Billion laughs": nine lines that expand to 9**9 (387 million) strings.
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
    for i in range(8))
RULE = "web_server_child_process"


def test_an_alias_bomb_fails_well_under_a_second() -> None:
    started = time.perf_counter()
    with pytest.raises(YamlSyntaxError, match="aliases expand the file") as caught:
        load_with_lines(BOMB)
    assert time.perf_counter() - started < 0.2
    assert caught.value.line == 1


def test_aliases_within_the_bound_still_work() -> None:
    text = "base: &b {DeviceName: web-01, FileName: cmd.exe}\ncases: [*b, *b, *b]\n"
    data, _ = load_with_lines(text)
    assert data["cases"] == [{"DeviceName": "web-01", "FileName": "cmd.exe"}] * 3
    wide = "a: &a [" + ", ".join(["x"] * 100) + "]\nb: [" + ", ".join(["*a"] * 99) + "]\n"
    assert len(load_with_lines(wide)[0]["b"]) == 99  # 9,900 nodes added: under the bound
    assert MAX_ALIAS_NODES >= 99 * 101


@pytest.mark.parametrize(("text", "line"), [
    ("&a [*a]\n", 1),
    ("x:\n  y: &y\n    z: *y\n", 2),
])
def test_an_alias_to_its_own_node_is_refused(text: str, line: int) -> None:
    with pytest.raises(YamlSyntaxError, match="refers to the node that contains it") as caught:
        load_with_lines(text)
    assert caught.value.line in (1, line)


@pytest.mark.parametrize(("text", "key", "line", "first"), [
    ("id: x\nname: a\nid: y\n", "id", 3, 1),
    ("{a: 1, a: 2}\n", "a", 1, 1),
    ("cases:\n  - name: c\n    now: 1\n    name: d\n", "name", 4, 2),
])
def test_duplicate_keys_are_refused_with_both_lines(text: str, key: str, line: int,
                                                    first: int) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_with_lines(text)
    assert str(caught.value) == (f"YAML key {key!r} given twice in one mapping "
                                 f"(first on line {first})")
    assert caught.value.line == line


def test_merge_keys_and_equal_values_of_different_types_are_not_duplicates() -> None:
    data, _ = load_with_lines("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n1: a\n'1': b\n")
    assert data["d"] == {"x": 3, "y": 2} and data[1] == "a" and data["1"] == "b"


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(YamlSyntaxError):
        load_with_lines("[" * 100_000 + "]" * 100_000)


# --- each kind of file, through the code that reads it ---------------------------------------


def _rule_text() -> str:
    return (ROOT / "analytics" / f"{RULE}.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(("extra", "message"), [
    ("\nseverity: Low\n", "YAML key 'severity' given twice"),
    ("\n" + BOMB, "YAML aliases expand the file"),
])
def test_validate_reports_the_rule_file_and_line(cli: Callable[..., Run], tmp_path: Path,
                                                 extra: str, message: str) -> None:
    path = tmp_path / "rule.yaml"
    text = _rule_text() + extra
    path.write_text(text, encoding="utf-8")
    started = time.perf_counter()
    run = cli("validate", str(path), "-o", "json")
    assert time.perf_counter() - started < 10  # the bomb is never expanded (it would be hours)
    assert run.code == 1, run.stderr
    [finding] = [f for f in run.json()["findings"] if f["code"] == "yaml-syntax"]
    assert message in finding["message"] and finding["path"] == str(path)
    lines = text.splitlines()
    assert finding["line"] == (lines.index("severity: Low") + 1 if "Low" in extra else 1)


def _pack(tmp_path: Path) -> Path:
    pack = tmp_path / "pack"
    shutil.copytree(ROOT / "analytics", pack / "analytics")
    shutil.copytree(ROOT / "hunting", pack / "hunting")
    return pack


def test_exclusions_file_with_a_duplicate_key(tmp_path: Path) -> None:
    pack = _pack(tmp_path)
    path = pack / "analytics" / "exclusions" / f"{RULE}.yaml"
    path.write_text("exclusions:\n  - name: a\n    reason: r\n    name: b\n", encoding="utf-8")
    [rule] = api.load_pack(pack).select([RULE])
    entries, findings = load_exclusions(rule)
    assert entries == []
    assert [(f.code, f.path, f.line) for f in findings] == [("yaml-syntax", str(path), 4)]
    assert "'name' given twice" in findings[0].message


def test_fixtures_file_with_an_alias_bomb(tmp_path: Path) -> None:
    pack = _pack(tmp_path)
    path = pack / "analytics" / "fixtures" / f"{RULE}.yaml"
    path.write_text(BOMB, encoding="utf-8")
    [rule] = api.load_pack(pack).select([RULE])
    cases, problems = load_cases(rule)
    assert cases == []
    [problem] = problems
    assert problem.startswith(f"{path}:1: YAML aliases expand the file by ")
    assert problem.endswith(f" nodes (at most {MAX_ALIAS_NODES:,} allowed)")


def test_fixtures_file_with_a_duplicate_key(tmp_path: Path) -> None:
    pack = _pack(tmp_path)
    path = pack / "analytics" / "fixtures" / f"{RULE}.yaml"
    text = (ROOT / "analytics" / "fixtures" / f"{RULE}.yaml").read_text(encoding="utf-8")
    path.write_text(text.replace("    now: 2026-03-01T12:00:00Z\n",
                                 "    now: 2026-03-01T12:00:00Z\n    now: 2026-03-02T12:00:00Z\n",
                                 1), encoding="utf-8")
    [rule] = api.load_pack(pack).select([RULE])
    _, problems = load_cases(rule)
    line = text.splitlines().index("    now: 2026-03-01T12:00:00Z") + 2
    assert problems == [f"{path}:{line}: YAML key 'now' given twice in one mapping (first on "
                        f"line {line - 1})"]


SUB = "00000000-0000-0000-0000-000000000001"


@pytest.mark.parametrize(("text", "problem"), [
    (f"- subscription_id: {SUB}\n  resource_group: rg\n  workspace: ws1\n"
     f"  workspace: ws2\n", ":4: YAML key 'workspace' given twice in one mapping (first on "
     "line 3)"),
    (BOMB, ":1: YAML aliases expand the file"),
])
def test_targets_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_targets(path)
    assert f"{path}{problem}" in str(caught.value)


def test_json_in_yaml_clothing_is_not_special(tmp_path: Path) -> None:
    # JSON is YAML: a duplicate key there is refused the same way.
    with pytest.raises(YamlSyntaxError, match="'a' given twice"):
        load_with_lines(json.dumps({"a": 1})[:-1] + ', "a": 2}')
