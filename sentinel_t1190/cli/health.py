"""`health`: how the pack's rules behave in production, per workspace or across a fleet."""

from typing import TYPE_CHECKING, Annotated

import typer

from .. import reports
from ..errors import ExitCode, InputError
from ..reports import ReportFormat
from ..timespan import parse_instant
from .app import app
from .backtest import Clock, ReportFormatOption, WindowEnd, WindowStart
from .common import (
    ArmEndpoint,
    CloudOpt,
    Debug,
    LogsEndpoint,
    Out,
    PackDir,
    RuleIds,
    TenantId,
    Verbose,
    command,
    output_stream,
    warn,
)
from .rollout import Discover, DiscoverSubscriptions, TargetsFile, _targets

if TYPE_CHECKING:
    from ..deploy import Target, WorkspaceInfo


@app.command("health")
@command
def health_command(
    workspace_id: Annotated[list[str] | None, typer.Option(
        "--workspace-id", metavar="GUID",
        help="Workspace ID to report on (repeatable); or use --targets / --discover.")] = None,
    targets: TargetsFile = None,
    discover: Discover = False,
    subscription_id: DiscoverSubscriptions = None,
    rule: RuleIds = None,
    pack_dir: PackDir = None,
    timespan: Annotated[str | None, typer.Option(
        "--timespan", "-t", metavar="DURATION",
        help="How far back from --end/--now: 7d, 30d, P30D... [default: 30d]")] = None,
    start: WindowStart = None,
    end: WindowEnd = None,
    now: Clock = None,
    noisy_per_day: Annotated[float, typer.Option(
        "--noisy-alerts-per-day", metavar="N", min=0,
        help="Flag a rule raising more alerts than this per day as noisy.")] = 10.0,
    fail_on_unhealthy: Annotated[bool, typer.Option(
        "--fail-on-unhealthy", help="Exit 1 when a rule is failing, auto-disabled, not "
        "running or noisy, or a workspace could not be read.")] = False,
    output: ReportFormatOption = ReportFormat.table,
    out: Out = None,
    cloud: CloudOpt = "AzureCloud",
    tenant_id: TenantId = None,
    arm_endpoint: ArmEndpoint = None,
    logs_endpoint: LogsEndpoint = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Per rule: runs and failures with reasons (SentinelHealth), last run, auto-disabled
    state, alerts (SecurityAlert), incidents by how they were closed (SecurityIncident,
    latest state of each), precision and alerts per day; noisy or failing rules flagged.
    """
    from .. import api
    from ..azure import credentials
    from ..azure.clouds import resolve_cloud
    from ..azure.logs import LogsClient
    from ..health import logs_querier

    if workspace_id and (targets is not None or discover):
        raise InputError("give --workspace-id, or --targets/--discover, not both")
    azure = {"cloud": cloud, "tenant_id": tenant_id, "arm_endpoint": arm_endpoint}
    fleet: list[str | Target] = list(workspace_id or []) or list(
        _targets(targets, discover, subscription_id, azure, None))
    pack = api.load_pack(pack_dir)
    where = resolve_cloud(cloud, arm_endpoint=arm_endpoint, logs_endpoint=logs_endpoint)

    def resolve(target: "Target") -> "WorkspaceInfo":
        with api.workspace_client(target, cloud=cloud, arm_endpoint=arm_endpoint,
                                  logs_endpoint=logs_endpoint) as client:
            return client.workspace_info()

    with LogsClient(where, credentials.default_credential(where, tenant_id)) as client:
        report = api.health(
            fleet, query=logs_querier(client), rule_ids=rule, pack=pack, timespan=timespan,
            start=start, end=end, now=parse_instant(now) if now else None,
            noisy_per_day=noisy_per_day, resolve=resolve)
    for entry in report.workspaces:
        label = reports.workspace_label(entry.workspace)
        for message in entry.warnings:
            warn(f"{label}: {message}")
        if entry.error:
            typer.echo(f"error: {label}: {entry.error}", err=True)
    with output_stream(out) as stream:
        reports.health(report.to_dict(), output, stream)
    return ExitCode.FOUND if fail_on_unhealthy and report.unhealthy else ExitCode.OK
