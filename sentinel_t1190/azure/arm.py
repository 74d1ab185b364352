"""One Sentinel workspace over Azure Resource Manager and the Logs API.

The only module that imports the ARM SDK (azure-mgmt-securityinsight) and, for the table
pre-flight, azure-monitor-query. It is imported lazily by the commands that need it, so
``--help`` never loads ``azure.*``. Every SDK exception is caught here and re-raised as one of
:mod:`sentinel_t1190.errors` (``from`` the original):

=====================  ==========================================================
HTTP                   raised
=====================  ==========================================================
401 / 403              AuthError (exit 3), naming the role the call needs
404 workspace          InputError: the workspace (or Sentinel on it) does not exist
404 rule               ``get_rule`` returns None, ``delete_rule`` returns False
400 (and other 4xx)    InputError carrying the service's own code and message
409                    ConflictError (deploy re-reads, re-plans, retries once)
429                    retried, honouring Retry-After (any method, POST included)
5xx, network errors    retried with exponential back-off, then AzureServiceError
=====================  ==========================================================

``--verbose`` logs one line per HTTP attempt (method, URL, status, elapsed) through the
``sentinel_t1190.http`` logger; headers are never logged and anything that looks like a token
is redacted from the line.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.rest import HttpRequest

from ..alert_rule import API_VERSION
from ..deploy import TableCheck, Target, WorkspaceInfo
from ..errors import (
    AuthError,
    AzureServiceError,
    ConflictError,
    InputError,
    SentinelT1190Error,
    first_line,
)
from ..logs_response import ResponseFormatError, describe_error, parse_chunks
from ..rules import GUID
from .clouds import Cloud
from .credentials import NO_TOKEN_HINT
from .throttle import with_retry_after_cap

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

#: Microsoft.OperationalInsights/workspaces (stable) for the workspace pre-flight.
WORKSPACE_API_VERSION = "2023-09-01"
#: Microsoft.Authorization permissions (what the caller may do at a scope).
PERMISSIONS_API_VERSION = "2022-04-01"
#: The Logs API query (a POST) is read-only, so it is retried like a GET.
_RETRY_METHODS = frozenset({"HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST"})
#: Roles named in 401/403 messages (infra/README.md explains them).
_WRITE_ROLE = "Microsoft Sentinel Contributor"
#: A read can fail inside deploy too: name the role that also lets it write.
_READ_ROLE = ("Microsoft Sentinel Reader (Microsoft Sentinel Contributor to deploy, remove or "
              "roll out)")
_LOGS_ROLE = "Log Analytics Reader (or a Microsoft Sentinel role)"

http_log = logging.getLogger("sentinel_t1190.http")

_SECRETS = re.compile(
    r"(?i)(bearer\s+)[^\s,;]+|eyJ[\w-]+\.[\w-]+\.[\w-]*"
    r"|((?:sig|code|token|access_token|client_secret|skoid|sktid)=)[^&\s]+")


def redact(text: str) -> str:
    """*text* without bearer tokens, JWTs or token-bearing query parameters."""
    return _SECRETS.sub(lambda m: f"{m.group(1) or m.group(2) or ''}REDACTED", text)


class HttpLogPolicy(SansIOHTTPPolicy[Any, Any]):
    """Log every HTTP attempt at INFO: ``PUT <url> -> 201 (84 ms)``. No headers, no bodies.

    Installed per retry (after the retry policy), so each retry shows as its own line.
    """

    _START = "sentinel_t1190.start"

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.context[self._START] = time.monotonic()

    def _line(self, request: PipelineRequest[Any], outcome: str) -> None:
        if http_log.isEnabledFor(logging.INFO):
            started = request.context.get(self._START) or time.monotonic()
            elapsed = (time.monotonic() - started) * 1000
            http_log.info("%s %s -> %s (%.0f ms)", request.http_request.method,
                          redact(request.http_request.url), outcome, elapsed)

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]
                    ) -> None:
        self._line(request, str(response.http_response.status_code))

    def on_exception(self, request: PipelineRequest[Any]) -> None:
        self._line(request, "connection failed")


# --- error mapping ---------------------------------------------------------------------------


def _error_body(exc: HttpResponseError) -> dict[str, Any]:
    try:
        doc = json.loads(exc.response.text()) if exc.response is not None else None
    except (ValueError, UnicodeDecodeError):
        return {}
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, dict) else {}


def service_message(exc: HttpResponseError) -> str:
    """The service's own words: ``Code: message`` plus the innermost detail, if any."""
    error = _error_body(exc)
    code = error.get("code")
    parts = [str(error.get("message") or exc.reason or "").strip()]
    inner = error.get("innererror")
    innermost = None
    while isinstance(inner, Mapping):
        innermost = inner.get("message") or innermost
        inner = inner.get("innererror")
    if innermost and innermost not in parts:
        parts.append(str(innermost).strip())
    text = ": ".join(p for p in parts if p) or "no details"
    return redact(f"{code}: {text}" if code else text)


