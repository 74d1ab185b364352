"""Azure Data Explorer (Kusto) clusters through azure-kusto-data: the hunt's KQL on the cluster.

The path for long hunts over archived telemetry (continuous export of Defender tables): the
query runs on the cluster and only findings come back. ADX limits a result to 500,000
records or 64 MB unless truncation is lifted; past that the answer carries a partial-query
failure (E_QUERY_RESULT_SET_TOO_LARGE), which azure-kusto-data raises as
``KustoMultiApiError``. The tool never lifts truncation: such a slice is *too large*, and the
hunt splits it and runs the halves. The server timeout is the ``servertimeout`` client
request property.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import InputError, first_line
from ..logs_response import normalize_datetime
from ..timespan import iso_z
from .credentials import NO_TOKEN_HINT
from .logs import LogsAuthError, LogsQueryFailed

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

DEFAULT_SERVER_TIMEOUT = 240
MAX_SERVER_TIMEOUT = 3600
#: Codes of a result a smaller time slice can avoid (record/size cap, memory, run time).
SPLITTABLE = ("E_QUERY_RESULT_SET_TOO_LARGE", "80DA0003", "E_LOW_MEMORY_CONDITION",
              "E_RUNAWAY_QUERY", "LimitsExceeded")
VIEWER_ROLE = "Database Viewer (or Database User) on the database"
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BATCH = 5_000


@dataclass
class KustoAnswer:
    columns: list[str]
    types: list[str]
    rows: int
    complete: bool = True
    too_large: bool = False
    reason: str = ""


def parse_table_map(pairs: list[str] | None) -> dict[str, str]:
    """``--table-map DeviceProcessEvents=ArchivedProcessEvents`` pairs as a dict."""
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        source, _, target = pair.partition("=")
        if not (_TABLE.fullmatch(source.strip()) and _TABLE.fullmatch(target.strip())):
            raise InputError(f"--table-map {pair!r}: give TABLE=CLUSTER_TABLE, two table names")
        mapping[source.strip()] = target.strip()
    return mapping


def rename_tables(query: str, mapping: Mapping[str, str]) -> str:
    """*query* reading each table under its name in the cluster (whole identifiers only)."""
    for source, target in mapping.items():
        query = re.sub(rf"(?<![\w.]){re.escape(source)}(?!\w)", target, query)
    return query


class KustoHuntingClient:
    """Queries one database of one cluster; the ``query`` method a live hunt calls."""

    def __init__(self, cluster: str, database: str, credential: TokenCredential, *,
                 table_map: Mapping[str, str] | None = None,
                 server_timeout: int = DEFAULT_SERVER_TIMEOUT, retry_total: int = 6,
                 retry_backoff: float = 0.8, max_retry_after: float = 120) -> None:
        if not cluster.startswith("https://"):
            raise InputError(f"--cluster must be an https:// URL, got {cluster!r}")
        if not 1 <= server_timeout <= MAX_SERVER_TIMEOUT:
            raise InputError(f"--server-timeout must be 1..{MAX_SERVER_TIMEOUT} seconds for a "
                             f"cluster, got {server_timeout}")
        from azure.kusto.data import KustoClient, KustoConnectionStringBuilder

        self.cluster = cluster.rstrip("/")
        self.database = database
        self.table_map = dict(table_map or {})
        self.server_timeout = server_timeout
        builder = KustoConnectionStringBuilder.with_azure_token_credential(
            self.cluster, credential)
        self._client = KustoClient(builder)
        # azure-kusto-data sends each query once; its session takes a urllib3 Retry, which
        # then retries throttling and transient failures (POST included) with back-off.
        self._client.set_http_retries(_retry(retry_total, retry_backoff, max_retry_after))

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> KustoHuntingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, workspace_id: str, query: str, *, timespan: str | None,
              on_rows: Callable[[list[list[Any]]], None],
              on_columns: Callable[[list[str], list[str]], None] | None = None) -> KustoAnswer:
        """Run *query* in the database; rows go to *on_rows*. *timespan* is not used: the
        hunting query filters its own time column."""
        from azure.kusto.data import ClientRequestProperties
        from azure.kusto.data.exceptions import (
            KustoAuthenticationError,
            KustoMultiApiError,
            KustoServiceError,
            KustoThrottlingError,
        )

        where = f"cluster {self.cluster}, database {self.database}"
        properties = ClientRequestProperties()  # type: ignore[no-untyped-call]
        properties.set_option(ClientRequestProperties.request_timeout_option_name,
                              timedelta(seconds=self.server_timeout))
        try:
            response = self._client.execute_query(
                self.database, rename_tables(query, self.table_map), properties)
            table = response.primary_results[0] if response.primary_results else None
        except KustoMultiApiError as exc:
            text = "; ".join(f"{e.code}: {e.description or e.message}"
                             for e in exc.get_api_errors()) or first_line(exc)
            too_large = any(code in text for code in SPLITTABLE)
            what = "the result is too large" if too_large else "the query failed"
            raise LogsQueryFailed(f"{where}: {what}: {_short(text)}", too_large=too_large,
                                  status=200, fatal=not too_large) from exc
        except KustoThrottlingError as exc:
            raise LogsQueryFailed(f"{where}: throttled (HTTP 429): {first_line(exc)}",
                                  status=429) from exc
        except KustoAuthenticationError as exc:
            raise LogsAuthError(f"{where}: cannot get a token: {first_line(exc)}"
                                f"{NO_TOKEN_HINT}") from exc
        except KustoServiceError as exc:
            raise _service_error(exc, where) from exc
        if table is None:
            raise LogsQueryFailed(f"{where}: the answer holds no result table")
        names = [c.column_name for c in table.columns]
        types = [str(c.column_type) for c in table.columns]
        if on_columns:
            on_columns(names, types)
        raw = table.raw_rows
        stamps = [i for i, t in enumerate(types) if t == "datetime"]
        for start in range(0, len(raw), _BATCH):
            rows = [[_plain(v) for v in row] for row in raw[start:start + _BATCH]]
            for i in stamps:
                for row in rows:
                    row[i] = None if row[i] is None else normalize_datetime(row[i])
            on_rows(rows)
        errors = response.get_exceptions() if response.errors_count else []
        if errors:
            text = "; ".join(errors)
            too_large = any(code in text for code in SPLITTABLE)
            return KustoAnswer(names, types, len(raw), complete=False, too_large=too_large,
                               reason=_short(text))
        return KustoAnswer(names, types, len(raw))


def _retry(total: int, backoff: float, max_retry_after: float) -> Any:
    from urllib3.util.retry import Retry

    class CappedRetry(Retry):  # type: ignore[misc]
        """Retry-After honoured, cut to *max_retry_after* seconds so a hunt never hangs."""

        def get_retry_after(self, response: Any) -> float | None:
            wait = super().get_retry_after(response)
            return None if wait is None else min(wait, max_retry_after)

    return CappedRetry(total=total, status_forcelist=(429, 500, 502, 503), allowed_methods=None,
                       backoff_factor=backoff, backoff_max=60, raise_on_status=False,
                       respect_retry_after_header=True)


def _plain(value: Any) -> Any:
    """Values JSON can carry: datetimes as the tool writes them, timespans and decimals as
    text."""
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, dict)):
        return value
    return str(value)


def _short(text: str) -> str:
    return text if len(text) <= 500 else text[:500] + "…"


def _service_error(exc: Any, where: str) -> LogsQueryFailed | LogsAuthError:
    response = getattr(exc, "http_response", None)
    status = getattr(response, "status_code", None)
    message = first_line(exc)
    if status in (401, 403) or message.startswith("401"):
        return LogsAuthError(f"{where}: not allowed (HTTP {status or 401}); the identity "
                             f"needs {VIEWER_ROLE}")
    if status == 400:
        return LogsQueryFailed(f"{where}: the query was rejected: {_short(message)}",
                               fatal=True, status=400)
    if status is None:
        return LogsQueryFailed(f"{where}: the cluster could not be reached: {_short(message)}")
    return LogsQueryFailed(f"{where}: HTTP {status}: {_short(message)}", status=status)
