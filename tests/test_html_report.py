"""`--output html`: one self-contained page, checked by parsing it (and in a real browser
when chromium is installed)."""

from __future__ import annotations

import csv
import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sentinel_t1190.html_report import CSP
from tests.identity import Identity

HOSTILE_DEVICE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
HOSTILE_COMMAND = "cmd.exe /c whoami\u202e<a href=https://e.vil>x</a>\x1b[31m"


class Page(HTMLParser):
    """Tags, attributes, and the text of table cells and SVG titles."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.cells: list[str] = []
        self.rows: list[list[str]] = []
        self._open: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag == "td":
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1] == "td":
            self.rows[-1][-1] += data

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)


def check_self_contained(page: Page) -> None:
    """Nothing is fetched or run: the CSP, no script, no URL attribute but SVG's namespace."""
    metas = [a for t, a in page.tags if t == "meta"
             and a.get("http-equiv") == "Content-Security-Policy"]
    assert [m["content"] for m in metas] == [CSP]
    assert page.count("script") == 0 and page.count("img") == 0 and page.count("a") == 0
    assert page.count("link") == 0 and page.count("iframe") == 0
    for tag, attrs in page.tags:
        for name in attrs:
            assert name in ("class", "lang", "charset", "http-equiv", "content", "name",
                            "xmlns", "width", "height", "role", "aria-label", "x", "y",
                            "x1", "y1", "x2", "y2", "stroke", "text-anchor", "font-size",
                            "cx", "cy", "r", "fill", "fill-opacity", "style"), (tag, name)
            if name == "style":
                assert "url(" not in str(attrs[name])


def test_hunt_page_has_the_timeline_and_every_finding(tmp_path: Path,
                                                      cli: Callable[..., Any]) -> None:
    out = tmp_path / "hunt.html"
    as_json = cli("hunt", "--sample", "--timespan", "7d", "--output", "json")
    findings = as_json.json()["findings"]
    result = cli("hunt", "--sample", "--timespan", "7d", "--output", "html", "--out", str(out))
    assert result.code == 0, result.stderr
    page = Page(out.read_text(encoding="utf-8"))
    check_self_contained(page)
    assert page.count("svg") == 1
    assert page.count("circle") == len(findings) > 0
    body = [r for r in page.rows if len(r) > 5]
    assert len(body) == len(findings)
    assert [r[1] for r in body] == [f["DeviceName"] for f in findings]
    labels = {r[0]: int(r[1]) for r in page.rows if len(r) == 2}
    assert labels == as_json.json()["summary"]["by_evidence"]


def test_hostile_telemetry_stays_text(tmp_path: Path, cli: Callable[..., Any]) -> None:
    telemetry = tmp_path / "DeviceProcessEvents.csv"
    with telemetry.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Timestamp", "DeviceName", "AccountName", "FileName",
                         "ProcessCommandLine", "InitiatingProcessFileName", "SHA256"])
        writer.writerow(["2026-03-01T11:00:00Z", HOSTILE_DEVICE, "svc", "cmd.exe",
                         HOSTILE_COMMAND, "w3wp.exe", "aa"])
    out = tmp_path / "hostile.html"
    result = cli("hunt", "--local", str(telemetry), "--now", "2026-03-01T12:00:00Z",
                 "--output", "html", "--out", str(out))
    assert result.code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    check_self_contained(page)
    [row] = [r for r in page.rows if len(r) > 5]
    assert row[1] == HOSTILE_DEVICE
    assert row[-1] == "cmd.exe /c whoami<U+202E><a href=https://e.vil>x</a><U+001B>[31m"
    assert "\u202e" not in text and "\x1b" not in text


