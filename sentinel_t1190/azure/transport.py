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

    session = requests.Session()
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


def _bearer_only(request: Any) -> Any:
    """A requests auth that leaves the request as azure-core signed it."""
    return request


def close_transport(transport: Any) -> None:
    """Close the shared session of a transport made by :func:`pooled_transport`."""
    if transport is not None and transport.session is not None:
        transport.session.close()
