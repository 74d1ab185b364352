"""Property tests: whatever JSON (or bytes) a service answers with, parsing ends in a result of
the documented shape or one of our errors — never another exception (issue 10, item 7).

Fixed seed and no example database (nothing written outside tmp_path), a few hundred
examples each. The ARM and Resource Graph properties go through the real SDK clients (and
the real DefaultAzureCredential, signed in through the fake ``az``) to the loopback fleet
server, one server for all examples.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from sentinel_t1190.azure import arm, resourcegraph
from sentinel_t1190.azure.clouds import resolve_cloud
from sentinel_t1190.azure.credentials import default_credential
from sentinel_t1190.deploy import TableCheck, Target, WorkspaceInfo
from sentinel_t1190.errors import SentinelT1190Error
from sentinel_t1190.logs_response import ResponseFormatError, parse_chunks
from tests.azure_server import Reply, Request, Workspace
from tests.fleet_server import FleetServer, client_kwargs
from tests.identity import signed_in

SEED = 1190
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
#: Through HTTP and the SDK: fewer examples, each is a request.
FUZZ_HTTP = settings(FUZZ, max_examples=200)

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=30))
json_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                     st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20)
TYPES = ["string", "datetime", "long", "int", "real", "bool", "dynamic", "guid", 7]


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """*valid* three times in four, anything JSON otherwise."""
    return st.sampled_from([True, True, True, False]).flatmap(
        lambda ok: valid if ok else json_values)


@st.composite
def near_logs_answers(draw: st.DrawFn, types: list[Any] = TYPES) -> Any:
    """Logs API answers that are right or a little wrong in any part."""
    width = draw(st.integers(0, 4))
    columns = [draw(mostly(st.fixed_dictionaries({"name": st.text(max_size=8),
                                                  "type": st.sampled_from(types)})))
               for _ in range(width)]
    cell = st.one_of(scalars, st.just("2026-01-10T11:59:31.8731150Z"),
                     st.just("2026-01-10T11:59:31Z"))
    ragged = draw(st.integers(0, 3)) == 0
    row = (st.lists(st.one_of(cell, json_values), min_size=max(0, width - 1),
                    max_size=width + 1) if ragged
           else st.lists(cell, min_size=width, max_size=width))
    table: dict[str, Any] = {"name": "PrimaryResult", "columns": columns,
                             "rows": draw(st.lists(row, max_size=5))}
    for key in draw(st.sets(st.sampled_from(["name", "columns", "rows"]), max_size=1)):
        if draw(st.booleans()):
            table[key] = draw(json_values)  # one part replaced by anything
    answer: dict[str, Any] = {"tables": draw(mostly(st.just([table])))}
    if draw(st.integers(0, 3)) == 0:
        answer["error"] = draw(st.one_of(json_values, st.fixed_dictionaries(
            {"code": st.text(max_size=5), "message": st.text(max_size=10)})))
    return answer


def _chunks(data: bytes, cut: int) -> list[bytes]:
    return [data[i:i + cut] for i in range(0, len(data), cut)] or [b""]


@seed(SEED)
@FUZZ
@given(answer=st.one_of(json_values, near_logs_answers()), cut=st.integers(1, 64),
       batch=st.sampled_from([8, 1 << 17]), spaced=st.booleans())
def test_any_logs_answer_parses_to_a_result_or_a_format_error(
        answer: Any, cut: int, batch: int, spaced: bool) -> None:
    data = json.dumps(answer, separators=(", ", ": ") if spaced else (",", ":")).encode()
    rows: list[list[Any]] = []
    try:
        result = parse_chunks(_chunks(data, cut), rows.extend, batch_chars=batch)
    except ResponseFormatError:
        event("refused")
        return
    event("a result")
    assert result.tables >= 1 and result.columns
    assert all(isinstance(name, str) for name in result.columns)
    assert result.rows == len(rows)
    assert all(len(row) == len(result.columns) for row in rows)
    assert result.error is None or isinstance(result.error, dict)


@seed(SEED)
@FUZZ
@given(data=st.binary(max_size=200), cut=st.integers(1, 16))
def test_any_bytes_parse_to_a_result_or_a_format_error(data: bytes, cut: int) -> None:
    rows: list[list[Any]] = []
    try:
        result = parse_chunks(_chunks(data, cut), rows.extend, batch_chars=8)
    except ResponseFormatError:
        return
    assert all(len(row) == len(result.columns) for row in rows)


# --- ARM and Resource Graph through the SDK ---------------------------------------------------


class _Scripted:
    """The fault answering every matching request with the current example's body."""

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self.contains = ""

    def __call__(self, request: Request) -> Reply | None:
        if self.reply is None or self.contains.lower() not in request.path.lower():
            return None
        return self.reply


