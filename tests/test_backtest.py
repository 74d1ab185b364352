"""`backtest`: the current pack against a baseline (folder or git revision) over local data."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190.backtest import RunOutput, diff_rows
from sentinel_t1190.reports import backtest_markdown, md
from sentinel_t1190.rules import default_pack_dir
from tests.identity import Identity

CLOCK = "2026-01-15T12:00:00Z"  # the sample telemetry's clock
SEED = "Web server process spawned a shell or attacker tool (T1190)"
EXCLUSIONS = """exclusions:
  - name: iis02-whoami
    reason: monitoring probe runs whoami from the Default app pool
    owner: web@example.com
    device: web-iis-02.corp.example
    parent: w3wp.exe
    child: whoami.exe
  - name: retired-host
    reason: decommissioned server
    owner: web@example.com
    device: web-old-99.corp.example
"""
EXCLUDED = "analytics/exclusions/web_server_child_process.yaml"


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t",
                    *args], check=True, capture_output=True)


@pytest.fixture
def pack(tmp_path: Path, cli: Callable[..., Any]) -> Path:
    """A pack from `init`, committed in its own git repository."""
    folder = tmp_path / "pack"
    assert cli("init", str(folder)).code == 0
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "starter pack")
    return folder


def backtest(cli: Callable[..., Any], pack: Path, *args: str,
             env: dict[str, str] | None = None) -> Any:
    return cli("backtest", "--pack", str(pack), "--local",
               str(pack / "telemetry/DeviceProcessEvents.csv"), "--now", CLOCK,
               "--timespan", "30d", *args, env=env)


def seed_hunt(cli: Callable[..., Any], pack: Path) -> list[dict[str, Any]]:
    result = cli("hunt", "--pack", str(pack), "--local",
                 str(pack / "telemetry/DeviceProcessEvents.csv"), "--now", CLOCK,
                 "--timespan", "30d", "--output", "json")
    assert result.code == 0, result.stderr
    rows: list[dict[str, Any]] = result.json()["findings"]
    return rows


def test_an_exclusion_shows_as_exactly_its_findings_removed(pack: Path,
                                                           cli: Callable[..., Any]) -> None:
    before = seed_hunt(cli, pack)
    (pack / EXCLUDED).write_text(EXCLUSIONS)
    after = seed_hunt(cli, pack)
    gone = [r for r in before if r not in after]
    assert len(gone) == 3

    result = backtest(cli, pack, "--baseline", "HEAD", "--output", "json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["baseline"]["kind"] == "git"
    assert re.fullmatch(r"[0-9a-f]{40}", document["baseline"]["commit"])
    assert document["complete"] is True
    [seed] = [r for r in document["rules"] if r["name"] == SEED]
    assert seed["status"] == "changed"
    assert seed["removed"] == gone
    assert seed["added"] == []
    assert seed["unchanged"] == len(after)
    assert {e["name"]: (e["suppressed"], e["flag"]) for e in seed["exclusions"]} == {
        "iis02-whoami": (3, None), "retired-host": (0, "dead-weight")}
    # rules without data in the files are reported as skipped, not as silently unchanged
    skipped = [r for r in document["rules"] if r["status"] == "skipped"]
    assert len(skipped) == 3 and all(r["unchanged"] == 0 for r in skipped)
    assert "not backtested" in result.stderr

    failing = backtest(cli, pack, "--baseline", "HEAD", "--fail-on-removed")
    assert failing.code == 1
    assert backtest(cli, pack, "--baseline", "HEAD", "--fail-on-added").code == 0


def test_the_original_bundled_pack_as_a_folder_baseline(pack: Path,
                                                        cli: Callable[..., Any]) -> None:
    (pack / EXCLUDED).write_text(EXCLUSIONS)
    result = backtest(cli, pack, "--baseline", str(default_pack_dir()), "--rule",
                      "web_server_child_process", "--output", "json")
    assert result.code == 0, result.stderr
    [seed] = result.json()["rules"]
    assert len(seed["removed"]) == 3
    assert {r["DeviceName"] for r in seed["removed"]} == {"web-iis-02.corp.example"}

    # the other way round the same findings come back: added
    reverse = cli("backtest", "--pack", str(default_pack_dir()), "--baseline", str(pack),
                  "--local", str(pack / "telemetry/DeviceProcessEvents.csv"), "--now", CLOCK,
                  "--timespan", "30d", "--rule", "web_server_child_process",
                  "--fail-on-added", "--output", "json")
    assert reverse.code == 1
    [seed_back] = reverse.json()["rules"]
    assert seed_back["added"] == seed["removed"] and seed_back["removed"] == []


def test_a_deleted_and_a_new_rule(pack: Path, tmp_path: Path, cli: Callable[..., Any]) -> None:
    baseline = tmp_path / "baseline"
    shutil.copytree(pack, baseline)
    for folder in ("analytics", "hunting"):
        (pack / folder / "web_server_child_process.yaml").rename(
            pack / folder / "web_server_child_process.yaml.off")
    result = backtest(cli, pack, "--baseline", str(baseline), "--output", "json")
    assert result.code == 0, result.stderr
    [deleted] = [r for r in result.json()["rules"] if r["status"] == "deleted"]
    assert deleted["name"] == SEED and len(deleted["removed"]) == 38
    reverse = cli("backtest", "--pack", str(baseline), "--baseline", str(pack), "--local",
                  str(pack / "telemetry/DeviceProcessEvents.csv"), "--now", CLOCK,
                  "--timespan", "30d", "--output", "json")
    [new] = [r for r in reverse.json()["rules"] if r["status"] == "new"]
    assert new["name"] == SEED and len(new["added"]) == 38


@pytest.mark.parametrize("baseline", ["no-such-ref", "--upload-pack=touch"])
def test_a_baseline_that_is_neither_folder_nor_revision(pack: Path, cli: Callable[..., Any],
                                                        baseline: str) -> None:
    result = backtest(cli, pack, f"--baseline={baseline}")
    assert result.code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_rows_are_compared_as_multisets_over_shared_columns() -> None:
    row = {"Timestamp": "t1", "DeviceName": "a", "Extra": 1}
    current = RunOutput(["Timestamp", "DeviceName", "Extra"],
                        [row, row, {"Timestamp": "t2", "DeviceName": "b", "Extra": 2}])
    baseline = RunOutput(["Timestamp", "DeviceName"],
                         [{"Timestamp": "t1", "DeviceName": "a"},
                          {"Timestamp": "t3", "DeviceName": "c"}])
    added, removed, unchanged = diff_rows(current, baseline)
    assert unchanged == 1
    assert added == [row, {"Timestamp": "t2", "DeviceName": "b", "Extra": 2}]
    assert removed == [{"Timestamp": "t3", "DeviceName": "c"}]


def test_markdown_keeps_hostile_values_inside_their_cell() -> None:
    hostile = "x | <img src=x onerror=alert(1)> [a](http://e.vil) @org/team `c`\n| forged |"
    document = {
        "baseline": {"kind": "folder", "path": "base"}, "window": {"start": "s", "end": "e"},
        "complete": True, "warnings": [], "summary": {"added": 1, "removed": 0, "unchanged": 0},
        "rules": [{"id": "r", "name": "rule <b>x</b>", "status": "changed",
                   "added": [{"Timestamp": "t", "DeviceName": hostile, "AccountName": "a",
                              "FileName": "f", "ExploitEvidence": "e"}],
                   "removed": [], "unchanged": 0, "exclusions": []}]}
    text = backtest_markdown(document)
    # Rendered as GitHub would (CommonMark + tables; markdown-it-py comes with rich).
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").enable("table").render(text)

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.rows: list[list[str]] = []

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            self.tags.append(tag)
            if tag == "tr":
                self.rows.append([])
            elif tag == "td":
                self.rows[-1].append("")

        def handle_endtag(self, tag: str) -> None:
            if tag == "td":
                self.tags.append("/td")

        def handle_data(self, data: str) -> None:
            if self.tags and self.tags[-1] == "td" and self.rows:
                self.rows[-1][-1] += data

    parsed = Cells()
    parsed.feed(rendered)
    assert not {"img", "a", "b", "script", "code"} & set(parsed.tags)
    [finding] = [row for row in parsed.rows if any("onerror" in c for c in row)]
    assert len(finding) == 5
    assert finding[1] == hostile.replace("\n", "<U+000A>")
    assert md("a|b") == "a\\|b"


def test_a_live_backtest_runs_both_versions_in_the_workspace(
        pack: Path, cli: Callable[..., Any], identity: Identity) -> None:
    from sentinel_t1190.sample import sample_files
    from tests.logs_server import LogsServer

    workspace = "6a1b2c3d-0000-4000-8000-0000000000b7"
    (pack / EXCLUDED).write_text(EXCLUSIONS)
    local = backtest(cli, pack, "--baseline", "HEAD", "--timespan", "7d", "--output", "json")
    [local_seed] = [r for r in local.json()["rules"] if r["name"] == SEED]
    with LogsServer() as server:
        server.add_csv_workspace(workspace, sample_files()[0])
        result = cli("backtest", "--pack", str(pack), "--baseline", "HEAD", "--workspace-id",
                     workspace, "--now", CLOCK, "--timespan", "7d", "--output", "json",
                     "--fail-on-removed",
                     env={"SENTINEL_LOGS_ENDPOINT": server.url,
                          "REQUESTS_CA_BUNDLE": server.ca_path})
        queried = {q.body["query"].split("\n", 1)[0] for q in server.queries(workspace)}
    assert result.code == 1, result.stderr
    document = result.json()
    assert document["source"] == {"kind": "workspaces", "workspaces": [workspace]}
    assert document["complete"] is True
    [seed] = [r for r in document["rules"] if r["name"] == SEED]
    key = ("DeviceName", "InitiatingProcessFileName", "FileName", "ProcessCommandLine")
    assert sorted(tuple(r[k] for k in key) for r in seed["removed"]) == sorted(
        tuple(r[k] for k in key) for r in local_seed["removed"])
    assert len(seed["removed"]) == 3 and seed["unchanged"] == local_seed["unchanged"]
    assert {e["name"]: e["suppressed"] for e in seed["exclusions"]} == {
        "iis02-whoami": 3, "retired-host": 0}
    # the rules whose tables the workspace lacks are skipped with the service's reason
    skipped = [r for r in document["rules"] if r["status"] == "skipped"]
    assert len(skipped) == 3
    assert "not backtested" in result.stderr and "rejected the query" in result.stderr
    assert queried  # the queries really went to the workspace


def test_the_deployed_rules_as_the_baseline(pack: Path, tmp_path: Path,
                                            cli: Callable[..., Any], identity: Identity) -> None:
    from tests.azure_server import AzureServer

    with AzureServer(tmp_path) as arm:
        ws = arm.add_workspace()
        where = ("--subscription-id", ws.subscription_id, "--resource-group",
                 ws.resource_group, "--workspace", ws.name)
        deployed = cli("deploy", "--pack", str(pack), *where, "--rule",
                       "web_server_child_process", "--output", "json", env=arm.env)
        assert deployed.code == 0, deployed.stderr
        same = backtest(cli, pack, "--baseline", "deployed", *where, "--rule",
                        "web_server_child_process", "--output", "json", env=arm.env)
        (pack / EXCLUDED).write_text(EXCLUSIONS)
        changed = backtest(cli, pack, "--baseline", "deployed", *where, "--output", "json",
                           "--fail-on-removed", env=arm.env)
    assert same.code == 0, same.stderr
    [seed] = same.json()["rules"]
    assert (seed["status"], seed["added"], seed["removed"]) == ("unchanged", [], [])
    assert seed["unchanged"] == 38
    assert changed.code == 1, changed.stderr
    document = changed.json()
    assert document["baseline"]["kind"] == "deployed"
    assert document["baseline"]["workspace"] == ws.name
    by_name = {r["name"]: r for r in document["rules"]}
    assert len(by_name[SEED]["removed"]) == 3 and by_name[SEED]["added"] == []
    assert {r["DeviceName"] for r in by_name[SEED]["removed"]} == {"web-iis-02.corp.example"}
    # the rules never deployed there are new; rules without data are skipped
    assert {r["status"] for r in document["rules"] if r["name"] != SEED} <= {"new", "skipped"}
    assert any(r["status"] == "new" for r in document["rules"])


def test_a_deployed_query_is_windowed_like_the_hunting_queries() -> None:
    from sentinel_t1190.backtest import windowed
    from sentinel_t1190.rules import load_pack

    query = ("W3CIISLog\n  | where TimeGenerated > ago(1h)\n| where csUriQuery has 'x'\n"
             "| union (\n  DeviceNetworkEvents\n  | where Timestamp > ago( 2h )\n)\n")
    assert windowed(query, ["W3CIISLog", "DeviceNetworkEvents"]) == (
        "let starttime = todatetime('{{StartTimeISO}}');\n"
        "let endtime = todatetime('{{EndTimeISO}}');\n"
        "W3CIISLog\n  | where TimeGenerated > starttime and TimeGenerated <= endtime\n"
        "| where csUriQuery has 'x'\n| union (\n  DeviceNetworkEvents\n"
        "  | where Timestamp > starttime and Timestamp <= endtime\n)\n")
    assert windowed("W3CIISLog\n| where TimeGenerated > ago(1h)\n", ["DeviceProcessEvents"]
                    ) is None
    assert windowed("W3CIISLog\n| where csUriQuery has 'x'\n", ["W3CIISLog"]) is None
    # the pack's rules: windowed scheduled query = hunting query, but for the entity column
    for rule in load_pack().rules:
        assert rule.hunting is not None
        text = windowed(rule.query, rule.tables)
        assert text is not None, rule.path
        assert text.replace('| extend FileHashAlgorithm = "SHA256"\n', "") == (
            rule.hunting.query), rule.path
