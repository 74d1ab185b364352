"""Malformed service answers end as a named failure of that slice or target (exit 4), never
as a "complete" result and never as a traceback (issue 10, item 3).

Logs answers come from the loopback Logs API (tests/logs_server.py) through the real
LogsQueryClient; the fixtures are test_hunt_live's.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from sentinel_t1190 import api
from tests import test_hunt_live
from tests.logs_server import THROTTLED, LogsServer, Scripted
from tests.test_hunt_live import WS1, live

#: The loopback Logs API with the sample telemetry in WS1 (test_hunt_live's fixture).
server = test_hunt_live.server

TWO_COLUMNS = '"columns":[{"name":"a","type":"string"},{"name":"b","type":"string"}]'
LOGS_MALFORMED = {
    "empty body": b"",
    "empty object": b"{}",
    "no tables": b'{"tables":[]}',
    "only an error": b'{"error":{"code":"BadThing","message":"went wrong"}}',
    "short row": ('{"tables":[{' + TWO_COLUMNS + ',"rows":[["x"]]}]}').encode(),
    "long row": ('{"tables":[{' + TWO_COLUMNS + ',"rows":[["x","y","z"]]}]}').encode(),
    "not JSON": b"<html>502 Bad Gateway</html>",
}


@pytest.mark.parametrize("answer", LOGS_MALFORMED.values(), ids=LOGS_MALFORMED.keys())
def test_a_malformed_logs_answer_fails_the_hunt_never_complete(
        server: LogsServer, cli: Any, answer: bytes) -> None:
    server.add_reply(Scripted(200, answer, times=99))
    run = live(server, "--workspace-id", WS1, "--timespan", "2d", "--output", "json",
               cli=cli)
    assert run.code == 4, run.stdout
    assert run.stderr.startswith(f"error: workspace {WS1}: unreadable answer from the Logs API")
    assert ("Traceback" not in run.stderr and run.exception is None) or \
        isinstance(run.exception, SystemExit)
    assert len(server.queries()) == 2  # one per slice: the same answer is not asked again


def test_one_malformed_slice_makes_the_hunt_incomplete_and_names_it(
        server: LogsServer, cli: Any) -> None:
    server.add_reply(Scripted(200, b"{}"))
    run = live(server, "--workspace-id", WS1, "--timespan", "2d", "--output", "json",
               cli=cli)
    assert run.code == 4
    doc = run.json()
    assert doc["complete"] is False
    [warning] = [w for w in doc["warnings"] if "incomplete" in w]
    assert WS1 in warning and "no result table" in warning and "→" in warning
    [ws] = doc["workspaces"]
    assert ws["status"] == "partial" and ws["incomplete"][0]["status"] == "failed"
    # the other slice's findings are kept, exactly
    failed, window = ws["incomplete"][0], doc["window"]
    other = ((window["start"], failed["start"]) if failed["end"] == window["end"]
             else (failed["end"], window["end"]))
    [kept] = api.hunt_local([], sample=True, start=other[0], end=other[1])
    assert doc["findings"] == [{**row, "WorkspaceId": WS1} for row in kept.findings]
    allowed = live(server, "--workspace-id", WS1, "--timespan", "2d", "--allow-partial",
                   cli=cli)
    assert allowed.code == 0


def test_retry_after_past_the_cap_fails_the_slice_at_once(server: LogsServer, cli: Any) -> None:
    server.add_reply(Scripted(429, THROTTLED, {"Retry-After": "3600"}, times=99))
    started = time.monotonic()
    run = live(server, "--workspace-id", WS1, "--timespan", "2d", "--output", "json",
               cli=cli)
    assert time.monotonic() - started < 30
    assert run.code == 4
    assert "asked to wait 3600 s" in run.stderr and "--max-retry-after" in run.stderr
    assert [q.status for q in server.queries()] == [429, 429]  # one per slice, no retry


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_retry_after_cap_is_configurable(server: LogsServer, cli: Any, how: str) -> None:
    server.add_reply(Scripted(429, THROTTLED, {"Retry-After": "1"}, times=1))
    args = ["--workspace-id", WS1, "--timespan", "1d", "--output", "json"]
    env = test_hunt_live.env(server)
    cap = ["--max-retry-after", "0.5"] if how == "option" else []
    if how == "environment":
        env["SENTINEL_MAX_RETRY_AFTER"] = "0.5"
    refused = cli("hunt", "--now", test_hunt_live.CLOCK, *args, *cap, env=env)
    assert refused.code == 4 and "asked to wait 1 s" in refused.stderr
    server.add_reply(Scripted(429, THROTTLED, {"Retry-After": "1"}, times=1))
    waited = cli("hunt", "--now", test_hunt_live.CLOCK, *args, "--max-retry-after", "2",
                 env=env)
    assert waited.code == 0, waited.stderr
    assert [q.status for q in server.queries()][-2:] == [429, 200]
