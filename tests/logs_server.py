"""An Azure-shaped Logs Query API on loopback HTTPS, for tests and benchmarks.

It really runs the posted KQL: each workspace is a DuckDB database whose ``_events`` table
holds DeviceProcessEvents rows with a ``TimeGenerated``; a request's ``timespan`` filters
``TimeGenerated`` (as the service does) and duckdb-kql executes the query over what is left.
Answers are shaped on shared/reference/azure: the success body of
``loganalytics-dataplane-v1/oms-post-example.json``, the partial-success body of the
azure-sdk-assets recording (``tables`` plus ``error: {code: PartialError, details: [...]}``),
and the 400 / 504 bodies quoted in shared/reference/azure/README.md. A row cap answers a
larger result with its first rows and Kusto's E_QUERY_RESULT_SET_TOO_LARGE partial error,
as the real service does. Replies can be scripted (429 with Retry-After, 5xx, 403...).

TLS comes from trustme; point clients at it with REQUESTS_CA_BUNDLE=server.ca_path. Requests
need a JWT-shaped bearer token for the Logs API (tests/identity.py signs in for real).
"""

from __future__ import annotations

import contextlib
import json
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import duckdb_kql
import trustme

from tests.identity import jwt_claims

LOGS_AUDIENCE = "https://api.loganalytics.io"

_KUSTO_TYPES = {"TIMESTAMP": "datetime", "TIMESTAMP WITH TIME ZONE": "datetime",
                "VARCHAR": "string", "BIGINT": "long", "INTEGER": "int", "DOUBLE": "real",
                "BOOLEAN": "bool"}


def partial_error(code: str, message: str) -> dict[str, Any]:
    """The ``error`` of a partial result, as in the azure-sdk-assets recording."""
    return {
        "code": "PartialError",
        "message": "There were some errors when processing your query.",
        "details": [{
            "code": "EngineError",
            "message": "Something went wrong processing your query on the server.",
            "innererror": {"code": code, "message": message, "severity": 2,
                           "severityName": "Error"}}],
    }


def too_large_error(limit: int) -> dict[str, Any]:
    """The partial error Log Analytics returns when a result passes the record limit."""
    return partial_error("-2133196347", (
        f"Query result set has exceeded the internal record count limit {limit} records "
        "(E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)."))


def engine_error() -> dict[str, Any]:
    """The partial error of the azure-sdk-assets recording (not a size problem)."""
    return partial_error("-2133196788", (
        "Percentiles aggregator has encountered an overflow exception during evaluation "
        "(probably due to large weight expression). Results may be incorrect or incomplete "
        "(E_OVERFLOW; see https://aka.ms/kustoqueryfailures)."))


def error_body(code: str, message: str, inner: dict[str, Any] | None = None) -> bytes:
    error: dict[str, Any] = {"message": message, "code": code,
                             "correlationId": str(uuid.uuid4())}
    if inner:
        error["innererror"] = inner
    return json.dumps({"error": error}).encode()


GATEWAY_TIMEOUT = error_body("GatewayTimeout", "Gateway timeout",
                             {"code": "GatewayTimeout", "message": "ADX query timed out"})
FORBIDDEN = error_body("InsufficientAccessError", "The provided credentials have "
                       "insufficient access to perform the requested operation")
THROTTLED = error_body("TooManyRequests", "Too many requests; retry after the time in "
                       "the Retry-After header")


@dataclass
class Scripted:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    workspace: str | None = None
    times: int = 1
    #: Return the real rows, with this partial error next to them.
    partial: dict[str, Any] | None = None


@dataclass
class Seen:
    workspace: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int
    rows: int
    at: float


