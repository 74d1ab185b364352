"""Live hunts through the real LogsQueryClient against the loopback Logs API (logs_server.py).

The server executes the posted KQL over the bundled sample telemetry, so "the rows the
seed's KQL returns" is checked against the local engine running the same query.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from random import Random
from typing import Any

import pytest
from conftest import squashed, table_column

from sentinel_t1190 import api
from sentinel_t1190.azure.clouds import resolve_cloud
from sentinel_t1190.azure.credentials import default_credential
from sentinel_t1190.azure.logs import LogsClient, LogsQueryFailed, timespan_for
from sentinel_t1190.errors import AuthError, InputError
from sentinel_t1190.livehunt import Tally, _seen
from sentinel_t1190.render import OutputFormat
from sentinel_t1190.sample import sample_clock, sample_files
from tests.identity import Identity
from tests.logs_server import (
    FORBIDDEN,
    GATEWAY_TIMEOUT,
    THROTTLED,
    LogsServer,
    Scripted,
    engine_error,
    error_body,
    partial_error,
)

WS1 = "11111111-1111-1111-1111-111111111111"
WS2 = "22222222-2222-2222-2222-222222222222"
MISSING = "99999999-9999-9999-9999-999999999999"
CLOCK = "2026-01-15T12:00:00Z"
SEMANTIC_400 = error_body(
    "BadArgumentError", "The request had some invalid properties",
    {"code": "SemanticError", "message": "A semantic error occurred.",
     "innererror": {"code": "SEM0100", "message": "'where' operator: Failed to resolve table "
                    "or column expression named 'AppInsights'"}})


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, identity: Identity) -> Iterator[LogsServer]:
    with LogsServer() as srv:
        srv.add_csv_workspace(WS1, sample_files()[0])
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", srv.ca_path)
        yield srv


def env(server: LogsServer) -> dict[str, str]:
    return {"SENTINEL_LOGS_ENDPOINT": server.url, "REQUESTS_CA_BUNDLE": server.ca_path}


def local_rows(timespan: str, workspace: str | None = WS1) -> list[dict[str, Any]]:
    """The offline hunt's rows, tagged with *workspace* as a live workspace hunt tags them."""
    [result] = api.hunt_local([], sample=True, timespan=timespan)
    tag = {"WorkspaceId": workspace} if workspace else {}
    return [{**row, **tag} for row in result.findings]


def live(server: LogsServer, *args: str, cli: Callable[..., Any]) -> Any:
    return cli("hunt", "--now", CLOCK, *args, env=env(server))


def test_rows_equal_the_seed_kql_over_the_window(server: LogsServer, cli: Any) -> None:
    run = live(server, "--workspace-id", WS1, "--timespan", "7d", "--output", "json", cli=cli)
    assert run.code == 0, run.stderr
    doc = run.json()
    expected = local_rows("7d")
    assert len(expected) > 20
    assert doc["findings"] == expected
    assert doc["complete"] is True and doc["warnings"] == []
    assert doc["window"] == {"start": "2026-01-08T12:00:00Z", "end": "2026-01-15T12:00:00Z"}
    assert doc["summary"]["total"] == len(expected)
    labels: dict[str, int] = {}
    for row in expected:
        labels[row["ExploitEvidence"]] = labels.get(row["ExploitEvidence"], 0) + 1
    assert doc["summary"]["by_evidence"] == dict(sorted(labels.items()))
    devices = {r["DeviceName"] for r in expected}
    assert set(doc["summary"]["by_device"]) == devices
    some = next(iter(devices))
    stamps = sorted(r["Timestamp"] for r in expected if r["DeviceName"] == some)
    assert doc["summary"]["devices"][some]["first_seen"] == stamps[0]
    assert doc["summary"]["devices"][some]["last_seen"] == stamps[-1]
    assert sum(doc["summary"]["by_parent"].values()) == len(expected)
    assert doc["workspaces"] == [{"id": WS1, "status": "complete", "findings": len(expected),
                                  "queries": 7, "splits": 0, "errors": [],
                                  "incomplete": []}]
    # one query per day slice, each asking the server to wait and widened on TimeGenerated
    seen = server.queries(WS1)
    assert len(seen) == 7
    assert {r.headers["Prefer"] for r in seen} == {"wait=180"}
    assert ("2026-01-14T11:00:00.000000Z/2026-01-17T12:00:00.000000Z"
            in {r.body["timespan"] for r in seen})


