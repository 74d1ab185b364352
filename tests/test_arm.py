"""azure/arm.py through the real SDK clients against the loopback server: reference-shaped
bodies (securityinsights 2025-12-01 examples), status codes, retries, clouds, redaction."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure_server import AzureServer, Workspace, fail
from test_deploy import dpe_columns

from sentinel_t1190.azure import arm
from sentinel_t1190.azure.clouds import resolve_cloud
from sentinel_t1190.azure.credentials import default_credential
from sentinel_t1190.errors import AuthError, AzureServiceError, ConflictError, InputError
from tests.identity import Identity

REFERENCE = Path(__file__).parent / "data" / "azure" / "securityinsights-2025-12-01"
EXAMPLE_ID = "73e01a99-5cd7-4139-a149-9f2736ff2ab5"


def example(name: str) -> dict[str, Any]:
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"reference example {path} not available")
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


#: Shaped like a JWT on purpose: redaction must catch it anywhere in a text.
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJmYWtlIjoidGVzdCJ9.ZmFrZS1zaWduYXR1cmU"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           identity: Identity) -> Iterator[AzureServer]:
    with AzureServer(tmp_path) as azure:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azure.ca_path))
        yield azure


@pytest.fixture
def ws(server: AzureServer) -> Workspace:
    return server.add_workspace(tables={"DeviceProcessEvents": dpe_columns()})


def client(server: AzureServer, ws: Workspace, cloud: str = "AzureCloud",
           **kwargs: Any) -> arm.SentinelWorkspaceClient:
    where = resolve_cloud(cloud, arm_endpoint=server.arm_endpoint,
                          logs_endpoint=server.logs_endpoint)
    return arm.workspace_client(default_credential(where), where, ws.subscription_id,
                                ws.resource_group, ws.name, retry_backoff_factor=0, **kwargs)


def test_list_and_get_return_the_service_json_verbatim(server: AzureServer,
                                                       ws: Workspace) -> None:
    listed = example("GetAllAlertRules.json")["responses"]["200"]["body"]["value"]
    for rule in listed:
        ws.rules[rule["name"].lower()] = copy.deepcopy(rule)
    with client(server, ws) as c:
        assert c.list_rules() == listed
        assert {r["kind"] for r in c.list_rules()} >= {"Scheduled", "Fusion"}
        got = c.get_rule(EXAMPLE_ID)
    scheduled = next(r for r in listed if r["name"] == EXAMPLE_ID)
    assert got == scheduled


def test_create_201_then_update_200_then_delete(server: AzureServer, ws: Workspace) -> None:
    create = example("CreateScheduledAlertRule.json")
    body = {k: v for k, v in create["parameters"]["alertRule"].items() if k != "etag"}
    with client(server, ws) as c:
        created = c.put_rule(EXAMPLE_ID, body)
        assert created["properties"]["query"] == "Heartbeat"
        assert created["properties"]["entityMappings"] == body["properties"]["entityMappings"]
        body["properties"]["severity"] = "Medium"
        updated = c.put_rule(EXAMPLE_ID, body, etag=created["etag"])
        assert updated["properties"]["severity"] == "Medium"
        assert c.delete_rule(EXAMPLE_ID) is True
        assert c.delete_rule(EXAMPLE_ID) is False
        assert c.get_rule(EXAMPLE_ID) is None  # 404 rule
    statuses = [(r.method, status) for r, status in server.replies]
    assert statuses == [("PUT", 201), ("PUT", 200), ("DELETE", 200), ("DELETE", 204),
                        ("GET", 404)]


def test_put_with_a_stale_etag_is_a_conflict(server: AzureServer, ws: Workspace) -> None:
    body = {"kind": "Scheduled", "properties": {"displayName": "x", "query": "Heartbeat"}}
    with client(server, ws) as c:
        created = c.put_rule("r1", body)
        ws.edit_rule("r1", displayName="edited in the portal")
        with pytest.raises(ConflictError, match="409 Conflict"):
            c.put_rule("r1", body, etag=created["etag"])


def test_missing_workspace_is_an_input_error(server: AzureServer) -> None:
    ghost = Workspace("00000000-0000-0000-0000-000000000000", "rg", "ghost", "x")
    with client(server, ghost) as c, pytest.raises(InputError, match=r"'ghost'.*not found"):
        c.preflight()


def test_workspace_info_and_table_schema(server: AzureServer, ws: Workspace) -> None:
    with client(server, ws) as c:
        info = c.preflight()
        assert (info.customer_id, info.location) == (ws.customer_id, "westeurope")
        check = c.table_schema("DeviceProcessEvents")
        assert check.columns is not None and check.columns["SHA256"] == "string"
        missing = c.table_schema("W3CIISLog")
        assert missing.columns is None
        assert missing.reason is not None and "SEM0100" not in missing.reason
        assert "Failed to resolve table or column expression named 'W3CIISLog'" in missing.reason
        with pytest.raises(InputError, match="not a table name"):
            c.table_schema("T | take 1")


def test_5xx_is_retried_then_succeeds(server: AzureServer, ws: Workspace) -> None:
    server.inject(fail(500, times=2, method="GET", contains="/alertRules"))
    with client(server, ws) as c:
        assert c.list_rules() == []
    assert len(server.calls("GET", "/alertRules")) == 3


def test_5xx_every_time_is_a_service_error(server: AzureServer, ws: Workspace) -> None:
    server.inject(fail(502, times=-1, code="BadGateway", message="upstream down"))
    with client(server, ws) as c, pytest.raises(AzureServiceError, match=r"502.*upstream down"):
        c.list_rules()
    assert len(server.requests) == 4


def test_logs_query_post_is_retried_on_429_without_retry_after(server: AzureServer,
                                                               ws: Workspace) -> None:
    server.inject(fail(429, method="POST", code="TooManyRequests"))
    with client(server, ws) as c:
        assert c.table_schema("DeviceProcessEvents").columns
    assert len(server.calls("POST", "/query")) == 2


def test_logs_403_is_an_auth_error_naming_log_analytics_reader(server: AzureServer,
                                                               ws: Workspace) -> None:
    server.inject(fail(403, method="POST", code="InsufficientAccessError",
                       message="The provided credentials have insufficient access"))
    with client(server, ws) as c, pytest.raises(AuthError, match="Log Analytics Reader"):
        c.table_schema("DeviceProcessEvents")


def test_unreachable_endpoint_is_a_service_error(ws: Workspace, identity: Identity) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    where = resolve_cloud(arm_endpoint=f"https://127.0.0.1:{port}")
    c = arm.workspace_client(default_credential(where), where, "s", "g", "w",
                             retry_backoff_factor=0,
                             retry_connect=1)
    with c, pytest.raises(AzureServiceError, match="cannot reach Azure"):
        c.list_rules()


@pytest.mark.parametrize(("cloud", "arm_scope", "logs_scope"), [
    ("AzureCloud", "https://management.azure.com/.default",
     "https://api.loganalytics.io/.default"),
    ("AzureUSGovernment", "https://management.usgovcloudapi.net/.default",
     "https://api.loganalytics.us/.default"),
    ("AzureChinaCloud", "https://management.chinacloudapi.cn/.default",
     "https://api.loganalytics.azure.cn/.default"),
])
def test_each_cloud_asks_for_its_own_scopes(server: AzureServer, ws: Workspace, cloud: str,
                                            arm_scope: str, logs_scope: str,
                                            identity: Identity) -> None:
    server.audiences = (arm_scope.removesuffix("/.default"), logs_scope.removesuffix("/.default"))
    with client(server, ws, cloud) as c:
        c.preflight()
        c.table_schema("DeviceProcessEvents")
    assert {r.resource + "/.default" for r in identity.token_requests} == {arm_scope, logs_scope}


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abc.def", "Authorization: Bearer REDACTED"),
    (f"token {TOKEN} end", "token REDACTED end"),
    ("https://x/y?sig=s3cr3t&sv=2020", "https://x/y?sig=REDACTED&sv=2020"),
    ("https://x/y?api-version=2025-10-01-preview", "https://x/y?api-version=2025-10-01-preview"),
])
def test_redact(text: str, expected: str) -> None:
    assert arm.redact(text) == expected
