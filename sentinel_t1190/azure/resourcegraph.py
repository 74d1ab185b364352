"""Workspace discovery with Azure Resource Graph: every Sentinel-enabled workspace in sight.

One KQL query over ``resources`` joins Log Analytics workspaces with the
``Microsoft.OperationsManagement/solutions`` resource named ``SecurityInsights(<workspace>)``
that onboarding Sentinel creates (its ``properties.workspaceResourceId`` points at the
workspace). With no subscriptions given, Resource Graph answers for every subscription the
identity can see, Azure Lighthouse-delegated customer subscriptions included.

Pages: at most 1,000 rows each, followed through ``$skipToken``. Throttling: Resource Graph
allows about 15 queries per 5 seconds per user; :class:`QueryPacer` keeps under it on the
client and honours ``x-ms-user-quota-remaining`` / ``x-ms-user-quota-resets-after``; a 429
is retried after its ``Retry-After`` by the SDK's retry policy (POST included: the query
only reads).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AuthError, AzureServiceError, InputError
from ..targets import Target, target_key
from .clouds import Cloud
from .throttle import DEFAULT_MAX_RETRY_AFTER, with_retry_after_cap

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

#: Sentinel-enabled workspaces. Joined on the lower-cased workspace resource id: two
#: workspaces of the same name in different resource groups must not be confused.
SENTINEL_WORKSPACES_QUERY = """\
resources
| where type =~ 'microsoft.operationalinsights/workspaces'
| extend workspaceKey = tolower(id)
| join kind=inner (
    resources
    | where type =~ 'microsoft.operationsmanagement/solutions'
    | where name startswith 'SecurityInsights('
    | extend workspaceKey = tolower(tostring(properties.workspaceResourceId))
    | project workspaceKey
) on workspaceKey
| project id, name, subscriptionId, resourceGroup, tenantId, location
| order by id asc"""

PAGE_SIZE = 1000
#: Resource Graph's documented per-user budget.
QUERIES_PER_WINDOW = 15
WINDOW_SECONDS = 5.0

_WORKSPACE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/"
    r"microsoft\.operationalinsights/workspaces/(?P<ws>[^/]+)$", re.IGNORECASE)


class QueryPacer:
    """At most *limit* queries per *window* seconds, shared by every caller in the process.

    Also waits out the window the service announces when its quota header reaches zero.
    """

    def __init__(self, limit: int = QUERIES_PER_WINDOW, window: float = WINDOW_SECONDS, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def acquire(self, max_wait: float = DEFAULT_MAX_RETRY_AFTER) -> None:
        """Wait for a slot; AzureServiceError when the quota resets more than *max_wait*
        seconds from now (``--max-retry-after``), rather than waiting that long."""
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                wait = max(self._blocked_until - now,
                           self._sent[0] + self.window - now if len(self._sent) >= self.limit
                           else 0.0)
                if wait <= 0:
                    self._sent.append(now)
                    return
            if wait > max_wait:
                raise AzureServiceError(
                    f"Resource Graph: the query quota resets in {wait:.0f} s, more than the "
                    f"{max_wait:.0f} s --max-retry-after allows; not waited")
            self._sleep(wait)

    def observe(self, headers: Any) -> None:
        """Read ``x-ms-user-quota-remaining`` / ``-resets-after`` (``hh:mm:ss``)."""
        remaining = headers.get("x-ms-user-quota-remaining")
        resets = headers.get("x-ms-user-quota-resets-after")
        if remaining is None or resets is None:
            return
        try:
            left = int(remaining)
            h, m, s = (float(part) for part in str(resets).split(":"))
        except ValueError:
            return
        if left <= 0:
            with self._lock:
                self._blocked_until = max(self._blocked_until,
                                          self._clock() + h * 3600 + m * 60 + s)


#: One pacer per process: the budget is per user, not per client object.
DEFAULT_PACER = QueryPacer()


def parse_workspace_id(resource_id: str) -> Target:
    """``/subscriptions/…/resourceGroups/…/providers/Microsoft.OperationalInsights/
    workspaces/…`` → :class:`Target`."""
    match = _WORKSPACE_ID.match(resource_id.strip())
    if match is None:
        raise InputError(f"not a Log Analytics workspace resource id: {resource_id!r}")
    return Target(match["sub"].lower(), match["rg"], match["ws"])


def graph_client(credential: TokenCredential, cloud: Cloud, **client_kwargs: Any) -> Any:
    """A ``ResourceGraphClient`` for *cloud* (base URL and token scope of that cloud);
    ``max_retry_after`` in *client_kwargs* caps the ``Retry-After`` waited (:mod:`.throttle`)."""
    from azure.mgmt.resourcegraph import ResourceGraphClient

    return ResourceGraphClient(credential, base_url=cloud.arm_endpoint,
                               credential_scopes=[cloud.arm_scope],
                               **with_retry_after_cap(client_kwargs))


def _pages(client: Any, query: str, subscriptions: Sequence[str] | None,
           pacer: QueryPacer, max_wait: float) -> Iterator[list[Any]]:
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

    token: str | None = None
    seen: set[str] = set()
    while True:
        request = QueryRequest(
            query=query, subscriptions=list(subscriptions) if subscriptions else None,
            options=QueryRequestOptions(top=None if token else PAGE_SIZE, skip_token=token,
                                        result_format="objectArray"))
        pacer.acquire(max_wait)
        try:
            response = client.resources(
                request, retry_on_methods=frozenset({"POST"}),
                raw_response_hook=lambda r: pacer.observe(r.http_response.headers))
        except ClientAuthenticationError as exc:
            raise AuthError(f"Resource Graph: authentication failed: {exc.message}") from exc
        except HttpResponseError as exc:
            if exc.status_code in (401, 403):
                raise AuthError(f"Resource Graph: access denied ({exc.status_code}): "
                                f"{exc.message} (the identity needs Reader on the "
                                "subscriptions to discover, or delegated access through "
                                "Azure Lighthouse)") from exc
            if exc.status_code is not None and exc.status_code < 400:  # DecodeError
                raise _unreadable(exc.message) from exc
            raise AzureServiceError(f"Resource Graph query failed ({exc.status_code}): "
                                    f"{exc.message}") from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise AzureServiceError(f"Resource Graph unreachable: {exc.message}") from exc
        except AzureError as exc:
            raise AzureServiceError(f"Resource Graph query failed: {exc.message}") from exc
        except ValueError as exc:  # DeserializationError: fields of the wrong type
            raise _unreadable(str(exc).splitlines()[0] if str(exc) else "") from exc
        rows = getattr(response, "data", None)
        if not isinstance(rows, list):
            raise _unreadable("no 'data' array of objects")
        yield rows
        token = response.skip_token
        if not token:
            if str(response.result_truncated).lower() == "true":
                raise AzureServiceError("Resource Graph truncated the workspace list without "
                                        "a $skipToken to page on; narrow --subscription-id")
            return
        if token in seen:
            raise AzureServiceError("Resource Graph returned the same $skipToken twice; "
                                    "paging would never end")
        seen.add(token)


def _unreadable(reason: str) -> AzureServiceError:
    return AzureServiceError(f"Resource Graph: unreadable answer: {reason}")


def discover_workspaces(client: Any, *, subscriptions: Sequence[str] | None = None,
                        pacer: QueryPacer | None = None,
                        max_wait: float = DEFAULT_MAX_RETRY_AFTER) -> list[Target]:
    """Every Sentinel-enabled workspace *client*'s identity sees (in *subscriptions* if given).

    Sorted and de-duplicated. Targets carry no tenant: what Resource Graph shows the identity
    (its own subscriptions and Lighthouse-delegated ones) is reached with a token of the
    identity's own tenant; asking the customer's tenant for a token would fail for a
    Lighthouse identity. A row that is not a workspace is an error, never skipped: the
    fleet would silently lose a workspace. *max_wait*: the longest wait for the quota.
    """
    found: dict[tuple[str, str, str], Target] = {}
    for rows in _pages(client, SENTINEL_WORKSPACES_QUERY, subscriptions,
                       pacer or DEFAULT_PACER, max_wait):
        for row in rows:
            resource_id = row.get("id") if isinstance(row, dict) else None
            try:
                target = parse_workspace_id(resource_id if isinstance(resource_id, str)
                                            else repr(row)[:120])
            except InputError as exc:
                raise _unreadable(str(exc)) from exc
            found.setdefault(target_key(target), target)
    return sorted(found.values(), key=target_key)