def test_empty_window(server: LogsServer, cli: Any) -> None:
    run = live(server, "--workspace-id", WS1, "--start", "2025-06-01T00:00:00Z", "--end",
               "2025-06-02T00:00:00Z", "--output", "json", cli=cli)
    assert run.code == 0, run.stderr
    assert run.json()["findings"] == []
    assert run.json()["summary"]["total"] == 0
    assert run.json()["complete"] is True


def test_row_cap_forces_resplits_same_rows_none_twice(server: LogsServer, cli: Any) -> None:
    server.row_cap = 4
    run = live(server, "--workspace-id", WS1, "--timespan", "7d", "--slice", "7d",
               "--output", "json", cli=cli)
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["findings"] == local_rows("7d")
    assert doc["complete"] is True
    assert doc["stats"]["splits"] > 3
    statuses = [r.body["query"] for r in server.queries() if r.rows == 4]
    assert statuses, "the cap was hit at least once"


def test_unrecoverable_partial_is_reported_and_exits_4(server: LogsServer, cli: Any) -> None:
    server.row_cap = 1
    args = ["--workspace-id", WS1, "--timespan", "2d", "--slice", "1d", "--min-slice", "12h",
            "--output", "json"]
    run = live(server, *args, cli=cli)
    assert run.code == 4
    doc = run.json()
    assert doc["complete"] is False
    assert "E_QUERY_RESULT_SET_TOO_LARGE" in " ".join(doc["warnings"])
    assert "incomplete" in run.stderr and "error:" in run.stderr
    assert doc["workspaces"][0]["status"] == "partial"
    assert doc["workspaces"][0]["incomplete"][0]["status"] == "partial"
    allowed = live(server, *args, "--allow-partial", cli=cli)
    assert allowed.code == 0
    assert allowed.json()["complete"] is False


def test_other_partial_errors_are_not_split_and_not_silent(server: LogsServer,
                                                           cli: Any) -> None:
    server.add_reply(Scripted(200, b"", partial=engine_error()))
    run = live(server, "--workspace-id", WS1, "--timespan", "1d", "--output", "json", cli=cli)
    assert run.code == 4
    doc = run.json()
    assert doc["complete"] is False and doc["stats"]["splits"] == 0
    assert "E_OVERFLOW" in doc["warnings"][0]
    assert doc["findings"] == local_rows("1d")  # the rows it did return are kept


def test_429_with_retry_after_then_success(server: LogsServer, cli: Any) -> None:
    server.add_reply(Scripted(429, THROTTLED, {"Retry-After": "1"}))
    run = live(server, "--workspace-id", WS1, "--timespan", "1d", "--output", "json", cli=cli)
    assert run.code == 0, run.stderr
    assert run.json()["findings"] == local_rows("1d")
    first, second = server.queries()
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0  # Retry-After honoured


def test_400_syntax_error_message_reaches_the_user(server: LogsServer, cli: Any) -> None:
    server.add_reply(Scripted(400, SEMANTIC_400))
    run = live(server, "--workspace-id", WS1, "--timespan", "3d", "--output", "json", cli=cli)
    assert run.code == 4
    assert "Failed to resolve table or column expression named 'AppInsights'" in run.stderr
    assert "rejected the query" in run.stderr
    assert len(server.queries()) <= 3  # the other slices were cancelled or never ran


def test_kql_the_service_cannot_parse(server: LogsServer) -> None:
    cloud = resolve_cloud(logs_endpoint=server.url)
    with LogsClient(cloud, default_credential(cloud)) as client, \
            pytest.raises(LogsQueryFailed, match="rejected the query") as info:
        client.query(WS1, "DeviceProcessEvents | where", timespan=None, on_rows=print)
    assert info.value.fatal and info.value.status == 400


def test_403_exits_3(server: LogsServer, cli: Any) -> None:
    server.add_reply(Scripted(403, FORBIDDEN, times=10))
    run = live(server, "--workspace-id", WS1, "--timespan", "1d", cli=cli)
    assert run.code == 3
    assert "insufficient access" in run.stderr and "Log Analytics Reader" in run.stderr


def test_404_workspace(server: LogsServer, cli: Any) -> None:
    run = live(server, "--workspace-id", MISSING, "--timespan", "1d", cli=cli)
    assert run.code == 4
    assert f"workspace {MISSING}: no such workspace" in run.stderr


