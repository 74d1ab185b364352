"""Exclusions as code: compiled into the deployed and hunting KQL, escaped, expiring."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import duckdb_kql
import pytest

from sentinel_t1190 import api, compile, detection
from sentinel_t1190.errors import InputError
from sentinel_t1190.rules import Pack, load_pack
from sentinel_t1190.ruletest import Case, run_case
from sentinel_t1190.timespan import parse_instant
from sentinel_t1190.validate import validate_paths

ROOT = Path(__file__).resolve().parent.parent
HCW = """exclusions:
  - name: exchange-hcw
    reason: Exchange Hybrid Configuration Wizard runs PowerShell from the service host
    owner: messaging@example.com
    expires: 2099-12-31
    parent: msexchangeservicehost.exe
    child: powershell.exe
    command_line: {contains: HybridConfigurationWizard}
"""


def _pack(tmp_path: Path, exclusions: str | None) -> Pack:
    for folder in ("analytics", "hunting"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    target = tmp_path / "analytics" / "exclusions" / "web_server_child_process.yaml"
    if exclusions is not None:
        target.write_text(exclusions, encoding="utf-8")
    return load_pack(tmp_path)


def _seed(pack: Pack):  # type: ignore[no-untyped-def]
    [rule] = pack.select([detection.RULE_ID])
    return rule


def _sample_hunt(pack: Pack) -> list[dict[str, object]]:
    [result] = api.hunt_local([], sample=True, timespan="30d", pack=pack)
    return result.findings


def test_companion_folders_are_not_loaded_as_rules() -> None:
    pack = load_pack()
    assert not pack.findings
    assert all("exclusions" not in r.path and "fixtures" not in r.path for r in pack.rules)
    assert len(pack.rules) == 5


def test_shipped_starters_are_commented_out_so_queries_are_unchanged() -> None:
    for rule in load_pack().rules:
        assert compile.deployed_query(rule) == rule.query
        assert rule.hunting is not None
        assert compile.hunting_query(rule) == rule.hunting.query


def test_hcw_exclusion_removes_exactly_the_hcw_events_and_is_deployed(tmp_path: Path) -> None:
    base = _sample_hunt(load_pack())
    pack = _pack(tmp_path, HCW)
    tuned = _sample_hunt(pack)
    removed = [row for row in base if row not in tuned]
    assert len(removed) == 1
    assert removed[0]["InitiatingProcessFileName"] == "msexchangeservicehost.exe"
    assert "HybridConfigurationWizard" in str(removed[0]["ProcessCommandLine"])
    assert len(tuned) == len(base) - 1
    line = ('| where not(InitiatingProcessFileName =~ "msexchangeservicehost.exe" and '
            'FileName =~ "powershell.exe" and ProcessCommandLine contains '
            '"HybridConfigurationWizard") // exclusion: exchange-hcw')
    rule = _seed(pack)
    deployed = compile.deployed_query(rule)
    assert line in deployed.splitlines()
    # Right after the time filter, in the deployed and the hunting query alike.
    lines = deployed.splitlines()
    assert lines[lines.index(line) - 1] == "| where Timestamp > ago(24h)"
    hunting = compile.hunting_query(rule)
    assert hunting is not None
    hunt_lines = hunting.splitlines()
    assert hunt_lines[hunt_lines.index(line) - 1] == (
        "| where Timestamp > starttime and Timestamp <= endtime")
    assert deployed == compile.deployed_query(rule)  # deterministic


def _starter_entries() -> str:
    text = (ROOT / "analytics/exclusions/web_server_child_process.yaml").read_text()
    body = text.split("exclusions: []\n", 1)[1]
    return "exclusions:\n" + "".join(line[1:] + "\n" for line in body.splitlines())


def test_each_starter_entry_removes_its_false_positive_class_from_the_sample(
        tmp_path: Path) -> None:
    base = _sample_hunt(load_pack())
    tuned = _sample_hunt(_pack(tmp_path, _starter_entries()))
    removed = [row for row in base if row not in tuned]
    assert sorted(str(r["DeviceName"]).split(".")[0] for r in removed) == [
        "app-node-01", "app-tomcat-01", "exch-01", "web-iis-01", "web-iis-02"]
    assert len(tuned) == len(base) - 5
    # The attacks on the same hosts stay visible.
    assert {r["DeviceName"] for r in tuned} >= {r["DeviceName"] for r in removed}


HOSTILE = [
    'x" or true or "',
    "it's",
    "C:\\Temp\\",
    "a | where true",
    "line\nbreak",
    'back\\"slash',
    "\\\") or (1==1",
    "// not a comment",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_stay_inside_their_literal(tmp_path: Path, value: str) -> None:
    import yaml

    entries = {"exclusions": [
        {"name": "hostile", "reason": "test", "owner": "test", "command_line": {"contains": value}},
        {"name": "hostile-eq", "reason": "test", "owner": "test", "child": "cmd.exe",
         "command_line": value},
    ]}
    rule = _seed(_pack(tmp_path, yaml.safe_dump(entries)))
    query = compile.deployed_query(rule)
    assert duckdb_kql.validate(query) == []
    now = parse_instant("2026-03-01T12:00:00Z")
    rows = [
        {"Timestamp": "2026-03-01T11:00:00Z", "DeviceName": "hit", "FileName": "cmd.exe",
         "InitiatingProcessFileName": "w3wp.exe", "ProcessCommandLine": f"pre {value} post"},
        {"Timestamp": "2026-03-01T11:00:00Z", "DeviceName": "exact", "FileName": "cmd.exe",
         "InitiatingProcessFileName": "w3wp.exe", "ProcessCommandLine": value},
        {"Timestamp": "2026-03-01T11:00:00Z", "DeviceName": "miss", "FileName": "cmd.exe",
         "InitiatingProcessFileName": "w3wp.exe", "ProcessCommandLine": "cmd.exe /c whoami"},
        {"Timestamp": "2026-03-01T11:00:00Z", "DeviceName": "empty", "FileName": "cmd.exe",
         "InitiatingProcessFileName": "w3wp.exe"},
    ]
    result = run_case(rule, Case("hostile", now, {"DeviceProcessEvents": rows},
                                 ({"DeviceName": "miss"}, {"DeviceName": "empty"})), query)
    assert result.error is None
    assert sorted(r["DeviceName"] for r in result.got) == ["empty", "miss"]


def test_regex_is_matched_as_written(tmp_path: Path) -> None:
    entries = """exclusions:
  - name: octopus
    reason: deploys
    owner: releng
    account: IIS APPPOOL\\Octopus
    command_line: {regex: '(?i)^powershell\\.exe -File C:\\\\Octopus\\\\Tentacle\\\\'}
