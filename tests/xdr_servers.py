"""Loopback HTTPS servers for Defender XDR advanced hunting (Graph) and Azure Data Explorer.

Both really run the posted KQL with duckdb-kql over DeviceProcessEvents rows they hold, as
tests/logs_server.py does for the Logs API, and answer in the shapes of the official docs:

- Graph ``POST /v1.0/security/runHuntingQuery`` (body ``Query``, optional ``Timespan``):
  ``{"@odata.context", "schema": [{"name", "type"}], "results": [{...}]}``; the Timespan
  filters ``Timestamp`` (advanced hunting has no TimeGenerated); answers are cut to
  ``row_cap`` rows *silently*, as advanced hunting does, and more than ``size_cap`` rows is the
  HTTP 400 "Query execution has exceeded the allowed result size".
- ADX ``POST /v2/rest/query`` (``db``, ``csl``, ``properties``): the v2 frames
  (DataSetHeader, DataTable QueryProperties / PrimaryResult / QueryCompletionInformation,
  DataSetCompletion); past ``row_cap`` records the PrimaryResult is cut and carries Kusto's
  partial-query failure (OneApiErrors, E_QUERY_RESULT_SET_TOO_LARGE) as the service sends it.
  ``GET /v1/rest/auth/metadata`` answers the public cloud's metadata.

Replies can be scripted (429 with Retry-After, 5xx, 403) with :meth:`Scripted`. Clients trust
the server through REQUESTS_CA_BUNDLE=server.ca_path.
"""

from __future__ import annotations

import json
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import duckdb
import duckdb_kql

from tests.logs_server import loopback_https

_GRAPH_TYPES = {"TIMESTAMP": "DateTime", "VARCHAR": "String", "BIGINT": "Int64",
                "INTEGER": "Int32", "DOUBLE": "Double", "BOOLEAN": "Boolean"}
_KUSTO_TYPES = {"TIMESTAMP": "datetime", "VARCHAR": "string", "BIGINT": "long",
                "INTEGER": "int", "DOUBLE": "real", "BOOLEAN": "bool"}
SIZE_ERROR = ("Query execution has exceeded the allowed result size. Optimize your query by "
              "taking fewer results and try again.")


@dataclass
class Scripted:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class Seen:
    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int
    rows: int


class _KqlServer:
    """TLS on loopback, scripted replies, and DeviceProcessEvents rows to run KQL over."""

    def __init__(self) -> None:
        self.script: list[Scripted] = []
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._con = duckdb_kql.connect()
        self._dir = tempfile.TemporaryDirectory()
        self._server, self.ca_path = loopback_https(_handler(self), self._dir.name)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._con.close()
        self._dir.cleanup()

    def add_csv(self, csv_path: str | Path) -> None:
        """DeviceProcessEvents rows from a CSV with the table's columns."""
        self._con.execute(
            "CREATE TABLE _events AS SELECT * REPLACE (CAST(Timestamp AS TIMESTAMP) AS "
            f"Timestamp) FROM read_csv('{csv_path}', header = true, all_varchar = true)")

    def add_reply(self, reply: Scripted) -> None:
        self.script.append(reply)

    def _scripted(self) -> Scripted | None:
        with self._lock:
            for reply in self.script:
                if reply.times > 0:
                    reply.times -= 1
                    return reply
        return None

    def run_kql(self, query: str, where: str = "true",
                tables: tuple[str, ...] = ("DeviceProcessEvents",)
                ) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        """*query* over the rows (filtered by *where*), seen as each of *tables*."""
        cur = self._con.cursor()
        try:
            for table in tables:
                cur.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS "
                            f"SELECT * FROM _events WHERE {where}")
            relation = duckdb_kql.kql(cur, query)
            return relation.columns, [str(t) for t in relation.types], relation.fetchall()
        finally:
            cur.close()

    def answer(self, method: str, path: str, body: dict[str, Any]
               ) -> tuple[int, dict[str, str], Any, int]:
        raise NotImplementedError

    def respond(self, method: str, path: str, body: dict[str, Any], headers: dict[str, str]
                ) -> tuple[int, dict[str, str], bytes]:
        reply = self._scripted() if method == "POST" else None
        if reply is not None:
            status, extra, document, rows = reply.status, reply.headers, reply.body, 0
        elif (path != "/v1/rest/auth/metadata"
              and not headers.get("Authorization", "").startswith("Bearer ")):
            status, extra, rows = 401, {}, 0
            document = {"error": {"code": "InvalidAuthenticationToken",
                                  "message": "Access token is empty."}}
        else:
            status, extra, document, rows = self.answer(method, path, body)
        with self._lock:
            self.requests.append(Seen(method, path, body, headers, status, rows))
        if document is None:
            return status, extra, b""
        return status, extra, json.dumps(document, default=_iso).encode()


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        # 7 fractional digits, as both services write them
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    raise TypeError(type(value).__name__)