def loopback_https(handler: type[BaseHTTPRequestHandler], folder: str
                   ) -> tuple[ThreadingHTTPServer, str]:
    """A threading HTTPS server on 127.0.0.1 (a trustme certificate) and the path of the CA
    to trust (written into *folder*); serve it with ``serve_forever`` in a thread."""
    ca = trustme.CA()
    ca_path = str(Path(folder) / "ca.pem")
    ca.cert_pem.write_to_path(ca_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server, ca_path


class LogsServer:
    def __init__(self, row_cap: int | None = None) -> None:
        self.row_cap = row_cap
        self.workspaces: dict[str, duckdb.DuckDBPyConnection] = {}
        #: workspace -> tables besides DeviceProcessEvents (:meth:`add_table`).
        self.tables: dict[str, list[str]] = {}
        self.script: list[Scripted] = []
        self.requests: list[Seen] = []
        #: workspace id -> the only tenant whose tokens it accepts (else any).
        self.tenants: dict[str, str] = {}
        self._lock = threading.Lock()
        self._views_lock = threading.Lock()
        self._dir = tempfile.TemporaryDirectory()
        self._server, self.ca_path = loopback_https(_handler(self), self._dir.name)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> LogsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        for con in self.workspaces.values():
            con.close()
        self._dir.cleanup()

    def refuse_token(self, authorization: str, workspace: str) -> bytes | None:
        """The 401 body for a missing token, one for another audience, or one of a tenant
        other than the workspace's (:attr:`tenants`); None when the token is fine."""
        claims = jwt_claims(authorization.removeprefix("Bearer ")) if authorization.startswith(
            "Bearer ") else None
        if claims is None:
            return error_body("AuthorizationRequiredError",
                              "Valid authentication was not provided")
        if claims.get("aud") != LOGS_AUDIENCE:
            return error_body("InvalidTokenError", "The provided authentication is not valid "
                              f"for this resource: audience {claims.get('aud')!r}")
        tenant = self.tenants.get(workspace)
        if tenant and claims.get("tid") != tenant:
            return error_body("InvalidTokenError", "The provided authentication is not valid "
                              f"for this resource: token of tenant {claims.get('tid')!r}")
        return None

    # -- data ---------------------------------------------------------------------------
    def add_workspace(self, workspace: str, select_sql: str) -> None:
        """*select_sql* yields DeviceProcessEvents columns plus TimeGenerated."""
        con = duckdb_kql.connect()
        con.execute(f"CREATE TABLE _events AS {select_sql}")
        self.workspaces[workspace] = con

    def add_table(self, workspace: str, table: str, select_sql: str) -> None:
        """Another table of *workspace* (SentinelHealth, SecurityAlert...): *select_sql*
        yields its columns, TimeGenerated among them. A table never added does not exist:
        a query reading it is rejected (400), as the service rejects unknown tables."""
        if workspace not in self.workspaces:
            self.add_workspace(workspace, "SELECT NULL::TIMESTAMP AS TimeGenerated LIMIT 0")
        self.workspaces[workspace].execute(f'CREATE TABLE "_t_{table}" AS {select_sql}')
        self.tables.setdefault(workspace, []).append(table)

    def add_csv_workspace(self, workspace: str, csv_path: str,
                          delay_sql: str = "INTERVAL 5 MINUTE") -> None:
        """A workspace holding a DeviceProcessEvents CSV; TimeGenerated = Timestamp + delay."""
        self.add_workspace(workspace, (
            "SELECT * REPLACE (CAST(Timestamp AS TIMESTAMP) AS Timestamp), "
            f"CAST(Timestamp AS TIMESTAMP) + {delay_sql} AS TimeGenerated "
            f"FROM read_csv('{csv_path}', header = true, all_varchar = true)"))

    def add_reply(self, reply: Scripted) -> None:
        self.script.append(reply)

    def queries(self, workspace: str | None = None) -> list[Seen]:
        return [r for r in self.requests if workspace in (None, r.workspace)]

    # -- answering ----------------------------------------------------------------------
    def _scripted(self, workspace: str) -> Scripted | None:
        with self._lock:
            for reply in self.script:
                if reply.workspace in (None, workspace) and reply.times > 0:
                    reply.times -= 1
                    return reply
        return None

    def answer(self, workspace: str, body: dict[str, Any]
               ) -> tuple[int, dict[str, str], Iterator[bytes], int]:
        reply = self._scripted(workspace)
        if reply is not None and reply.partial is None:
            return reply.status, reply.headers, iter([reply.body]), 0
        con = self.workspaces.get(workspace)
        if con is None:
            return 404, {}, iter([error_body(
                "WorkspaceNotFoundError", f"The workspace {workspace} could not be found")]), 0
        cur = con.cursor()
        try:
            span = body.get("timespan")
            where = "true"
            if span:
                start, end = span.split("/")
                where = (f"TimeGenerated >= CAST('{_naive(start)}' AS TIMESTAMP) AND "
                         f"TimeGenerated < CAST('{_naive(end)}' AS TIMESTAMP)")
            cur.execute("CREATE OR REPLACE TEMP VIEW DeviceProcessEvents AS "
                        f"SELECT * FROM _events WHERE {where}")
            # Other tables are views in the main catalog (duckdb-kql reads the columns of
            # those for mv-expand/join), so their queries run one at a time.
            extra = self.tables.get(workspace, [])
            try:
                with self._views_lock if extra else contextlib.nullcontext():
                    for table in extra:
                        cur.execute(f'CREATE OR REPLACE VIEW "{table}" AS '
                                    f'SELECT * FROM "_t_{table}" WHERE {where}')
                    relation = duckdb_kql.kql(cur, body["query"])
                    columns, types = relation.columns, [str(t) for t in relation.types]
                    rows = relation.fetchall()
            except (duckdb_kql.KqlError, duckdb.Error) as exc:
                return 400, {}, iter([error_body(
                    "BadArgumentError", "The request had some invalid properties",
                    {"code": "SyntaxError", "message": "A recognition error occurred in the "
                     "query.", "innererror": {"code": "SYN0002",
                                              "message": str(exc).splitlines()[0]}})]), 0
        finally:
            cur.close()
        error = reply.partial if reply is not None else None
        if self.row_cap is not None and len(rows) > self.row_cap:
            rows = rows[: self.row_cap]
            error = too_large_error(self.row_cap)
        return 200, {}, _encode(columns, types, rows, error), len(rows)


def _naive(text: str) -> str:
    return text.replace("Z", "").replace("T", " ")


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def _encode(columns: list[str], types: list[str], rows: list[tuple[Any, ...]],
            error: dict[str, Any] | None) -> Iterator[bytes]:
    """The body in pieces (as a server streams it), compact like the real service."""
    head = {"name": "PrimaryResult",
            "columns": [{"name": c, "type": _KUSTO_TYPES.get(t, "string")}
                        for c, t in zip(columns, types, strict=True)]}
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    yield ('{"tables":[' + dumps(head)[:-1] + ',"rows":[').encode()
    for i in range(0, len(rows), 5000):
        batch = [[_cell(v) for v in row] for row in rows[i:i + 5000]]
        yield (("," if i else "") + dumps(batch)[1:-1]).encode()
    tail = "]}]"
    if error is not None:
        tail += ',"error":' + dumps(error)
    yield (tail + "}").encode()


def _handler(server: LogsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            parts = self.path.split("/")
            workspace = parts[3] if len(parts) > 4 and parts[2] == "workspaces" else ""
            refused = server.refuse_token(self.headers.get("Authorization", ""), workspace)
            if refused is not None:
                status, headers, chunks, count = 401, {}, iter([refused]), 0
            else:
                status, headers, chunks, count = server.answer(workspace, body)
            payload = b"".join(chunks)
            with server._lock:
                server.requests.append(Seen(workspace, body, dict(self.headers.items()),
                                            status, count, time.monotonic()))
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