def test_504_splits_the_slice_and_still_completes(server: LogsServer, cli: Any) -> None:
    server.add_reply(Scripted(504, GATEWAY_TIMEOUT))
    run = live(server, "--workspace-id", WS1, "--timespan", "1d", "--output", "json", cli=cli)
    assert run.code == 0, run.stderr
    assert run.json()["findings"] == local_rows("1d")
    assert run.json()["stats"] == {"queries": 3, "splits": 1}


def test_504_at_the_minimum_slice_is_incomplete(server: LogsServer, cli: Any) -> None:
    server.add_reply(Scripted(504, GATEWAY_TIMEOUT, times=99))
    run = live(server, "--workspace-id", WS1, "--timespan", "1d", "--min-slice", "1d",
               "--output", "json", cli=cli)
    assert run.code == 4
    assert "ADX query timed out" in run.stderr


def test_connection_errors_are_retried_then_reported(identity: Identity) -> None:
    cloud = resolve_cloud(logs_endpoint="https://127.0.0.1:9/v1")
    with LogsClient(cloud, default_credential(cloud), retry_backoff=0.01) as client, \
            pytest.raises(LogsQueryFailed, match="could not be reached"):
        client.query(WS1, "print 1", timespan=None, on_rows=print)


def test_token_failures_are_auth_errors(server: LogsServer, identity: Identity) -> None:
    identity.log_out()
    cloud = resolve_cloud(logs_endpoint=server.url)
    with LogsClient(cloud, default_credential(cloud)) as client, \
            pytest.raises(AuthError, match="token"):
        client.query(WS1, "print 1", timespan=None, on_rows=print)


def test_server_timeout_bounds() -> None:
    cloud = resolve_cloud()
    with pytest.raises(InputError, match=r"1\.\.600"):
        LogsClient(cloud, default_credential(cloud), server_timeout=601)


def test_late_ingested_events_are_not_cut_by_timegenerated(server: LogsServer) -> None:
    # Every event arrives 20 hours after it happened: a timespan equal to the window would
    # lose the events of its last 20 hours.
    server.add_csv_workspace(WS2, sample_files()[0], delay_sql="INTERVAL 20 HOUR")
    out = io.StringIO()
    cloud = resolve_cloud(logs_endpoint=server.url)
    with LogsClient(cloud, default_credential(cloud)) as client:
        [result] = api.hunt_live([WS2], lambda r: out, OutputFormat.ndjson, client=client,
                                 timespan="2d", now=sample_clock(),
                                 request_timespan=lambda w: timespan_for(w.start, w.end))
    assert [json.loads(line) for line in out.getvalue().splitlines()] == local_rows("2d", WS2)
    assert result.complete


def test_one_failing_workspace_does_not_sink_the_others(server: LogsServer, cli: Any) -> None:
    server.add_csv_workspace(WS2, sample_files()[0])
    args = ["--workspace-id", WS1, "--workspace-id", MISSING, "--workspace-id", WS2,
            "--timespan", "2d", "--output", "json"]
    run = live(server, *args, cli=cli)
    assert run.code == 4
    doc = run.json()
    assert doc["complete"] is False
    expected = local_rows("2d", None)
    assert len(doc["findings"]) == 2 * len(expected)
    for ws in (WS1, WS2):
        rows = [r for r in doc["findings"] if r["WorkspaceId"] == ws]
        assert rows == local_rows("2d", ws)
    status = {w["id"]: w["status"] for w in doc["workspaces"]}
    assert status == {WS1: "complete", MISSING: "failed", WS2: "complete"}
    assert any(MISSING in w and "no such workspace" in w for w in doc["warnings"])
    ok = live(server, *args, "--allow-partial", cli=cli)
    assert ok.code == 0


def test_ndjson_and_csv_stream_to_out(server: LogsServer, cli: Any, tmp_path: Path) -> None:
    target = tmp_path / "rows.ndjson"
    run = live(server, "--workspace-id", WS1, "--timespan", "7d", "--output", "ndjson",
               "--out", str(target), cli=cli)
    assert run.code == 0, run.stderr
    lines = target.read_text().splitlines()
    assert [json.loads(x) for x in lines] == local_rows("7d")
    csv_out = tmp_path / "rows.csv"
    run = live(server, "--workspace-id", WS1, "--timespan", "7d", "--output", "csv",
               "--out", str(csv_out), "--fail-on-findings", cli=cli)
    assert run.code == 1
    text = csv_out.read_text().splitlines()
    # the same columns for one workspace as for several: WorkspaceId last
    assert text[0] == ",".join(local_rows("7d")[0])
    assert text[0].startswith("Timestamp,DeviceName,AccountName")
    assert text[0].endswith(",WorkspaceId") and text[1].endswith("," + WS1)
    assert len(text) == len(lines) + 1
    two = live(server, "--workspace-id", WS1, "--workspace-id", WS2, "--timespan", "7d",
               "--output", "csv", cli=cli)
    assert two.stdout.splitlines()[0] == text[0]