def _first_line(exc: Exception) -> str:
    return redact(first_line(exc))


def _status(exc: AzureError) -> int | None:
    return exc.status_code if isinstance(exc, HttpResponseError) else None


def translate(exc: AzureError, what: str, *, role: str = _READ_ROLE) -> SentinelT1190Error:
    """The errors.* exception for an SDK failure while doing *what* (caller raises it ``from``)."""
    status = _status(exc)
    if status is not None and status < 400:  # DecodeError: the answer is not JSON
        return unreadable(what, exc)
    if isinstance(exc, ClientAuthenticationError) and status is None:
        return AuthError(f"{what}: cannot get a token: {_first_line(exc)}{NO_TOKEN_HINT}")
    if isinstance(exc, HttpResponseError) and status is not None:
        message = service_message(exc)
        if status in (401, 403):
            return AuthError(f"{what}: {status} {message} (the identity needs {role} on the "
                             "workspace)")
        if status == 409:
            return ConflictError(f"{what}: 409 {message}")
        if status == 429 or status >= 500:
            return AzureServiceError(f"{what}: Azure answered {status} after retries: {message}")
        return InputError(f"{what}: Azure rejected the request ({status}): {message}")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return AzureServiceError(f"{what}: cannot reach Azure after retries: {_first_line(exc)}")
    return AzureServiceError(f"{what}: {type(exc).__name__}: {_first_line(exc)}")


def unreadable(what: str, exc: Exception | str) -> AzureServiceError:
    """The error for an answer that is not what the API documents (exit 4, never a
    traceback): an empty or non-JSON body, a resource without its fields."""
    reason = exc if isinstance(exc, str) else _first_line(exc)
    return AzureServiceError(f"{what}: unreadable answer from Azure: {reason}")


def _rule_json(rule: Any, what: str) -> dict[str, Any]:
    """An alert rule as ARM sends it: an object with a ``kind`` and ``properties``."""
    if not isinstance(rule, dict) or not isinstance(rule.get("kind"), str) \
            or not isinstance(rule.get("properties"), dict):
        raise unreadable(what, f"not an alert rule: {str(rule)[:80]!r}")
    return rule


def _same_origin(url: str, base: str) -> bool:
    from urllib.parse import urlsplit

    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


# --- the client ------------------------------------------------------------------------------


def _client_kwargs(client_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"retry_total": 6, "retry_status": 3, "retry_backoff_max": 60}
    kwargs.update(client_kwargs)
    kwargs["per_retry_policies"] = [HttpLogPolicy(), *kwargs.get("per_retry_policies", [])]
    return with_retry_after_cap(kwargs)