def _handler(server: _KqlServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            status, headers, payload = server.respond(method, self.path, body,
                                                      dict(self.headers.items()))
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            self._reply("POST")

        def do_GET(self) -> None:
            self._reply("GET")

        def do_PATCH(self) -> None:
            self._reply("PATCH")

        def do_DELETE(self) -> None:
            self._reply("DELETE")

    return Handler


RULES = "/beta/security/rules/detectionRules"


class GraphServer(_KqlServer):
    """``POST /v1.0/security/runHuntingQuery`` and ``/beta/security/rules/detectionRules``
    (list with paging, get, create, update, delete), custom detections held in memory."""

    def __init__(self, row_cap: int = 100_000, size_cap: int | None = None,
                 page_size: int = 2) -> None:
        super().__init__()
        self.row_cap = row_cap
        self.size_cap = size_cap
        self.page_size = page_size
        self.rules: dict[str, dict[str, Any]] = {}
        self._next_id = 1000

    def hunting_queries(self) -> list[Seen]:
        return [r for r in self.requests if r.path.endswith("/security/runHuntingQuery")]

    def rule_writes(self) -> list[Seen]:
        return [r for r in self.requests if r.path.startswith(RULES) and r.method != "GET"]

    def add_foreign_rule(self, name: str) -> str:
        """A custom detection someone else made (the tool must never touch it)."""
        self._next_id += 1
        rule_id = str(self._next_id)
        self.rules[rule_id] = {"id": rule_id, "displayName": name, "isEnabled": True,
                               "queryCondition": {"queryText": "DeviceEvents | take 1"},
                               "schedule": {"period": "24H"},
                               "detectionAction": {"alertTemplate": {"title": name,
                                                                     "description": "theirs"}}}
        return rule_id

    def answer(self, method: str, path: str, body: dict[str, Any]
               ) -> tuple[int, dict[str, str], Any, int]:
        if path.startswith(RULES):
            return self._rules(method, path, body)
        if method != "POST" or path != "/v1.0/security/runHuntingQuery":
            return 404, {}, {"error": {"code": "BadRequest", "message": f"no {path}"}}, 0
        where = "true"
        span = str(body.get("Timespan") or "")
        if "/" in span:
            start, end = (_naive(t) for t in span.split("/"))
            where = (f"Timestamp >= CAST('{start}' AS TIMESTAMP) AND "
                     f"Timestamp <= CAST('{end}' AS TIMESTAMP)")
        elif span:  # P<n>D: back from now (the only other form the tool sends)
            where = f"Timestamp >= now()::TIMESTAMP - INTERVAL {int(span[1:-1])} DAY"
        try:
            columns, types, rows = self.run_kql(body["Query"], where)
        except (duckdb_kql.KqlError, duckdb.Error) as exc:
            return 400, {}, {"error": {"code": "BadRequest",
                                       "message": str(exc).splitlines()[0]}}, 0
        if self.size_cap is not None and len(rows) > self.size_cap:
            return 400, {}, {"error": {"code": "BadRequest", "message": SIZE_ERROR}}, 0
        rows = rows[: self.row_cap]
        return 200, {}, {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph."
                              "security.huntingQueryResults",
            "schema": [{"name": c, "type": _GRAPH_TYPES.get(t, "String")}
                       for c, t in zip(columns, types, strict=True)],
            "results": [dict(zip(columns, row, strict=True)) for row in rows],
        }, len(rows)


    def _rules(self, method: str, path: str, body: dict[str, Any]
               ) -> tuple[int, dict[str, str], Any, int]:
        rest = path[len(RULES):]
        if method == "POST" and rest == "":
            return self._create(body)
        if method == "GET" and (rest == "" or rest.startswith("?$skiptoken=")):
            start = int(rest.partition("=")[2] or 0)
            ids = sorted(self.rules)
            page: dict[str, Any] = {
                "@odata.context": "https://graph.microsoft.com/beta/$metadata#security/rules/"
                                  "detectionRules",
                "value": [self.rules[i] for i in ids[start:start + self.page_size]]}
            if start + self.page_size < len(ids):
                page["@odata.nextLink"] = (f"{self.url}{RULES}?$skiptoken="
                                           f"{start + self.page_size}")
            return 200, {}, page, 0
        rule_id = rest.lstrip("/")
        if rule_id not in self.rules:
            return 404, {}, {"error": {"code": "NotFound",
                                       "message": f"Rule {rule_id} not found"}}, 0
        if method == "GET":
            return 200, {}, self.rules[rule_id], 0
        if method == "DELETE":
            del self.rules[rule_id]
            return 204, {}, None, 0
        if method == "PATCH":
            self.rules[rule_id] = _merge(self.rules[rule_id], body)
            self.rules[rule_id]["lastModifiedDateTime"] = datetime.now().isoformat() + "Z"
            return 200, {}, self.rules[rule_id], 0
        return 405, {}, {"error": {"code": "BadRequest", "message": method}}, 0

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any, int]:
        self._next_id += 1
        rule_id = str(self._next_id)
        now = datetime.now().isoformat() + "Z"
        created = _merge(body, {
            "id": rule_id, "createdBy": "analyst@contoso.com", "createdDateTime": now,
            "lastModifiedBy": "analyst@contoso.com", "lastModifiedDateTime": now,
            "detectorId": str(uuid.uuid4()),
            "schedule": {"nextRunDateTime": now},
            "lastRunDetails": {"lastRunDateTime": None, "status": None,
                               "failureReason": None, "errorCode": None}})
        self.rules[rule_id] = created
        return 201, {}, created, 0

    def edit_rule(self, rule_id: str, changes: dict[str, Any]) -> None:
        """A change made in the portal, behind the tool's back."""
        self.rules[rule_id] = _merge(self.rules[rule_id], changes)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = json.loads(json.dumps(base))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class KustoServer(_KqlServer):
    """``POST /v2/rest/query`` and ``GET /v1/rest/auth/metadata`` of an ADX cluster."""

    def __init__(self, database: str = "SecurityArchive", row_cap: int = 500_000,
                 table: str = "DeviceProcessEvents") -> None:
        super().__init__()
        self.database = database
        self.row_cap = row_cap
        #: The name the DeviceProcessEvents rows have in the cluster (archives rename).
        self.table = table

    def queries(self) -> list[Seen]:
        return [r for r in self.requests if r.path == "/v2/rest/query"]

    def answer(self, method: str, path: str, body: dict[str, Any]
               ) -> tuple[int, dict[str, str], Any, int]:
        if method == "GET" and path == "/v1/rest/auth/metadata":
            return 200, {}, {"AzureAD": {
                "LoginEndpoint": "https://login.microsoftonline.com", "LoginMfaRequired": False,
                "KustoClientAppId": "db662dc1-0cfe-4e1c-a843-19a68e65be58",
                "KustoClientRedirectUri": "https://microsoft/kustoclient",
                "KustoServiceResourceId": "https://kusto.kusto.windows.net",
                "FirstPartyAuthorityUrl": "https://login.microsoftonline.com/"
                                          "f8cdef31-a31e-4b4a-93e4-5f571e91255a"}}, 0
        if method != "POST" or path != "/v2/rest/query":
            return 404, {}, {"error": {"code": "NotFound", "message": f"no {path}"}}, 0
        if body.get("db") != self.database:
            return 400, {}, _one_api("General_BadRequest",
                                     f"'{body.get('db')}' database does not exist"), 0
        try:
            columns, types, rows = self.run_kql(body["csl"], tables=(self.table,))
        except (duckdb_kql.KqlError, duckdb.Error) as exc:
            return 400, {}, _one_api("SEM0100", str(exc).splitlines()[0]), 0
        cut = len(rows) > self.row_cap
        primary: list[Any] = [list(r) for r in rows[: self.row_cap]]
        if cut:
            primary.append(_too_large(self.row_cap))
        frames = [
            {"FrameType": "DataSetHeader", "IsProgressive": False, "Version": "v2.0"},
            {"FrameType": "DataTable", "TableId": 0, "TableKind": "QueryProperties",
             "TableName": "@ExtendedProperties",
             "Columns": [{"ColumnName": "TableId", "ColumnType": "int"},
                         {"ColumnName": "Key", "ColumnType": "string"},
                         {"ColumnName": "Value", "ColumnType": "dynamic"}],
             "Rows": [[1, "Visualization", "{\"Visualization\":null}"]]},
            {"FrameType": "DataTable", "TableId": 1, "TableKind": "PrimaryResult",
             "TableName": "PrimaryResult",
             "Columns": [{"ColumnName": c, "ColumnType": _KUSTO_TYPES.get(t, "string")}
                         for c, t in zip(columns, types, strict=True)],
             "Rows": primary},
            {"FrameType": "DataTable", "TableId": 2, "TableKind": "QueryCompletionInformation",
             "TableName": "QueryCompletionInformation",
             "Columns": [{"ColumnName": n, "ColumnType": t} for n, t in (
                 ("Timestamp", "datetime"), ("ClientRequestId", "string"),
                 ("ActivityId", "guid"), ("SubActivityId", "guid"),
                 ("ParentActivityId", "guid"), ("Level", "int"), ("LevelName", "string"),
                 ("StatusCode", "int"), ("StatusCodeName", "string"), ("EventType", "int"),
                 ("EventTypeName", "string"), ("Payload", "string"))],
             "Rows": [[datetime.now().isoformat() + "Z", "KPC.execute;" + str(uuid.uuid4()),
                       str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), 4, "Info",
                       0, "S_OK (0)", 4, "QueryInfo",
                       "{\"Count\":1,\"Text\":\"Query completed successfully\"}"]]},
            {"FrameType": "DataSetCompletion", "HasErrors": cut, "Cancelled": False},
        ]
        return 200, {}, frames, len(primary) - cut


def _one_api(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": "BadRequest", "message": "Request is invalid and cannot be "
                      "executed.", "@type": "Kusto.Data.Exceptions.SemanticException",
                      "@message": f"{code}: {message}", "@permanent": True}}


def _too_large(cap: int) -> dict[str, Any]:
    return {"OneApiErrors": [{"error": {
        "code": "LimitsExceeded", "message": "Request is invalid and cannot be executed.",
        "@type": "Kusto.Data.Exceptions.KustoServicePartialQueryFailureLimitsExceededException",
        "@message": f"Query execution has exceeded the allowed limits (80DA0003): The results "
                    f"of this query exceed the set limit of {cap} records, so not all records "
                    "were returned (E_QUERY_RESULT_SET_TOO_LARGE, 0x80DA0003). See "
                    "https://aka.ms/kustoquerylimits for more information and possible "
                    "solutions..",
        "@permanent": False}}]}


def _naive(text: str) -> str:
    return text.replace("Z", "").replace("T", " ")


ServerFactory = Callable[..., _KqlServer]