def test_table_output(server: LogsServer, cli: Any) -> None:
    run = live(server, "--workspace-id", WS1, "--timespan", "1d", cli=cli)
    assert run.code == 0, run.stderr
    assert "by ExploitEvidence" in run.stdout and WS1 in run.stdout
    lines = run.stdout.splitlines()  # the rule and window before the rows
    total = run.stdout.count("\n2026-01-")
    assert lines[0] == "Web server process spawned a shell or attacker tool (T1190)"
    assert lines[1].startswith("2026-01-14T12:00:00") and "finding(s)" in lines[1]
    assert lines[2].startswith("Time (UTC)") and total > 0


def test_state_runs_never_report_a_finding_twice(server: LogsServer, cli: Any,
                                                 tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = live(server, "--workspace-id", WS1, "--timespan", "5d", "--end",
                 "2026-01-13T12:00:00Z", "--state", str(state), "--overlap", "1d",
                 "--output", "ndjson", cli=cli)
    assert first.code == 0, first.stderr
    saved = json.loads(state.read_text())
    entry = next(iter(saved["rules"].values()))
    assert entry["end"] == "2026-01-13T12:00:00.000000Z" and entry["overlap"] == "P1D"
    second = live(server, "--workspace-id", WS1, "--state", str(state), "--overlap", "1d",
                  "--output", "ndjson", cli=cli)
    assert second.code == 0, second.stderr
    a = [json.loads(x) for x in first.stdout.splitlines()]
    b = [json.loads(x) for x in second.stdout.splitlines()]
    keys = [json.dumps(r, sort_keys=True) for r in a + b]
    assert len(keys) == len(set(keys)), "a finding was reported twice"
    # together they are exactly the hunt over the whole period
    whole = api.hunt_local([], sample=True, start="2026-01-08T12:00:00Z",
                           end=CLOCK)[0].findings
    assert sorted(keys) == sorted(json.dumps({**r, "WorkspaceId": WS1}, sort_keys=True)
                                  for r in whole)
    assert any(r["Timestamp"] > "2026-01-12T12:00:00" for r in a), "the overlap had findings"
    third = live(server, "--workspace-id", WS1, "--state", str(state), "--start",
                 "2026-01-01T00:00:00Z", cli=cli)
    assert third.code == 2 and "drop --start" in third.stderr


def test_incomplete_runs_do_not_advance_the_state(server: LogsServer, cli: Any,
                                                  tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    server.add_reply(Scripted(200, b"", partial=engine_error()))
    run = live(server, "--workspace-id", WS1, "--timespan", "1d", "--state", str(state),
               "--allow-partial", "--output", "json", cli=cli)
    assert run.code == 0
    assert not state.exists()
    assert any("not advanced" in w for w in run.json()["warnings"])


@pytest.mark.parametrize("content", ["{not json", '{"version": 9, "rules": {}}',
                                     '{"version": 1, "rules": {"x": {"end": "soon"}}}'])
def test_corrupt_state_file_exits_2(server: LogsServer, cli: Any, tmp_path: Path,
                                    content: str) -> None:
    state = tmp_path / "state.json"
    state.write_text(content)
    run = live(server, "--workspace-id", WS1, "--state", str(state), cli=cli)
    assert run.code == 2
    assert f"state file {state}" in run.stderr and "deliberately" in run.stderr
    assert state.read_text() == content  # never silently reset
    assert server.queries() == []


def test_workspace_names_are_refused_before_any_query(server: LogsServer, cli: Any) -> None:
    run = live(server, "--workspace-id", "my-sentinel-workspace", cli=cli)
    assert run.code == 2 and "not a workspace ID" in run.stderr
    assert server.queries() == []


@pytest.mark.parametrize("order", ["newest first", "oldest first", "two runs", "shuffled",
                                   "with nulls"])
def test_first_and_last_seen_in_any_order(order: str) -> None:
    rnd = Random(order)
    devices = [f"web-{rnd.randrange(7)}" for _ in range(300)]
    stamps: list[Any] = sorted(f"2026-01-{rnd.randrange(1, 29):02d}" for _ in devices)
    if order == "newest first":
        stamps.reverse()
    elif order == "two runs":
        stamps = stamps[150:] + stamps[:150]
    elif order in ("shuffled", "with nulls"):
        rnd.shuffle(stamps)
        stamps[::9] = [None] * len(stamps[::9]) if order == "with nulls" else stamps[::9]
    tally = Tally(first_seen={"web-0": "2026-01-15"}, last_seen={"web-0": "2026-01-15"})
    _seen(tally, devices, stamps)
    first, last = {"web-0": "2026-01-15"}, {"web-0": "2026-01-15"}
    for device, stamp in zip(devices, stamps, strict=True):
        if stamp is not None:
            first[device] = min(first.get(device, stamp), stamp)
            last[device] = max(last.get(device, stamp), stamp)
    assert tally.first_seen == first and tally.last_seen == last
    assert len(first) == 7


def test_no_credential_is_one_error_line_and_nothing_on_stdout(
        cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, identity: Identity) -> None:
    # The real DefaultAzureCredential, narrowed to a service principal the environment lacks.
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
    run = cli("hunt", "--workspace-id", "00000000-0000-0000-0000-000000000000")
    assert run.code == 3
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: ")
    assert "--debug shows why each credential failed" in run.stderr


# --- attacker-controlled text in live output (DESIGN §7) -------------------------------------


def _hostile_workspace(server: LogsServer, tmp_path: Path) -> None:
    """WS2: the sample, plus a finding whose command line holds markup and escape codes."""
    lines = Path(sample_files()[0]).read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    row = dict.fromkeys(header, "")
    row.update({"Timestamp": "2026-01-15T06:00:00.0000000Z", "DeviceName": "web-[01]",
                "FileName": "powershell.exe", "InitiatingProcessFileName": "w3wp.exe",
                "ProcessCommandLine": "powershell [/] [char]105 \x1b]0;x\x07 \u202etxt.exe",
                "ProcessId": "1", "InitiatingProcessId": "2", "ReportId": "3"})
    path = tmp_path / "hostile.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerow(row)
    server.add_csv_workspace(WS2, str(path))


def test_state_run_with_markup_in_a_command_line_prints_it_and_saves_state(
        server: LogsServer, cli: Any, tmp_path: Path) -> None:
    _hostile_workspace(server, tmp_path)
    state = tmp_path / "state.json"
    run = cli("hunt", "--now", CLOCK, "--workspace-id", WS2, "--timespan", "1d", "--state",
              str(state), env={**env(server), "COLUMNS": "300"})  # room for the whole value
    assert run.code == 0, (run.stderr, run.exception)
    assert table_column(run.stdout, "Command line") == squashed(
        "powershell [/] [char]105 <U+001B>]0;x<U+0007> <U+202E>txt.exe")
    assert table_column(run.stdout, "Device") == squashed("web-[01]")
    assert "\x1b" not in run.stdout and "\u202e" not in run.stdout
    assert json.loads(state.read_text())["rules"]


def test_service_messages_with_brackets_in_warnings(server: LogsServer, cli: Any) -> None:
    server.add_reply(Scripted(200, b"", partial=partial_error(
        "-1", "bad [/] value [bold]x\x1b[2J")))
    run = live(server, "--workspace-id", WS1, "--timespan", "1d", "--allow-partial", cli=cli)
    assert run.code == 0, (run.stderr, run.exception)
    assert "bad [/] value [bold]x<U+001B>[2J" in " ".join(run.stderr.split())
    assert "\x1b" not in run.stderr


def test_progress_lines_on_stderr_for_ci_logs(server: LogsServer, cli: Any) -> None:
    run = live(server, "--workspace-id", WS1, "--timespan", "7d", "--output", "json",
               "--progress-every", "0", cli=cli)
    assert run.code == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("hunting ")]
    assert len(lines) == 7  # one per day slice
    total = run.json()["summary"]["total"]
    assert lines[-1].endswith(f": 100% of the window searched, 7 slice(s), {total} finding(s)")
    assert "14% of the window searched, 1 slice(s)" in lines[0]
    # By default a short hunt stays quiet.
    quiet = live(server, "--workspace-id", WS1, "--timespan", "7d", "--output", "json", cli=cli)
    assert "hunting " not in quiet.stderr
