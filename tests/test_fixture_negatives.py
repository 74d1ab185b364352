"""Each benign look-alike in the companion fixtures is a near miss the rule really evaluates.

A negative case passes trivially when its events are outside the window (or in a table or
column the query never reads). Here every benign event of the SQL-injection and web-shell
negative cases gets the one change that makes it malicious, and the deployed query must then
return exactly that event: so the event is seen, and only its benign detail keeps it quiet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from sentinel_t1190.compile import deployed_query
from sentinel_t1190.rules import Rule, load_pack
from sentinel_t1190.ruletest import Case, load_cases, run_case

#: Per benign event (by host), the change that turns it into an attack the rule must report.
SQLI_NEAR_MISSES: dict[str, dict[str, Any]] = {
    "b1": {"csUriQuery": "q=union+select+password+from+users"},
    "b2": {"csUriQuery": "q=1+union+select+a+from+the+list"},
    "b3": {"csUriQuery": "name=O'+or+'1'='1&dept=sales+or+marketing"},
    "b4": {"csUriQuery": "topic=sleep(5)&page=information"},
    "b5": {"csUriQuery": "sort=name&order=desc&filter=a%27%20or%201%3D1--"},
    "b6": {"csUriQuery": "1;waitfor+delay+'0:0:5'--"},
    "b7": {"csUriQuery": "x=%C0%AE%E0%80%27+union+select+1--"},
}
WEB_SHELL_NEAR_MISSES: dict[str, dict[str, Any]] = {
    "d1": {"InitiatingProcessFileName": "w3wp.exe"},
    "d2": {"InitiatingProcessFileName": "cmd.exe"},
    "d3": {"FileName": "web.aspx", "FolderPath": "C:\\inetpub\\wwwroot\\web.aspx"},
    "d4": {"FileName": "app.asp", "FolderPath": "C:\\inetpub\\wwwroot\\logs\\app.asp"},
    "d5": {"FileName": "x.aspx", "FolderPath": "C:\\inetpub\\wwwroot\\x.aspx"},
    "d6": {"FolderPath": "C:\\inetpub\\wwwroot\\App_Web_x.aspx"},
    "d7": {"FolderPath": "C:\\inetpub\\wwwroot\\report.php"},
    "d8": {"ActionType": "FileCreated"},
}


def _rule(stem: str) -> Rule:
    [rule] = load_pack().select([stem])
    return rule


def _negative_events(rule: Rule) -> list[tuple[Case, str, Mapping[str, Any]]]:
    cases, problems = load_cases(rule)
    assert not problems
    [table] = rule.tables
    # The cases of independent look-alikes (not the window-edge case, not event groups).
    return [(case, table, event) for case in cases
            if not case.positive and case.name.startswith("benign look-alikes")
            for event in case.events[table]]


def _host(event: Mapping[str, Any]) -> str:
    return str(event.get("Computer") or event.get("DeviceName"))


def _only(case: Case, table: str, event: Mapping[str, Any]) -> Case:
    return Case(name=case.name, now=case.now, events={table: [event]}, expect=())


@pytest.mark.parametrize(("stem", "near_misses"), [
    ("sql_injection_in_request", SQLI_NEAR_MISSES),
    ("web_shell_file_in_web_root", WEB_SHELL_NEAR_MISSES),
])
def test_every_benign_event_fires_once_its_benign_detail_is_changed(
        stem: str, near_misses: dict[str, dict[str, Any]]) -> None:
    rule = _rule(stem)
    query = deployed_query(rule)
    events = _negative_events(rule)
    assert sorted(_host(e) for _, _, e in events) == sorted(near_misses)
    for case, table, event in events:
        host = _host(event)
        quiet = run_case(rule, _only(case, table, event), query)
        assert quiet.error is None and quiet.got == [], host
        attack = {**event, **near_misses[host]}
        loud = run_case(rule, _only(case, table, attack), query)
        assert loud.error is None, loud.error
        assert [_host(row) for row in loud.got] == [host], (host, attack)
