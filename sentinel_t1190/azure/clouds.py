"""Azure clouds: ARM and Logs endpoints, token scopes and authority hosts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from ..errors import InputError


class CloudName(StrEnum):
    AzureCloud = "AzureCloud"
    AzureUSGovernment = "AzureUSGovernment"
    AzureChinaCloud = "AzureChinaCloud"


@dataclass(frozen=True)
class Cloud:
    name: str
    authority_host: str
    arm_endpoint: str
    arm_scope: str
    #: The Logs Query API base, including ``/v1`` (what SENTINEL_LOGS_ENDPOINT overrides).
    logs_endpoint: str
    logs_scope: str
    #: Microsoft Graph (Defender XDR advanced hunting and custom detections).
    graph_endpoint: str
    graph_scope: str

    def with_overrides(self, arm_endpoint: str | None = None,
                       logs_endpoint: str | None = None,
                       graph_endpoint: str | None = None) -> Cloud:
        """Point at a private cloud or a test server; scopes stay those of the cloud."""
        for value in (arm_endpoint, logs_endpoint, graph_endpoint):
            if value and not value.startswith("https://"):
                raise InputError(f"endpoint must be an https:// URL: {value!r}")
        return replace(
            self,
            arm_endpoint=(arm_endpoint or self.arm_endpoint).rstrip("/"),
            logs_endpoint=(logs_endpoint or self.logs_endpoint).rstrip("/"),
            graph_endpoint=(graph_endpoint or self.graph_endpoint).rstrip("/"),
        )


CLOUDS: dict[CloudName, Cloud] = {
    CloudName.AzureCloud: Cloud(
        "AzureCloud", "login.microsoftonline.com",
        "https://management.azure.com", "https://management.azure.com/.default",
        "https://api.loganalytics.io/v1", "https://api.loganalytics.io/.default",
        "https://graph.microsoft.com", "https://graph.microsoft.com/.default"),
    CloudName.AzureUSGovernment: Cloud(
        "AzureUSGovernment", "login.microsoftonline.us",
        "https://management.usgovcloudapi.net", "https://management.usgovcloudapi.net/.default",
        "https://api.loganalytics.us/v1", "https://api.loganalytics.us/.default",
        "https://graph.microsoft.us", "https://graph.microsoft.us/.default"),
    CloudName.AzureChinaCloud: Cloud(
        "AzureChinaCloud", "login.chinacloudapi.cn",
        "https://management.chinacloudapi.cn", "https://management.chinacloudapi.cn/.default",
        "https://api.loganalytics.azure.cn/v1", "https://api.loganalytics.azure.cn/.default",
        "https://microsoftgraph.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/.default"),
}


def resolve_cloud(name: str | CloudName = CloudName.AzureCloud, *,
                  arm_endpoint: str | None = None, logs_endpoint: str | None = None,
                  graph_endpoint: str | None = None) -> Cloud:
    try:
        cloud = CLOUDS[CloudName(name)]
    except ValueError:
        raise InputError(f"unknown cloud {name!r}; use one of "
                         + ", ".join(c.value for c in CloudName)) from None
    return cloud.with_overrides(arm_endpoint, logs_endpoint, graph_endpoint)
