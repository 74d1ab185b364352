"""deploy/status/remove --defender: the pack as Defender XDR custom detection rules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import render
from ..errors import ExitCode
from ..render import OutputFormat
from .common import GraphEndpoint, found, not_in_sync, output_stream, refused_summary, warn
from .deploy import deploy_exit

if TYPE_CHECKING:
    from ..azure.graph import DetectionRulesClient
    from ..rules import Rule

__all__ = ["GraphEndpoint", "deploy", "remove", "status"]


def _client(cloud: str, tenant_id: str | None, graph_endpoint: str | None
            ) -> DetectionRulesClient:
    from ..azure import credentials
    from ..azure.clouds import resolve_cloud
    from ..azure.graph import DetectionRulesClient

    where = resolve_cloud(cloud, graph_endpoint=graph_endpoint)
    return DetectionRulesClient(where, credentials.default_credential(where, tenant_id))


def deploy(rules: Sequence[Rule], *, dry_run: bool, disabled: bool, isolate: bool,
           allow_refused: bool, cloud: str, tenant_id: str | None,
           graph_endpoint: str | None, output: OutputFormat, out: Path | None) -> int:
    from .. import defender_deploy

    if isolate:
        warn("--isolate-device: every alert of these rules will isolate the device from the "
             "network automatically")
    with _client(cloud, tenant_id, graph_endpoint) as client:
        result = defender_deploy.deploy(client, rules, tenant=tenant_id, dry_run=dry_run,
                                        disabled=disabled, isolate=isolate)
    _render(result, "action", "deploy", output, out)
    return deploy_exit(result.failed, result.refused, allow_refused)


def status(rules: Sequence[Rule], *, allow_refused: bool, cloud: str, tenant_id: str | None,
           graph_endpoint: str | None, output: OutputFormat, out: Path | None) -> int:
    from .. import defender_deploy
    from ..deploy import RuleState

    with _client(cloud, tenant_id, graph_endpoint) as client:
        result = defender_deploy.status(client, rules, tenant=tenant_id)
    _render(result, "state", "status", output, out)
    off = [s.state.value for s in result.rules
           if s.state not in (RuleState.IN_SYNC, RuleState.REFUSED)]
    if off:
        return found(not_in_sync(off) + " (see above)")
    if result.refused and not allow_refused:
        return found(refused_summary(s.rule for s in result.refused))
    return ExitCode.OK


def remove(rules: Sequence[Rule], *, cloud: str, tenant_id: str | None,
           graph_endpoint: str | None, output: OutputFormat, out: Path | None) -> int:
    from .. import defender_deploy

    with _client(cloud, tenant_id, graph_endpoint) as client:
        result = defender_deploy.remove(client, rules, tenant=tenant_id)
    _render(result, "action", "remove", output, out)
    return ExitCode.OK


def _render(result: Any, key: str, title: str, output: OutputFormat, out: Path | None) -> None:
    with output_stream(out) as stream:
        render.rule_report(result.to_dict(), key, title, output, stream)