class SentinelWorkspaceClient:
    """The alert rules and pre-flight of one workspace; build once per command per target.

    Implements :class:`sentinel_t1190.deploy.WorkspaceClient`. *client_kwargs* go to both
    SDK clients (``retry_total``, ``retry_backoff_factor``, ``retry_backoff_max``,
    ``raw_request_hook``, ``raw_response_hook``, ``connection_verify``…), except
    ``max_retry_after`` (seconds): the longest ``Retry-After`` waited (:mod:`.throttle`).
    """

    def __init__(self, credential: TokenCredential, cloud: Cloud, subscription_id: str,
                 resource_group: str, workspace: str, **client_kwargs: Any) -> None:
        from azure.mgmt.securityinsight import SecurityInsightsMgmtClient

        self.cloud = cloud
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace = workspace
        self._credential = credential
        self._kwargs = _client_kwargs(client_kwargs)
        self._arm = SecurityInsightsMgmtClient(
            credential, subscription_id, base_url=cloud.arm_endpoint,
            credential_scopes=[cloud.arm_scope], api_version=API_VERSION, **self._kwargs)
        self._logs: Any = None
        self._info: WorkspaceInfo | None = None

    @property
    def workspace_id(self) -> str:
        """The workspace's ARM resource id."""
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.OperationalInsights/workspaces/{self.workspace}")

    def __repr__(self) -> str:
        return f"SentinelWorkspaceClient({self.workspace_id!r})"

    def close(self) -> None:
        self._arm.close()
        if self._logs is not None:
            self._logs.close()

    def __enter__(self) -> SentinelWorkspaceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pre-flight ------------------------------------------------------------------------

    def _where(self) -> str:
        return (f"workspace {self.workspace!r} (resource group {self.resource_group!r}, "
                f"subscription {self.subscription_id})")

    def _get_json(self, url: str, what: str, *, missing_ok: bool = True
                  ) -> dict[str, Any] | None:
        """GET an ARM URL through the SDK pipeline; None on 404 when *missing_ok*."""
        try:
            response = self._arm.send_request(HttpRequest("GET", url))
            if response.status_code == 404 and missing_ok:
                return None
            response.raise_for_status()
            doc = response.json()
        except AzureError as exc:
            raise translate(exc, what) from exc
        except ValueError as exc:  # not JSON (an empty body included)
            raise unreadable(what, exc) from exc
        if not isinstance(doc, dict):
            raise unreadable(what, "not a JSON object")
        return doc

    def workspace_info(self) -> WorkspaceInfo:
        """The workspace (its customerId is the Logs API's workspace id); InputError if absent."""
        if self._info is not None:
            return self._info
        url = f"{self.cloud.arm_endpoint}{self.workspace_id}?api-version={WORKSPACE_API_VERSION}"
        what = f"reading {self._where()}"
        doc = self._get_json(url, what)
        if doc is None:
            raise InputError(f"{self._where()} not found: check --subscription-id, "
                             "--resource-group and --workspace")
        props = doc.get("properties")
        customer_id = props.get("customerId") if isinstance(props, dict) else None
        if not isinstance(customer_id, str) or not GUID.fullmatch(customer_id):
            raise unreadable(what, "no properties.customerId (the workspace ID)")
        location = doc.get("location")
        self._info = WorkspaceInfo(
            self.subscription_id, self.resource_group, self.workspace,
            str(doc.get("id") or self.workspace_id), customer_id,
            location if isinstance(location, str) else None)
        return self._info

    def sentinel_onboarded(self) -> bool:
        """Whether Microsoft Sentinel is enabled (``onboardingStates/default`` exists)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._arm.sentinel_onboarding_states.get(self.resource_group, self.workspace,
                                                     "default")
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise translate(exc, f"reading the Sentinel onboarding state of {self._where()}"
                            ) from exc
        except ValueError as exc:
            raise unreadable(f"reading the Sentinel onboarding state of {self._where()}",
                             exc) from exc
        return True

    def caller_permissions(self) -> list[dict[str, Any]]:
        """What the signed-in identity may do on the workspace: ARM's permissions API
        (``Permissions_ListForResource``), one ``{actions, notActions, ...}`` per role."""
        url = (f"{self.cloud.arm_endpoint}{self.workspace_id}/providers/"
                           f"Microsoft.Authorization/permissions?api-version="
                           f"{PERMISSIONS_API_VERSION}")
        found: list[dict[str, Any]] = []
        for _ in range(100):  # a page per role at most: a nextLink loop must not hang us
            doc = self._get_json(url, f"reading your permissions on {self._where()}") or {}
            found += [p for p in doc.get("value") or [] if isinstance(p, dict)]
            url = str(doc.get("nextLink") or "")
            if not url:
                break
        return found

    def preflight(self, *, sentinel: bool = True) -> WorkspaceInfo:
        info = self.workspace_info()
        if sentinel and not self.sentinel_onboarded():
            raise InputError(f"Microsoft Sentinel is not enabled on {self._where()}: "
                             "onboard it first (Microsoft Sentinel > Add workspace)")
        return info

    def table_schema(self, table: str) -> TableCheck:
        """``<table> | getschema`` through the Logs API: the columns as the workspace has them.

        A table the workspace cannot resolve (never ingested, connector off) makes the query
        fail with 400 — exactly what would make Sentinel auto-disable a rule reading it — and
        comes back as ``columns=None`` with the service's reason.
        """
        from azure.monitor.query import LogsQueryClient

        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
            raise InputError(f"not a table name: {table!r}")
        info = self.workspace_info()
        if self._logs is None:
            self._logs = LogsQueryClient(self._credential, endpoint=self.cloud.logs_endpoint,
                                         credential_scopes=[self.cloud.logs_scope],
                                         **self._kwargs)
        what = f"reading the schema of {table} in {self._where()}"
        request = HttpRequest(
            "POST", f"/workspaces/{info.customer_id}/query",
            json={"query": f"{table} | getschema | project ColumnName, ColumnType"},
            headers={"Accept": "application/json"})
        rows: list[list[Any]] = []
        try:
            response = self._logs.send_request(request, retry_on_methods=_RETRY_METHODS)
            response.raise_for_status()
            # The body is checked as a hunt's is (logs_response): never a half-read schema.
            parsed = parse_chunks([response.read()], rows.extend)
        except HttpResponseError as exc:
            if exc.status_code == 400:
                return TableCheck(table, None, f"table {table} cannot be queried in the "
                                  f"workspace: {service_message(exc)}")
            raise translate(exc, what, role=_LOGS_ROLE) from exc
        except AzureError as exc:
            raise translate(exc, what, role=_LOGS_ROLE) from exc
        except ResponseFormatError as exc:
            raise unreadable(what, exc) from exc
        if parsed.error is not None:
            raise AzureServiceError(f"{what}: partial result: {describe_error(parsed.error)}")
        if len(parsed.columns) != 2 or not all(isinstance(v, str) for r in rows for v in r):
            raise unreadable(what, f"getschema answered columns {parsed.columns!r:.100}, not "
                             "ColumnName and ColumnType as text")
        return TableCheck(table, {name: kind for name, kind in rows})

    # -- alert rules -----------------------------------------------------------------------

    def list_rules(self) -> list[dict[str, Any]]:
        """Every alert rule, following ``nextLink`` page by page (the JSON as ARM sends it).

        A page that is not a list of rules, a ``nextLink`` leaving the ARM endpoint (it would
        carry our token elsewhere) or leading back to a page already read (paging that would
        never end) is an error.
        """
        what = f"listing the alert rules of {self._where()}"
        url: Any = (f"{self.cloud.arm_endpoint}{self.workspace_id}/providers/"
                    f"Microsoft.SecurityInsights/alertRules?api-version={API_VERSION}")
        rules: list[dict[str, Any]] = []
        seen: set[str] = set()
        while url:
            if not isinstance(url, str) or not _same_origin(url, self.cloud.arm_endpoint):
                raise unreadable(what, f"nextLink {str(url)[:120]!r} is not an ARM URL")
            if url in seen:
                raise AzureServiceError(f"{what}: Azure's nextLink leads back to a page "
                                        "already read; paging would never end")
            seen.add(url)
            page = self._get_json(url, what, missing_ok=False) or {}
            value = page.get("value")
            if not isinstance(value, list):
                raise unreadable(what, "a page without a 'value' array")
            rules.extend(_rule_json(rule, what) for rule in value)
            url = page.get("nextLink")
        return rules

    def _rule_url(self, name: str) -> str:
        """The alert rule's URL, quoted as the SDK's own operations quote it."""
        from urllib.parse import quote

        return (f"{self.cloud.arm_endpoint}/subscriptions/{quote(self.subscription_id, safe='')}"
                f"/resourceGroups/{quote(self.resource_group, safe='')}/providers/"
                f"Microsoft.OperationalInsights/workspaces/{quote(self.workspace, safe='')}/"
                f"providers/Microsoft.SecurityInsights/alertRules/{quote(name, safe='')}"
                f"?api-version={API_VERSION}")

    def _rule_call(self, request: HttpRequest, what: str, role: str) -> dict[str, Any] | None:
        """Send an alert rule GET or PUT through the SDK client's pipeline; the rule's JSON
        as ARM sent it (None on 404). The SDK's ``alert_rules.get/create_or_update`` build
        a model of the answer, which was then turned back into this dict (``as_dict``): a
        sixth of a fleet rollout's CPU, for nothing."""
        try:
            response = self._arm.send_request(request)
            if response.status_code == 404 and request.method == "GET":
                return None
            response.raise_for_status()
            return _rule_json(response.json(), what)
        except AzureError as exc:
            raise translate(exc, what, role=role) from exc
        except ValueError as exc:  # not JSON (an empty body included)
            raise unreadable(what, exc) from exc

    def get_rule(self, name: str) -> dict[str, Any] | None:
        return self._rule_call(
            HttpRequest("GET", self._rule_url(name), headers={"Accept": "application/json"}),
            f"reading alert rule {name} in {self._where()}", _READ_ROLE)

    def put_rule(self, name: str, body: Mapping[str, Any], *,
                 etag: str | None = None) -> dict[str, Any]:
        """Create or update the rule with *body* sent as JSON, verbatim (no SDK model)."""
        payload = {**body, "etag": etag} if etag else dict(body)
        request = HttpRequest(
            "PUT", self._rule_url(name), content=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json", "Accept": "application/json"})
        rule = self._rule_call(request, f"writing alert rule {name} in {self._where()}",
                               _WRITE_ROLE)
        assert rule is not None  # a PUT's 404 is an error, raised above
        return rule

    def delete_rule(self, name: str) -> bool:
        """Delete; ARM answers 200 when it deleted and 204 (or 404) when there was nothing."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            status = self._arm.alert_rules.delete(
                self.resource_group, self.workspace, name,
                cls=lambda response, _body, _headers: response.http_response.status_code)
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise translate(exc, f"deleting alert rule {name} in {self._where()}",
                            role=_WRITE_ROLE) from exc
        except ValueError as exc:
            raise unreadable(f"deleting alert rule {name} in {self._where()}", exc) from exc
        return bool(status == 200)


def workspace_client(credential: TokenCredential, cloud: Cloud, subscription_id: str,
                     resource_group: str, workspace: str,
                     **client_kwargs: Any) -> SentinelWorkspaceClient:
    """The client for one workspace; *client_kwargs* go to the SDK clients."""
    return SentinelWorkspaceClient(credential, cloud, subscription_id, resource_group,
                                   workspace, **client_kwargs)


def workspace_client_for(target: Target, credential: TokenCredential, cloud: Cloud,
                         **client_kwargs: Any) -> SentinelWorkspaceClient:
    return workspace_client(credential, cloud, target.subscription_id, target.resource_group,
                            target.workspace, **client_kwargs)