def test_backtest_and_health_pages(tmp_path: Path, cli: Callable[..., Any]) -> None:
    from sentinel_t1190.html_report import backtest_page, health_page

    row = {"Timestamp": "2026-03-01T11:00:00Z", "DeviceName": HOSTILE_DEVICE,
           "FileName": "whoami.exe", "ExploitEvidence": "Reconnaissance",
           "InitiatingProcessFileName": "w3wp.exe"}
    backtest = {
        "baseline": {"kind": "git", "revision": "main", "commit": "0" * 40},
        "window": {"start": "2026-02-01T00:00:00Z", "end": "2026-03-01T12:00:00Z"},
        "complete": True, "warnings": [], "summary": {"added": 1, "removed": 2, "unchanged": 7},
        "rules": [{"id": "r", "name": "Web server child", "status": "changed",
                   "added": [row], "removed": [row, row], "unchanged": 7,
                   "exclusions": [{"name": "probe", "suppressed": 0, "share": 0.0,
                                   "flag": "dead-weight"}]}]}
    page = Page(backtest_page(backtest))
    check_self_contained(page)
    assert page.count("circle") == 3
    assert ["Web server child", "changed", "1", "2", "7"] in page.rows
    assert ["Web server child", "probe", "0", "0%", "dead-weight"] in page.rows
    flagged = [a for t, a in page.tags if t == "tr" and a.get("class") == "flagged"]
    assert len(flagged) == 2

    health = {"window": backtest["window"], "workspaces": [{
        "workspace": {"workspace_id": "w", "health_monitoring": True}, "error": None,
        "warnings": [], "rules": [{
            "id": "r", "name": "Web shell", "runs": 3, "failures": 2, "last_run": "t",
            "last_failure": "t", "state": "auto-disabled",
            "failure_reasons": [{"reason": HOSTILE_DEVICE, "count": 2}], "alerts": 1,
            "alerts_per_day": 0.03, "incidents": {"total": 1, "true_positive": 1,
                                                  "false_positive": 0, "benign_positive": 0,
                                                  "undetermined": 0, "open": 0},
            "precision": 1.0, "flags": ["auto-disabled"]}]}]}
    page = Page(health_page(health))
    check_self_contained(page)
    assert page.rows[1][:4] == ["Web shell", "auto-disabled", "3", "2"]
    assert ["Web shell", HOSTILE_DEVICE, "2"] in page.rows


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium is not installed (apt-get install chromium)")
def test_hunt_page_renders_in_headless_chromium(tmp_path: Path, cli: Callable[..., Any]) -> None:
    out = tmp_path / "hunt.html"
    assert cli("hunt", "--sample", "--timespan", "7d", "--output", "html", "--out",
               str(out)).code == 0
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu",
              f"--user-data-dir={tmp_path / 'profile'}", "--no-first-run"]
    dom = subprocess.run([*common, "--dump-dom", out.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    rendered = Page(dom)
    assert rendered.count("circle") == Page(out.read_text(encoding="utf-8")).count("circle")
    assert rendered.count("table") >= 2
    shot = tmp_path / "hunt.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,900", out.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000


def test_live_hunt_page(tmp_path: Path, cli: Callable[..., Any], identity: Identity) -> None:
    from sentinel_t1190.sample import sample_files
    from tests.logs_server import LogsServer

    workspace = "6a1b2c3d-0000-4000-8000-0000000000c1"
    clock = "2026-01-15T12:00:00Z"
    with LogsServer() as server:
        server.add_csv_workspace(workspace, sample_files()[0])
        env = {"SENTINEL_LOGS_ENDPOINT": server.url, "REQUESTS_CA_BUNDLE": server.ca_path}
        as_json = cli("hunt", "--workspace-id", workspace, "--now", clock, "--timespan", "7d",
                      "--output", "json", env=env)
        out = tmp_path / "live.html"
        result = cli("hunt", "--workspace-id", workspace, "--now", clock, "--timespan", "7d",
                     "--output", "html", "--out", str(out), env=env)
    assert result.code == 0, result.stderr
    findings = as_json.json()["findings"]
    page = Page(out.read_text(encoding="utf-8"))
    check_self_contained(page)
    assert page.count("circle") == len(findings) > 0
    assert sorted(r[1] for r in page.rows if len(r) > 5) == sorted(
        f["DeviceName"] for f in findings)
