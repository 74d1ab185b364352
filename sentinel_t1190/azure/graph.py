"""Microsoft Graph: Defender XDR advanced hunting (``security/runHuntingQuery``).

The only module that talks to Graph. It is imported by the commands that need it, so ``--help``
never loads ``azure.*``. Requests go through an azure-core pipeline (authentication with the
cloud's Graph scope, retries, the ``--verbose`` HTTP log, TLS from REQUESTS_CA_BUNDLE).

Advanced hunting answers ``{"schema": [{"name", "type"}], "results": [{column: value}]}``.
Its limits (Defender advanced hunting API, learn.microsoft.com/defender-xdr/api-advanced-hunting):
30 days of data, at most 100,000 rows per answer — more are cut off *without an error* —,
124 MB per answer (HTTP 400 "Query execution has exceeded the allowed result size"), 200 s per
query, about 45 calls a minute and a CPU quota per tenant (HTTP 429, the body names the limit).
So an answer holding exactly :data:`ROW_CAP` rows, or the 400 for size, is *too large*: the hunt
splits the slice and runs the halves, as it does for the Logs API's partial results.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import first_line
from ..logs_response import normalize_datetime
from .clouds import Cloud
from .credentials import NO_TOKEN_HINT
from .logs import LogsAuthError, LogsQueryFailed, retry_policy
from .throttle import DEFAULT_MAX_RETRY_AFTER, RetryAfterCap

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

#: Rows an advanced hunting answer holds at most; an answer this long may have been cut.
ROW_CAP = 100_000
#: The longest a query may run at the service (seconds).
SERVER_TIMEOUT = 200
#: Advanced hunting keeps this many days of data.
RETENTION_DAYS = 30
HUNTING_PERMISSION = "ThreatHunting.Read.All"
#: Graph's schema types, in the Kusto spelling the rest of the tool uses.
_TYPES = {"datetime": "datetime", "string": "string", "int64": "long", "int32": "int",
          "boolean": "bool", "double": "real", "guid": "guid", "dynamic": "dynamic",
          "object": "dynamic", "timespan": "timespan", "decimal": "decimal"}
_SIZE_ERROR = "exceeded the allowed result size"
#: Rows handed on at once (the answer is parsed whole; rows are converted a batch at a time).
_BATCH = 5_000


@dataclass
class HuntingAnswer:
    """What an answer held besides its rows (which went to ``on_rows``)."""

    columns: list[str]
    types: list[str]
    rows: int
    cap: int = ROW_CAP

    @property
    def complete(self) -> bool:
        return self.rows < self.cap

    @property
    def too_large(self) -> bool:
        return not self.complete

    @property
    def reason(self) -> str:
        if self.complete:
            return ""
        return (f"the answer holds {self.rows:,} rows, advanced hunting's limit: more rows "
                "may have been cut off")


def graph_pipeline(cloud: Cloud, credential: TokenCredential, **client_kwargs: Any) -> Any:
    """An azure-core PipelineClient for Graph: token for the cloud's Graph scope, retries
    (POST included, Retry-After honoured), the HTTP log of ``--verbose``."""
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import (
        BearerTokenCredentialPolicy,
        ContentDecodePolicy,
        HeadersPolicy,
        ProxyPolicy,
        RedirectPolicy,
        UserAgentPolicy,
    )

    from .._version import __version__
    from .arm import HttpLogPolicy

    retry_total = int(client_kwargs.pop("retry_total", 6))
    backoff = float(client_kwargs.pop("retry_backoff_factor", 0.8))
    cap = RetryAfterCap(float(client_kwargs.pop("max_retry_after", DEFAULT_MAX_RETRY_AFTER)))
    policies = [
        HeadersPolicy(), UserAgentPolicy(f"sentinel-t1190/{__version__}"), ProxyPolicy(),
        ContentDecodePolicy(), RedirectPolicy(), retry_policy(retry_total, backoff), cap,
        BearerTokenCredentialPolicy(credential, cloud.graph_scope), HttpLogPolicy(),
    ]
    return PipelineClient(base_url=cloud.graph_endpoint, policies=policies, **client_kwargs)


class DefenderHuntingClient:
    """Advanced hunting queries for one tenant; the ``query`` method a live hunt calls.

    The "workspace" a hunt names is only a label for the tenant (rows are tagged with it when
    several sources are hunted); every query goes to the tenant the credential belongs to.
    """

    def __init__(self, cloud: Cloud, credential: TokenCredential, *, row_cap: int = ROW_CAP,
                 **client_kwargs: Any) -> None:
        self._client = graph_pipeline(cloud, credential, **client_kwargs)
        self._url = f"{cloud.graph_endpoint}/v1.0/security/runHuntingQuery"
        self.row_cap = row_cap

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> DefenderHuntingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, workspace_id: str, query: str, *, timespan: str | None,
              on_rows: Callable[[list[list[Any]]], None],
              on_columns: Callable[[list[str], list[str]], None] | None = None
              ) -> HuntingAnswer:
        """Run *query*; rows go to *on_rows* in batches. Raises LogsQueryFailed/LogsAuthError."""
        from azure.core.exceptions import AzureError, ClientAuthenticationError
        from azure.core.rest import HttpRequest

        body: dict[str, Any] = {"Query": query}
        if timespan:
            body["Timespan"] = timespan
        request = HttpRequest("POST", self._url, json=body,
                              headers={"Accept": "application/json"})
        where = "Defender XDR advanced hunting"
        try:
            response = self._client.send_request(request, connection_timeout=30,
                                                 read_timeout=SERVER_TIMEOUT + 30)
        except ClientAuthenticationError as exc:
            raise LogsAuthError(f"{where}: cannot get a token for Microsoft Graph: "
                                f"{first_line(exc)}{NO_TOKEN_HINT}") from exc
        except AzureError as exc:
            raise LogsQueryFailed(f"{where}: Microsoft Graph could not be reached: "
                                  f"{first_line(exc)}") from exc
        if response.status_code >= 400:
            _raise_for_status(response.status_code, response.text(), where)
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise LogsQueryFailed(f"{where}: the answer is not JSON: {exc}") from exc
        return _hand_on(document, where, self.row_cap, on_rows, on_columns)


def _hand_on(document: Any, where: str, cap: int, on_rows: Callable[[list[list[Any]]], None],
             on_columns: Callable[[list[str], list[str]], None] | None) -> HuntingAnswer:
    """Rows of a runHuntingQuery answer, in schema order, datetimes as the tool writes them."""
    schema = document.get("schema") if isinstance(document, dict) else None
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(schema, list) or not isinstance(results, list):
        raise LogsQueryFailed(f"{where}: the answer has no schema and results")
    try:
        # Some of Graph's examples spell the schema keys Name/Type.
        names = [str(c.get("name", c.get("Name"))) for c in schema]
        kinds = [str(c.get("type", c.get("Type", ""))) for c in schema]
    except AttributeError:
        raise LogsQueryFailed(f"{where}: unreadable schema in the answer") from None
    types = [_TYPES.get(k.lower(), k.lower()) for k in kinds]
    if on_columns:
        on_columns(names, types)
    stamps = [i for i, t in enumerate(types) if t == "datetime"]
    for start in range(0, len(results), _BATCH):
        batch = results[start:start + _BATCH]
        if not all(isinstance(r, dict) for r in batch):
            raise LogsQueryFailed(f"{where}: a result of the answer is not an object")
        rows = [[r.get(n) for n in names] for r in batch]
        for i in stamps:
            for row in rows:
                row[i] = normalize_datetime(row[i]) if row[i] is not None else None
        on_rows(rows)
    return HuntingAnswer(names, types, len(results), cap)


def _error_message(status: int, text: str) -> str:
    """``code: message`` of a Graph error body, or the status."""
    try:
        error = json.loads(text).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if isinstance(error, dict) and error.get("message"):
        return f"{error.get('code')}: {error.get('message')}"
    return f"HTTP {status}"


def _raise_for_status(status: int, text: str, where: str) -> None:
    message = _error_message(status, text)
    if status in (401, 403):
        raise LogsAuthError(f"{where}: not allowed (HTTP {status}, {message}); the identity "
                            f"needs the Microsoft Graph permission {HUNTING_PERMISSION}")
    if status == 400 and _SIZE_ERROR in message.lower():
        raise LogsQueryFailed(f"{where}: the answer is too large (HTTP 400, {message})",
                              too_large=True, status=status)
    if status == 400:
        raise LogsQueryFailed(f"{where}: the query was rejected: {message}", fatal=True,
                              status=status)
    if status == 429:
        raise LogsQueryFailed(f"{where}: still throttled after retries (HTTP 429, {message})",
                              status=status)
    if status in (408, 504):
        raise LogsQueryFailed(f"{where}: the query timed out (HTTP {status}, {message})",
                              too_large=True, status=status)
    raise LogsQueryFailed(f"{where}: HTTP {status} after retries: {message}", status=status)


# --- custom detection rules (beta) ---------------------------------------------------------

#: Custom detection rules exist only in Graph beta (2026): pinned, so a move to v1.0 is a
#: deliberate change here, not a surprise.
DETECTION_RULES_PATH = "/beta/security/rules/detectionRules"
RULES_PERMISSION = "CustomDetection.ReadWrite.All"
#: Pages followed at most when listing (a nextLink loop must not run forever).
MAX_PAGES = 1000


class DetectionRulesClient:
    """Defender XDR custom detection rules of one tenant (``defender_deploy`` calls it)."""

    def __init__(self, cloud: Cloud, credential: TokenCredential, **client_kwargs: Any) -> None:
        self._client = graph_pipeline(cloud, credential, **client_kwargs)
        self._base = f"{cloud.graph_endpoint}{DETECTION_RULES_PATH}"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> DetectionRulesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, url: str, what: str, body: Any = None) -> tuple[int, Any]:
        from azure.core.exceptions import AzureError, ClientAuthenticationError
        from azure.core.rest import HttpRequest

        from ..errors import AuthError, AzureServiceError, InputError

        request = HttpRequest(method, url, json=body, headers={"Accept": "application/json"})
        try:
            response = self._client.send_request(request)
        except ClientAuthenticationError as exc:
            raise AuthError(f"{what}: cannot get a token for Microsoft Graph: "
                            f"{first_line(exc)}{NO_TOKEN_HINT}") from exc
        except AzureError as exc:
            raise AzureServiceError(f"{what}: Microsoft Graph could not be reached: "
                                    f"{first_line(exc)}") from exc
        status, text = response.status_code, response.text()
        if status == 404:
            return status, None
        if status >= 400:
            message = _error_message(status, text)
            if status in (401, 403):
                raise AuthError(f"{what}: not allowed (HTTP {status}, {message}); the identity "
                                f"needs the Microsoft Graph permission {RULES_PERMISSION}")
            if status == 400:
                raise InputError(f"{what}: Graph rejected the rule (HTTP 400): {message}")
            raise AzureServiceError(f"{what}: HTTP {status} after retries: {message}")
        if not text:
            return status, None
        try:
            return status, json.loads(text)
        except ValueError as exc:
            raise AzureServiceError(f"{what}: the answer is not JSON") from exc

    def list_rules(self) -> list[dict[str, Any]]:
        from ..errors import AzureServiceError

        rules: list[dict[str, Any]] = []
        url: str | None = self._base
        seen: set[str] = set()
        while url:
            if url in seen or len(seen) >= MAX_PAGES:
                raise AzureServiceError("listing custom detection rules: the pages never end "
                                        f"(nextLink {url} repeats)")
            seen.add(url)
            _, page = self._send("GET", url, "listing custom detection rules")
            if not isinstance(page, dict) or not isinstance(page.get("value"), list):
                raise AzureServiceError("listing custom detection rules: the answer has no "
                                        "value list")
            rules += [r for r in page["value"] if isinstance(r, dict)]
            link = page.get("@odata.nextLink")
            url = link if isinstance(link, str) else None
        return rules

    def get_rule(self, rule_id: str) -> dict[str, Any] | None:
        _, doc = self._send("GET", f"{self._base}/{rule_id}",
                            f"reading custom detection rule {rule_id}")
        return doc if isinstance(doc, dict) else None

    def create_rule(self, body: Any) -> dict[str, Any]:
        _, doc = self._send("POST", self._base, f"creating custom detection rule "
                            f"{body.get('displayName')!r}", body)
        return doc if isinstance(doc, dict) else {}

    def update_rule(self, rule_id: str, body: Any) -> dict[str, Any]:
        _, doc = self._send("PATCH", f"{self._base}/{rule_id}",
                            f"updating custom detection rule {rule_id}", body)
        return doc if isinstance(doc, dict) else {"id": rule_id}

    def delete_rule(self, rule_id: str) -> bool:
        status, _ = self._send("DELETE", f"{self._base}/{rule_id}",
                               f"deleting custom detection rule {rule_id}")
        return status != 404
