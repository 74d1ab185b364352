"""Slow down before ARM throttles: read ``x-ms-ratelimit-remaining-subscription-*``.

ARM meters each subscription (per identity and region) with token buckets — about 250 reads
refilled at 25/s and 200 writes (and deletes) refilled at 10/s — and says how many are left
in ``x-ms-ratelimit-remaining-subscription-reads`` / ``-writes`` / ``-deletes`` on every
response. Past zero it answers 429 with ``Retry-After``, which the SDK's retry policy obeys;
this module keeps a fleet rollout from getting there: when a subscription's estimated
remaining budget falls below a floor, requests to it wait until the bucket has refilled
above the floor. Other subscriptions are not held up.

:class:`ArmThrottle` plugs into any azure-core client through the ``raw_request_hook`` /
``raw_response_hook`` keywords (azure-core ``CustomHookPolicy``), which run once per attempt,
retries included. One instance is shared by all worker threads.

``Retry-After`` is obeyed by the SDK's retry policy however long it is, so a service (or
anything posing as one) answering ``Retry-After: 3600`` would stall a hunt or rollout for an
hour per retry. :class:`RetryAfterCap` bounds that: an answer asking to wait longer than
``max_retry_after`` seconds (default :data:`DEFAULT_MAX_RETRY_AFTER`, ``--max-retry-after``)
is not retried; :class:`RetryAfterTooLong` fails that request (that slice, that target) at
once with the reason.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy

from ..errors import AzureServiceError, InputError

#: Longest ``Retry-After`` waited before a retry, in seconds (``--max-retry-after``).
DEFAULT_MAX_RETRY_AFTER = 120.0
#: Statuses the retry policies retry (and would wait ``Retry-After`` for). A 504 is left out:
#: the Logs API's is split into smaller queries instead of waited for.
_RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503})
_SUBSCRIPTION = re.compile(r"/subscriptions/([^/?#]+)", re.IGNORECASE)
HEADER = "x-ms-ratelimit-remaining-subscription-{}"


@dataclass(frozen=True)
class Bucket:
    """One ARM token bucket: its size, refill per second, and the floor we keep above."""

    capacity: float
    refill_per_second: float
    floor: float


#: ARM's documented buckets (per subscription, identity and region) and our floors.
DEFAULT_BUCKETS = {
    "reads": Bucket(250, 25, 25),
    "writes": Bucket(200, 10, 20),
    "deletes": Bucket(200, 10, 20),
}


def _kind(method: str) -> str:
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "reads"
    return "deletes" if method == "DELETE" else "writes"


class ArmThrottle:
    """Per-subscription remaining-budget estimates, fed by response headers.

    Nothing waits until a response has told us a subscription's budget; after that each
    request spends one token from the estimate (refilled at the bucket's rate), and the
    next header resets it to what ARM says.
    """

    def __init__(self, buckets: dict[str, Bucket] | None = None, *, max_wait: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.buckets = buckets or DEFAULT_BUCKETS
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        #: (subscription, kind) -> (estimated remaining, when estimated)
        self._state: dict[tuple[str, str], tuple[float, float]] = {}
        #: (subscription, kind) -> requests sent whose response has not come back yet
        self._inflight: dict[tuple[str, str], int] = {}
        #: Seconds spent waiting, in total (read by the rollout report).
        self.waited = 0.0

    def hooks(self) -> dict[str, Any]:
        """The client keywords that install this throttle."""
        return {"raw_request_hook": self.on_request, "raw_response_hook": self.on_response}

    def _estimate(self, key: tuple[str, str], now: float) -> float | None:
        state = self._state.get(key)
        if state is None:
            return None
        remaining, at = state
        bucket = self.buckets[key[1]]
        return min(bucket.capacity, remaining + (now - at) * bucket.refill_per_second)

    def before(self, subscription: str, method: str) -> None:
        """Wait while *subscription*'s budget for *method* is below the floor, then spend one."""
        key = (subscription.lower(), _kind(method))
        bucket = self.buckets[key[1]]
        while True:
            with self._lock:
                now = self._clock()
                estimate = self._estimate(key, now)
                if estimate is None or estimate >= bucket.floor:
                    self._inflight[key] = self._inflight.get(key, 0) + 1
                    if estimate is not None:
                        self._state[key] = (estimate - 1, now)
                    return
                wait = min(self.max_wait,
                           (bucket.floor - estimate + 1) / bucket.refill_per_second)
                self.waited += wait
            self._sleep(wait)

    def after(self, subscription: str, method: str, headers: Any) -> None:
        """Record what ARM says is left (``x-ms-ratelimit-remaining-subscription-*``).

        Requests still in flight will spend from that too, so they are deducted: replies
        overtaking each other never make the estimate more generous than the truth.
        """
        key = (subscription.lower(), _kind(method))
        with self._lock:
            inflight = max(0, self._inflight.get(key, 0) - 1)
            self._inflight[key] = inflight
            try:
                remaining = float(headers.get(HEADER.format(key[1])))
            except (TypeError, ValueError):
                return
            self._state[key] = (remaining - inflight, self._clock())

    # azure-core CustomHookPolicy callbacks ----------------------------------------------------

    def on_request(self, request: Any) -> None:
        http = request.http_request
        match = _SUBSCRIPTION.search(http.url)
        if match:
            self.before(match[1], http.method)

    def on_response(self, response: Any) -> None:
        http = response.http_request
        match = _SUBSCRIPTION.search(http.url)
        if match:
            self.after(match[1], http.method, response.http_response.headers)


class RetryAfterTooLong(AzureServiceError):
    """Azure asked to wait longer than the cap before retrying; the request failed instead."""

    def __init__(self, message: str, *, status: int, wait: float) -> None:
        super().__init__(message)
        self.status = status
        self.wait = wait


class RetryAfterCap(SansIOHTTPPolicy[Any, Any]):
    """Fail a retriable answer whose ``Retry-After`` exceeds *max_seconds* (a per-retry policy).

    Installed after the retry policy (``per_retry_policies``), it sees every attempt's answer
    before the retry policy decides to sleep; raising an error that is not an ``AzureError``
    takes the request out of the retry loop at once.
    """

    def __init__(self, max_seconds: float = DEFAULT_MAX_RETRY_AFTER) -> None:
        if not 0 <= max_seconds < float("inf"):
            raise InputError(f"--max-retry-after must be a number of seconds >= 0, got "
                             f"{max_seconds}")
        self.max_seconds = max_seconds
        self._reader = RetryPolicy()

    def on_response(self, request: PipelineRequest[Any],
                    response: PipelineResponse[Any, Any]) -> None:
        status = response.http_response.status_code
        if status not in _RETRIED_STATUSES:
            return
        wait = self._reader.get_retry_after(response)
        if wait is None or wait <= self.max_seconds:
            return
        close = getattr(response.http_response, "close", None)
        if callable(close):
            close()  # a streamed answer: give the connection back
        raise RetryAfterTooLong(
            f"Azure answered HTTP {status} to {request.http_request.method} "
            f"{_path(request.http_request.url)} and asked to wait {wait:g} s before "
            f"retrying, more than the {self.max_seconds:g} s --max-retry-after allows; "
            "not retried", status=status, wait=wait)


def _path(url: str) -> str:
    """The URL without its query string (which may carry a signature) or host."""
    from urllib.parse import urlsplit

    return urlsplit(url).path


def with_retry_after_cap(client_kwargs: dict[str, Any]) -> dict[str, Any]:
    """*client_kwargs* for an SDK client, ``max_retry_after`` (seconds, optional) turned into
    a :class:`RetryAfterCap` first among its ``per_retry_policies`` (so those after it, such
    as the ``--verbose`` HTTP log, still see the answer it refuses)."""
    kwargs = dict(client_kwargs)
    cap = RetryAfterCap(float(kwargs.pop("max_retry_after", DEFAULT_MAX_RETRY_AFTER)))
    kwargs["per_retry_policies"] = [cap, *kwargs.get("per_retry_policies", [])]
    return kwargs
