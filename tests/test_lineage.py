"""lineage: which table columns a query needs (deciding rows) and reads (output), per branch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sentinel_t1190.compile import deployed_query, hunting_query
from sentinel_t1190.errors import InputError
from sentinel_t1190.lineage import table_uses
from sentinel_t1190.rules import Rule, load_pack

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _rule(stem: str) -> Rule:
    [rule] = load_pack().select([stem])
    return rule


def test_log4shell_union_branches_need_only_their_own_columns() -> None:
    uses = table_uses(deployed_query(_rule("log4shell_jndi_lookup")))
    assert set(uses) == {"W3CIISLog", "CommonSecurityLog", "DeviceNetworkEvents"}
    cef, net = uses["CommonSecurityLog"], uses["DeviceNetworkEvents"]
    # Output names of this branch (ProcessName, RemotePort = int(null)) and other branches'
    # columns (Computer, DeviceName, RemoteIP) are no CommonSecurityLog column it reads.
    assert not {"ProcessName", "RemotePort", "Computer", "DeviceName", "RemoteIP"} & cef.read
    assert cef.needed == {"TimeGenerated", "RequestURL", "RequestClientApplication",
                          "RequestContext", "RequestCookies", "AdditionalExtensions"}
    assert cef.read - cef.needed == {"DestinationHostName", "DestinationIP", "SourceIP",
                                     "SourceUserName"}
    # The Defender branch filters on Timestamp: TimeGenerated is not even read.
    assert "TimeGenerated" not in net.read
    assert {"Timestamp", "RemotePort", "RemoteIPType", "RemoteUrl", "ActionType",
            "InitiatingProcessFileName"} == net.needed
    assert [[b.describe(NOW) for b in w] for w in net.windows] == [
        ["Timestamp > 2026-03-01T11:00:00Z"]]


def test_projected_only_columns_are_read_not_needed() -> None:
    [use] = table_uses(deployed_query(_rule("sql_injection_in_request"))).values()
    assert use.needed == {"TimeGenerated", "csUriQuery", "csUriStem"}
    assert use.read - use.needed == {"Computer", "sSiteName", "cIP", "csMethod", "scStatus",
                                     "csUserAgent"}


def test_hunting_window_has_both_bounds() -> None:
    rule = _rule("web_server_child_process")
    query = hunting_query(rule)
    assert query is not None
    query = (query.replace("{{StartTimeISO}}", "2026-03-01T11:00:00Z")
             .replace("{{EndTimeISO}}", "2026-03-01T12:00:00Z"))
    [use] = table_uses(query).values()
    assert [b.describe(NOW) for b in use.windows[0]] == [
        "Timestamp > 2026-03-01T11:00:00Z", "Timestamp <= 2026-03-01T12:00:00Z"]


@pytest.mark.parametrize(("kql", "needed", "read"), [
    # No project: every column is output; only the filter decides rows.
    ("W3CIISLog | where cIP == '1'", {"cIP"}, "all"),
    # A computed column used in a filter makes its inputs needed.
    ("W3CIISLog | extend U = strcat(csUriStem, csUriQuery) | where U has 'x' | project cIP",
     {"csUriStem", "csUriQuery"}, {"csUriStem", "csUriQuery", "cIP"}),
    # A renamed column filtered after the project is the original column.
    ("W3CIISLog | project Ip = cIP, Host = Computer | where Ip == '1'", {"cIP"},
     {"cIP", "Computer"}),
    # project-away hides a column from later operators.
    ("W3CIISLog | project-away sSiteName | where cIP == '1' | project sSiteName = 'x'",
     {"cIP"}, {"cIP"}),
    # Summarize keys and aggregates decide the rows.
    ("W3CIISLog | summarize n = count() by cIP, bin(TimeGenerated, 1h)",
     {"cIP", "TimeGenerated"}, {"cIP", "TimeGenerated"}),
    # Sort only orders: read, not needed.
    ("W3CIISLog | where scStatus == '500' | project cIP | sort by cIP", {"scStatus"},
     {"scStatus", "cIP"}),
])
def test_needed_and_read(kql: str, needed: set[str], read: set[str] | str) -> None:
    use = table_uses(kql)["W3CIISLog"]
    assert use.needed == needed
    if read == "all":
        assert "sSiteName" in use.read and "csBytes" in use.read
    else:
        assert use.read == read


def test_join_keys_and_subqueries_are_needed() -> None:
    uses = table_uses("DeviceProcessEvents | where FileName in ((DeviceFileEvents "
                      "| where FolderPath has 'www' | project FileName)) "
                      "| join kind=inner (DeviceNetworkEvents | project DeviceId, RemoteIP) "
                      "on DeviceId | project DeviceName, RemoteIP")
    assert uses["DeviceProcessEvents"].needed == {"FileName", "DeviceId"}
    assert uses["DeviceFileEvents"].needed == {"FolderPath", "FileName"}
    assert uses["DeviceNetworkEvents"].needed == {"DeviceId"}
    assert uses["DeviceNetworkEvents"].read == {"DeviceId", "RemoteIP"}


def test_bad_kql_is_an_input_error() -> None:
    with pytest.raises(InputError, match="does not parse"):
        table_uses("W3CIISLog | where (")