class _TokenOnce:
    """The real DefaultAzureCredential (signed in through the fake ``az``), asked once: a
    new client per example must not start ``az`` hundreds of times."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential
        self._tokens: dict[tuple[str, ...], Any] = {}

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        if scopes not in self._tokens:
            self._tokens[scopes] = self._credential.get_token(*scopes, **kwargs)
        return self._tokens[scopes]


Fleet = tuple[FleetServer, Workspace, _Scripted, _TokenOnce]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    scripted = _Scripted()
    with signed_in(tmp_path_factory.mktemp("identity")), \
            FleetServer(tmp_path_factory.mktemp("fuzz")) as server:
        ws = server.add_fleet_workspace("00000000-0000-0000-0000-000000000001", "rg", "ws")
        server.inject(scripted)
        yield server, ws, scripted, _TokenOnce(default_credential(resolve_cloud()))


def _is_rule(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("kind"), str) \
        and isinstance(value.get("properties"), dict)


#: call -> (path part answered, the call, what a result must look like)
ARM_CALLS: dict[str, tuple[str, Callable[[arm.SentinelWorkspaceClient], Any],
                           Callable[[Any], bool]]] = {
    "get": ("alertRules/abc", lambda c: c.get_rule("abc"), lambda r: r is None or _is_rule(r)),
    "put": ("alertRules/abc", lambda c: c.put_rule("abc", {"kind": "Scheduled",
                                                         "properties": {}}), _is_rule),
    "list": ("alertRules", lambda c: c.list_rules(),
             lambda r: isinstance(r, list) and all(map(_is_rule, r))),
    "delete": ("alertRules/abc", lambda c: c.delete_rule("abc"),
               lambda r: isinstance(r, bool)),
    "workspace": ("workspaces/ws", lambda c: c.workspace_info(),
                  lambda r: isinstance(r, WorkspaceInfo) and bool(r.customer_id)),
    "getschema": ("/query", lambda c: c.table_schema("DeviceProcessEvents"),
                  lambda r: isinstance(r, TableCheck) and (r.columns is None or all(
                      isinstance(k, str) and isinstance(v, str) for k, v in r.columns.items()))),
}


rules = st.fixed_dictionaries({
    "name": st.text(max_size=5), "kind": mostly(st.sampled_from(["Scheduled", "NRT"])),
    "properties": mostly(st.dictionaries(st.text(max_size=5), json_values, max_size=3))})
#: call -> answers that are right or a little wrong for it
ARM_ANSWERS: dict[str, st.SearchStrategy[Any]] = {
    "get": mostly(rules),
    "put": mostly(rules),
    "list": mostly(st.fixed_dictionaries({"value": mostly(st.lists(rules, max_size=3))})),
    "delete": json_values,
    "workspace": mostly(st.fixed_dictionaries({"properties": mostly(st.fixed_dictionaries(
        {"customerId": mostly(st.uuids().map(str))}))})),
    "getschema": mostly(near_logs_answers(["string"])),
}


@seed(SEED)
@FUZZ_HTTP
@given(call_answer=st.sampled_from(sorted(ARM_CALLS)).flatmap(
    lambda call: st.tuples(st.just(call), ARM_ANSWERS[call])),
    status=st.sampled_from([200, 201]))
def test_any_arm_answer_is_a_result_or_our_error(
        fleet: Fleet, call_answer: tuple[str, Any], status: int) -> None:
    server, ws, scripted, credential = fleet
    call, answer = call_answer
    where, method, valid = ARM_CALLS[call]
    scripted.contains, scripted.reply = where, Reply(status, answer)
    cloud = resolve_cloud("AzureCloud", arm_endpoint=server.arm_endpoint,
                          logs_endpoint=server.logs_endpoint)
    with arm.workspace_client(credential, cloud, ws.subscription_id, ws.resource_group,
                              ws.name, retry_total=0, **client_kwargs(server)) as client:
        try:
            result = method(client)
        except SentinelT1190Error as exc:
            event(f"{call}: {type(exc).__name__}")
            return
    event(f"{call}: a result")
    assert valid(result), result


WORKSPACE_ID = ("/subscriptions/s/resourceGroups/g/providers/Microsoft.OperationalInsights/"
                "workspaces/w")
graph_rows = st.lists(st.dictionaries(st.sampled_from(["id", "name"]),
                                      st.one_of(json_values, st.just(WORKSPACE_ID))), max_size=3)
graph_answers = st.one_of(json_values, st.fixed_dictionaries(
    {"data": st.one_of(json_values, graph_rows)}))


@seed(SEED)
@FUZZ_HTTP
@given(answer=graph_answers)
def test_any_resource_graph_answer_is_workspaces_or_our_error(
        fleet: Fleet, answer: Any) -> None:
    server, _ws, scripted, credential = fleet
    scripted.contains, scripted.reply = "microsoft.resourcegraph", Reply(200, answer)
    cloud = resolve_cloud("AzureCloud", arm_endpoint=server.arm_endpoint)
    with resourcegraph.graph_client(credential, cloud, retry_total=0,
                                    **client_kwargs(server)) as client:
        try:
            found = resourcegraph.discover_workspaces(
                client, pacer=resourcegraph.QueryPacer(sleep=lambda s: None))
        except SentinelT1190Error:
            event("refused")
            return
    event("workspaces" if found else "no workspace")
    assert all(isinstance(t, Target) for t in found)
