"""The Logs Query API (the only module importing ``azure.monitor.query``).

One :class:`LogsClient` per command wraps one azure-monitor-query ``LogsQueryClient`` (its
pipeline: authentication with the cloud's Logs scope, retries, logging, TLS from
REQUESTS_CA_BUNDLE / SSL_CERT_FILE). Queries go through ``LogsQueryClient.send_request``
with a streamed body rather than ``query_workspace``, because ``query_workspace`` reads the
whole body and builds a ``LogsTableRow`` object per row: a 500,000-row answer then needs
5x its own size in memory and seconds of CPU before the first row is seen. Streaming keeps
memory at one batch of rows. What ``query_workspace`` would have returned as a
``LogsQueryPartialResult`` (an ``error`` member next to ``tables``) is read here from the
same body and reported in :attr:`QueryResult.partial_error` — never dropped.

Retries (azure-core's RetryPolicy, configured): POST is added to the retried methods (a
Logs query is a read, safe to repeat), so 408, 429, 500, 502, 503 and connection errors are
retried with exponential back-off, and a ``Retry-After`` header is honoured up to
``max_retry_after`` seconds (longer: the query fails at once, see :mod:`.throttle`). A 504 (the
query ran past the server timeout) is *not* retried as is: the caller splits the slice,
which is the retry that can succeed.

Time columns: the request's ``timespan`` filters ``TimeGenerated`` (ingestion time in the
workspace) while the hunting query filters ``Timestamp`` (event time on the device). An
event is ingested after it happens, so its TimeGenerated is at or after its Timestamp,
usually by minutes, sometimes hours. A timespan equal to the window would cut events that
happened at the end of the window but arrived after it. The timespan sent is therefore the
window widened by :data:`TIMEGENERATED_BEFORE` at the start (device clocks running ahead)
and :data:`TIMEGENERATED_AFTER` at the end (ingestion delay); the query's own
``Timestamp`` filter keeps the result exact, the timespan only lets the service prune.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import AuthError, AzureServiceError, InputError, first_line
from ..logs_response import ParsedResponse, ResponseFormatError, ResponseParser, describe_error
from ..timespan import iso_z
from .clouds import Cloud
from .credentials import NO_TOKEN_HINT
from .throttle import DEFAULT_MAX_RETRY_AFTER, RetryAfterTooLong, with_retry_after_cap

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

log = logging.getLogger(__name__)

#: ``Prefer: wait=N`` is accepted up to 10 minutes.
MAX_SERVER_TIMEOUT = 600
DEFAULT_SERVER_TIMEOUT = 180
#: Seconds the client waits for an answer beyond the server timeout before giving up.
READ_TIMEOUT_MARGIN = 30
TIMEGENERATED_BEFORE = timedelta(hours=1)
TIMEGENERATED_AFTER = timedelta(days=2)
#: Inner error codes of a partial result that a smaller time slice can avoid (Kusto limits).
SPLITTABLE_CODES = ("E_QUERY_RESULT_SET_TOO_LARGE", "E_RUNAWAY_QUERY", "E_LOW_MEMORY_CONDITION")


class LogsQueryFailed(AzureServiceError):
    """A query failed; *fatal* when every other query of the workspace would fail the same
    way (rejected query, no access, no such workspace), *too_large* when a smaller window
    may succeed (server timeout)."""

    def __init__(self, message: str, *, fatal: bool = False, too_large: bool = False,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.too_large = too_large
        self.status = status


class LogsAuthError(AuthError):
    """No token, or the identity may not read the workspace (401/403)."""

    fatal = True


@dataclass
class QueryResult:
    """What a query returned besides its rows (which went to ``on_rows``)."""

    columns: list[str]
    types: list[str]
    rows: int
    #: The ``error`` of a partial result, or None when the result is complete.
    partial_error: dict[str, Any] | None

    @property
    def complete(self) -> bool:
        return self.partial_error is None

    @property
    def too_large(self) -> bool:
        """A partial result a smaller window can avoid (row/size cap, memory)."""
        return self.partial_error is not None and any(
            code in _error_text(self.partial_error) for code in SPLITTABLE_CODES)

    @property
    def reason(self) -> str:
        return "" if self.partial_error is None else describe_error(self.partial_error)


def _error_text(error: Any) -> str:
    return json.dumps(error, ensure_ascii=False)


def timespan_for(start: datetime, end: datetime) -> str:
    """The request's TimeGenerated range for a Timestamp window (see the module docstring)."""
    return f"{iso_z(start - TIMEGENERATED_BEFORE)}/{iso_z(end + TIMEGENERATED_AFTER)}"


