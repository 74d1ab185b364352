"""One HTTP connection pool for a whole fleet run.

Each workspace client would otherwise open its own TLS connections (ARM and the Logs API)
and throw them away after its workspace: two handshakes per workspace, each a few round
trips to Azure. A fleet run shares one ``requests`` session, sized for its workers, so
connections are reused from workspace to workspace. The SDK clients are told the session
is not theirs (``session_owner=False``): closing a client leaves the pool open, and the
factory that made it closes it at the end.
"""

from __future__ import annotations

from typing import Any

#: Transport settings that belong to the connection, not to a client.
_CONNECTION_KEYS = ("connection_verify", "connection_cert", "connection_timeout",
                    "read_timeout", "use_env_settings")


def pooled_transport(pool_size: int, **client_kwargs: Any) -> Any:
    """A ``RequestsTransport`` over a shared session with *pool_size* connections per host.

    *client_kwargs* are the SDK client keywords; their connection settings
    (``connection_verify``…) are applied to the transport.
    """
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from urllib3.util.retry import Retry

    session = _session_class()()
    # Retries are azure-core's job (RetryPolicy); the adapter must not retry on its own.
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=pool_size,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    for scheme in ("https://", "http://"):
        session.mount(scheme, adapter)
    # Requests authenticate with bearer tokens. Without an auth of its own, requests looks
    # for ~/.netrc on every request (a tenth of a fleet run's CPU), and an entry there for
    # the host would replace the token with basic auth. Proxies from the environment stay.
    session.auth = _bearer_only
    settings = {k: v for k, v in client_kwargs.items() if k in _CONNECTION_KEYS}
    return RequestsTransport(session=session, session_owner=False, **settings)


def _session_class() -> Any:
    import requests

    class FleetSession(requests.Session):
        """A session that reads the environment's proxy and CA settings once per host.

        requests reads them for every request (``HTTPS_PROXY``, ``NO_PROXY``,
        ``REQUESTS_CA_BUNDLE``…: a scan of the whole environment, a twentieth of a fleet
        run's CPU); they do not change while a fleet run lasts, so the first answer for a
        host (and the same per-call settings) is kept.
        """

        def __init__(self) -> None:
            super().__init__()
            self._environment: dict[Any, dict[str, Any]] = {}

        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                       cert: Any) -> Any:
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())),
                   stream, verify, cert)
            try:
                settings = self._environment.get(key)
            except TypeError:  # an unhashable setting: as requests does, every time
                return super().merge_environment_settings(url, proxies, stream, verify, cert)
            if settings is None:
                settings = super().merge_environment_settings(url, proxies, stream, verify,
                                                              cert)
                self._environment[key] = settings
            return {**settings, "proxies": dict(settings["proxies"])}

    return FleetSession


def _bearer_only(request: Any) -> Any:
    """A requests auth that leaves the request as azure-core signed it."""
    return request


def close_transport(transport: Any) -> None:
    """Close the shared session of a transport made by :func:`pooled_transport`."""
    if transport is not None and transport.session is not None:
        transport.session.close()