"""
    rule = _seed(_pack(tmp_path, entries))
    query = compile.deployed_query(rule)
    assert ('strcat(AccountDomain, "\\\\", AccountName) =~ "IIS APPPOOL\\\\Octopus"'
            in query)
    now = parse_instant("2026-03-01T12:00:00Z")
    base = {"Timestamp": "2026-03-01T11:00:00Z", "FileName": "powershell.exe",
            "InitiatingProcessFileName": "w3wp.exe", "AccountDomain": "IIS APPPOOL",
            "AccountName": "Octopus"}
    rows = [
        {**base, "DeviceName": "tuned",
         "ProcessCommandLine": "powershell.exe -File C:\\Octopus\\Tentacle\\Work\\Deploy.ps1"},
        {**base, "DeviceName": "other-folder",
         "ProcessCommandLine": "powershell.exe -File C:\\Users\\Public\\Deploy.ps1"},
        {**base, "DeviceName": "other-account", "AccountName": "DefaultAppPool",
         "ProcessCommandLine": "powershell.exe -File C:\\Octopus\\Tentacle\\Work\\Deploy.ps1"},
    ]
    result = run_case(rule, Case("regex", now, {"DeviceProcessEvents": rows},
                                 ({"DeviceName": "x"},)), query)
    assert sorted(r["DeviceName"] for r in result.got) == ["other-account", "other-folder"]


def test_expired_entries_are_not_compiled_and_validate_warns(tmp_path: Path) -> None:
    text = HCW.replace("2099-12-31", "2026-01-31")
    pack = _pack(tmp_path, text)
    rule = _seed(pack)
    assert "exchange-hcw" in compile.deployed_query(rule, today=date(2026, 1, 31))
    assert compile.deployed_query(rule, today=date(2026, 2, 1)) == rule.query
    assert compile.deployed_query(rule) == rule.query  # today is after 2026-01-31
    stamped = _pack(tmp_path / "stamped", HCW.replace("2099-12-31", "2026-01-31T08:00:00Z"))
    assert compile.deployed_query(_seed(stamped), today=date(2026, 2, 1)) == rule.query
    _, findings = validate_paths([tmp_path / "analytics"])
    [warning] = [f for f in findings if f.code == "exclusion-expired"]
    assert warning.level == "warning"
    assert "exchange-hcw" in warning.message and "2026-01-31" in warning.message
    assert warning.path is not None and warning.path.endswith("web_server_child_process.yaml")
    assert warning.line == 2
    assert not [f for f in findings if f.level == "error"]


@pytest.mark.parametrize(("entry", "message"), [
    ("    reason: r\n    owner: o\n    hostname: x\n", "unknown field 'hostname'"),
    ("    owner: o\n    child: cmd.exe\n", "reason is required"),
    ("    reason: r\n    owner: o\n    command_line: {regex: '(unclosed'}\n",
     "not a regex Kusto can run"),
    ("    reason: r\n    owner: o\n    child: ''\n", "empty values"),
    ("    reason: r\n    owner: o\n    command_line: {regex: 'a(?!b)'}\n", "RE2"),
    ("    reason: r\n    owner: o\n    child: {like: x}\n", "exactly one of"),
    ("    reason: r\n    owner: o\n    expires: soon\n    child: cmd.exe\n", "expires must be"),
    ("    reason: r\n    owner: o\n", "needs at least one of"),
    ("    reason: r\n    owner: o\n    client_ip: 10.0.0.1\n", "none of the query's tables"),
    ("    reason: r\n    owner: o\n    child: a.exe\n  - name: BAD\n    reason: r\n"
     "    owner: o\n    child: b.exe\n", "name 'BAD' is used twice"),
])
def test_bad_entries_are_validate_errors_and_refuse_to_compile(
        tmp_path: Path, entry: str, message: str) -> None:
    pack = _pack(tmp_path, "exclusions:\n  - name: bad\n" + entry)
    _, findings = validate_paths([tmp_path / "analytics"])
    errors = [f for f in findings if f.level == "error"]
    assert any(message in f.message for f in errors), errors
    with pytest.raises(InputError, match=re.escape(message)):
        compile.deployed_query(_seed(pack))


def test_entries_name_is_sanitised_for_the_comment(tmp_path: Path) -> None:
    pack = _pack(tmp_path, HCW.replace("name: exchange-hcw", 'name: "x\\n| take 1"'))
    _, findings = validate_paths([tmp_path / "analytics"])
    assert any("name:" in f.message for f in findings if f.level == "error")
    with pytest.raises(InputError):
        compile.deployed_query(_seed(pack))


# --- hostile exclusion values (issue 10) -----------------------------------------------------


@pytest.mark.parametrize("pattern", ["(a)\\1", "a*+b", "cmd\\Z", "(?=x)cmd", "(?<!x)cmd"])
def test_regexes_re2_refuses_are_validate_errors_with_file_and_line(
        tmp_path: Path, pattern: str) -> None:
    text = ("exclusions:\n  - name: re\n    reason: r\n    owner: o\n    child: cmd.exe\n"
            f"    command_line: {{regex: '{pattern}'}}\n")
    pack = _pack(tmp_path, text)
    _, findings = validate_paths([tmp_path / "analytics"])
    [error] = [f for f in findings if f.level == "error"]
    assert "not a regex Kusto can run" in error.message and repr(pattern) in error.message
    assert error.path == str(tmp_path / "analytics" / "exclusions" /
                             "web_server_child_process.yaml")
    assert error.line == 6
    with pytest.raises(InputError, match=r"web_server_child_process\.yaml:6: "):
        compile.deployed_query(_seed(pack))


def test_re2_only_syntax_is_accepted_and_runs(tmp_path: Path) -> None:
    text = ("exclusions:\n  - name: letters\n    reason: r\n    owner: o\n"
            "    command_line: {regex: '^cmd\\.exe /c \\p{L}+$'}\n")
    rule = _seed(_pack(tmp_path, text))
    _, findings = validate_paths([tmp_path / "analytics"])
    assert not [f for f in findings if f.level == "error"]
    now = parse_instant("2026-03-01T12:00:00Z")
    base = {"Timestamp": "2026-03-01T11:00:00Z", "FileName": "cmd.exe",
            "InitiatingProcessFileName": "w3wp.exe"}
    rows = [{**base, "DeviceName": "letters", "ProcessCommandLine": "cmd.exe /c whoämi"},
            {**base, "DeviceName": "digits", "ProcessCommandLine": "cmd.exe /c who4mi"}]
    result = run_case(rule, Case("re2", now, {"DeviceProcessEvents": rows},
                                 ({"DeviceName": "x"},)), compile.deployed_query(rule))
    assert [r["DeviceName"] for r in result.got] == ["digits"]


def test_placeholders_in_exclusion_values_stay_literal(tmp_path: Path) -> None:
    from sentinel_t1190.hunt import Window, windowed_query

    text = ("exclusions:\n  - name: literal\n    reason: r\n    owner: o\n"
            "    command_line: {contains: '{{StartTimeISO}} and {{EndTimeISO}}'}\n")
    rule = _seed(_pack(tmp_path, text))
    window = Window(parse_instant("2026-03-01T00:00:00Z"), parse_instant("2026-03-02T00:00:00Z"))
    query = windowed_query(rule, window)
    assert 'ProcessCommandLine contains "{{StartTimeISO}} and {{EndTimeISO}}"' in query
    assert query.count("{{") == 2  # only the exclusion's: the window is filled in
    assert "2026-03-01T00:00:00" in query and "2026-03-02T00:00:00" in query


@pytest.mark.parametrize("name", ["ok\n", "ok\u202e", "o\x1bk", "ok\t"])
def test_names_with_control_characters_are_refused(tmp_path: Path, name: str) -> None:
    import json

    _pack(tmp_path, HCW.replace("name: exchange-hcw", f"name: {json.dumps(name)}"))
    _, findings = validate_paths([tmp_path / "analytics"])
    assert [f.line for f in findings if f.level == "error" and "name:" in f.message] == [2]


def test_export_refuses_a_query_over_sentinels_limit(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    values = ", ".join(f"host-{i:04}.corp.example" for i in range(500))
    text = HCW.replace("    parent: msexchangeservicehost.exe\n", f"    device: [{values}]\n")
    pack = _pack(tmp_path, text)
    rule = _seed(pack)
    _, findings = validate_paths([tmp_path / "analytics"])
    assert [f.code for f in findings if f.level == "error"] == ["query-too-long"]
    for fmt in ("arm", "bicep", "yaml"):
        run = cli("export", "--format", fmt, "--pack", str(tmp_path), "--rule", rule.id)
        assert run.code == 2, (fmt, run.stdout[:200])
        assert run.stdout == ""
        assert "the deployed query is" in run.stderr and "Sentinel allows 10,000" in run.stderr