def retry_policy(retry_total: int, backoff: float) -> Any:
    from azure.core.pipeline.policies import RetryPolicy

    class LogsRetryPolicy(RetryPolicy):  # type: ignore[misc,type-arg]
        """RetryPolicy that also retries POST (queries are reads) and leaves 504 to us."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._method_whitelist = frozenset({*self._method_whitelist, "POST"})
            self._retry_on_status_codes = {408, 429, 500, 502, 503}

        def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
            if response.http_response.status_code == 504:
                return False
            return bool(super().is_retry(settings, response))

    return LogsRetryPolicy(retry_total=retry_total, retry_backoff_factor=backoff,
                           retry_backoff_max=60)


class LogsClient:
    """Queries one or more workspaces through one ``LogsQueryClient``."""

    def __init__(self, cloud: Cloud, credential: TokenCredential, *,
                 server_timeout: int = DEFAULT_SERVER_TIMEOUT, retry_total: int = 6,
                 retry_backoff: float = 0.8,
                 max_retry_after: float = DEFAULT_MAX_RETRY_AFTER, **client_kwargs: Any) -> None:
        if not 1 <= server_timeout <= MAX_SERVER_TIMEOUT:
            raise InputError(f"--server-timeout must be 1..{MAX_SERVER_TIMEOUT} seconds, "
                             f"got {server_timeout}")
        from azure.monitor.query import LogsQueryClient

        self.server_timeout = server_timeout
        self.endpoint = cloud.logs_endpoint
        # azure-monitor-query 2.x: ``endpoint`` may end in /v1 (it becomes the api_version);
        # the token scope is given explicitly, else it would follow an overridden endpoint.
        self._client = LogsQueryClient(
            credential, endpoint=cloud.logs_endpoint, credential_scopes=[cloud.logs_scope],
            retry_policy=retry_policy(retry_total, retry_backoff),
            **with_retry_after_cap({**client_kwargs, "max_retry_after": max_retry_after}))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LogsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, workspace_id: str, query: str, *, timespan: str | None,
              on_rows: Callable[[list[list[Any]]], None],
              on_columns: Callable[[list[str], list[str]], None] | None = None) -> QueryResult:
        """Run *query* in one workspace, streaming its rows to *on_rows*.

        Raises :class:`LogsQueryFailed` / :class:`LogsAuthError` on failure; a partial
        result is returned with ``partial_error`` set.
        """
        from azure.core.exceptions import AzureError, ClientAuthenticationError
        from azure.core.rest import HttpRequest

        request = HttpRequest(
            "POST", f"/workspaces/{workspace_id}/query",
            json={"query": query, "timespan": timespan},
            headers={"Prefer": f"wait={self.server_timeout}", "Accept": "application/json"})
        where = f"workspace {workspace_id}"
        try:
            response = self._client.send_request(
                request, stream=True, connection_timeout=30,
                read_timeout=self.server_timeout + READ_TIMEOUT_MARGIN)
        except ClientAuthenticationError as exc:
            raise LogsAuthError(f"{where}: cannot get a token for the Logs API: "
                                f"{first_line(exc)}{NO_TOKEN_HINT}") from exc
        except AzureError as exc:
            raise LogsQueryFailed(f"{where}: the Logs API could not be reached: "
                                  f"{first_line(exc)}") from exc
        except RetryAfterTooLong as exc:
            raise LogsQueryFailed(f"{where}: {exc}", status=exc.status) from exc
        try:
            if response.status_code >= 400:
                _raise_for_status(response, where)
            parser = ResponseParser(on_rows, on_columns)
            for chunk in response.iter_bytes():
                parser.feed_bytes(chunk)
            parsed: ParsedResponse = parser.close()
        except AzureError as exc:
            raise LogsQueryFailed(f"{where}: the answer was cut off: {first_line(exc)}"
                                  ) from exc
        except ResponseFormatError as exc:
            # A status, so the slice is not re-run: the same question gets the same answer.
            raise LogsQueryFailed(f"{where}: unreadable answer from the Logs API: {exc}",
                                  status=response.status_code) from exc
        finally:
            response.close()
        return QueryResult(parsed.columns, parsed.types, parsed.rows, parsed.error)


def _raise_for_status(response: Any, where: str) -> None:
    from azure.core.exceptions import HttpResponseError

    status = response.status_code
    try:
        body = json.loads(response.read() or b"{}")
        error = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        error = None
    detail = describe_error(error) if isinstance(error, dict) else f"HTTP {status}"
    original = HttpResponseError(response=response)
    if status in (401, 403):
        raise LogsAuthError(
            f"{where}: not allowed to query (HTTP {status}, {detail}); the identity needs "
            "Log Analytics Reader (or Microsoft Sentinel Reader) on the workspace") from original
    if status == 404:
        raise LogsQueryFailed(f"{where}: no such workspace (HTTP 404, {detail}); give the "
                              "workspace ID (a GUID), not its name", fatal=True,
                              status=status) from original
    if status == 400:
        raise LogsQueryFailed(f"{where}: the Logs API rejected the query: {detail}",
                              fatal=True, status=status) from original
    if status == 504:
        raise LogsQueryFailed(f"{where}: the query timed out at the server (HTTP 504, "
                              f"{detail})", too_large=True, status=status) from original
    if status == 429:
        raise LogsQueryFailed(f"{where}: still throttled after retries (HTTP 429, {detail})",
                              status=status) from original
    raise LogsQueryFailed(f"{where}: HTTP {status} after retries: {detail}",
                          status=status) from original


