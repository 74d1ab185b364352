"""`backtest`: the findings a change to the pack adds and removes, before it ships."""

from typing import Annotated, Any

import typer

from .. import reports
from ..errors import ExitCode, InputError, PartialResultError
from ..reports import ReportFormat
from ..timespan import parse_instant
from .app import app
from .common import (
    ArmEndpoint,
    CloudOpt,
    Debug,
    LogsEndpoint,
    OptResourceGroup,
    OptSubscription,
    OptWorkspace,
    Out,
    PackDir,
    RuleIds,
    TenantId,
    Verbose,
    command,
    found,
    output_stream,
    warn,
)

ReportFormatOption = Annotated[ReportFormat, typer.Option(
    "--output", "-o", metavar="FORMAT", case_sensitive=False,
    help="table for people, json for machines, markdown for a pull-request comment, html "
    "for one self-contained page.")]

#: The window options backtest and health share (hunt words its own).
WindowStart = Annotated[str | None, typer.Option(
    "--start", metavar="TIME", help="Window start (exclusive), ISO 8601.")]
WindowEnd = Annotated[str | None, typer.Option(
    "--end", metavar="TIME", help="Window end (inclusive), ISO 8601. Default: now.")]
Clock = Annotated[str | None, typer.Option(
    "--now", metavar="TIME", help="Pin the clock (ISO 8601), e.g. for old exports.")]


@app.command("backtest")
@command
def backtest_command(
    baseline: Annotated[str, typer.Option(
        "--baseline", "-b", metavar="DIR|GITREF|deployed",
        help="What to compare with: another pack folder, a git revision (origin/main, "
        "HEAD~1, a tag) of the repository holding the pack, or 'deployed': the rules as "
        "deployed in --subscription-id/--resource-group/--workspace (read through ARM).")],
    local: Annotated[list[str] | None, typer.Option(
        "--local", "-l", metavar="FILE",
        help="Telemetry file both versions run over (as for hunt --local); repeat, or list "
        "several after it.")] = None,
    files: Annotated[list[str] | None, typer.Argument(
        metavar="FILE", help="More files for --local.", show_default=False)] = None,
    workspace_id: Annotated[list[str] | None, typer.Option(
        "--workspace-id", metavar="GUID",
        help="Run both versions in this Log Analytics workspace (repeatable) through the "
        "Logs API, as hunt --workspace-id does.")] = None,
    allow_partial: Annotated[bool, typer.Option(
        "--allow-partial", help="Exit 0 even when part of the data could not be "
        "searched.")] = False,
    rule: RuleIds = None,
    pack_dir: PackDir = None,
    timespan: Annotated[str | None, typer.Option(
        "--timespan", "-t", metavar="DURATION",
        help="How far back from --end/--now: 24h, 7d, PT36H... [default: 7d]")] = None,
    start: WindowStart = None,
    end: WindowEnd = None,
    now: Clock = None,
    fail_on_added: Annotated[bool, typer.Option(
        "--fail-on-added", help="Exit 1 when the change adds findings.")] = False,
    fail_on_removed: Annotated[bool, typer.Option(
        "--fail-on-removed", help="Exit 1 when the change removes findings.")] = False,
    output: ReportFormatOption = ReportFormat.table,
    out: Out = None,
    subscription_id: OptSubscription = None,
    resource_group: OptResourceGroup = None,
    workspace: OptWorkspace = None,
    cloud: CloudOpt = "AzureCloud",
    tenant_id: TenantId = None,
    arm_endpoint: ArmEndpoint = None,
    logs_endpoint: LogsEndpoint = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Run the pack and a baseline over the same data: per rule the findings added,
    removed and unchanged; per exclusion how many findings it suppresses (dead weight when
    none, a possible blind spot when most).

    Exit 1 with --fail-on-added / --fail-on-removed when that happens.
    """
    from .. import api

    paths = [*(local or []), *(files or [])]
    if files and not local:
        raise InputError(f"unexpected argument {files[0]!r}; files go after --local")
    common: dict[str, Any] = {
        "rule_ids": rule, "pack": api.load_pack(pack_dir), "timespan": timespan,
        "start": start, "end": end, "now": parse_instant(now) if now else None}
    if baseline == "deployed":
        common.update(_deployed(subscription_id, resource_group, workspace, tenant_id, cloud,
                                arm_endpoint, logs_endpoint))
    if workspace_id:
        if paths:
            raise InputError("give --local FILE... or --workspace-id GUID..., not both")
        from ..azure import credentials
        from ..azure.clouds import resolve_cloud
        from ..azure.logs import LogsClient, timespan_for

        where = resolve_cloud(cloud, logs_endpoint=logs_endpoint)
        with LogsClient(where, credentials.default_credential(where, tenant_id)) as client:
            result = api.backtest(
                baseline, workspaces=workspace_id, client=client,
                request_timespan=lambda w: timespan_for(w.start, w.end), **common)
    else:
        result = api.backtest(baseline, files=paths, **common)
    for message in result.warnings:
        warn(message)
    with output_stream(out) as stream:
        reports.backtest(result.to_dict(), output, stream)
    if not result.complete and not allow_partial:
        raise PartialResultError("part of the data could not be searched (see warnings): the "
                                 "comparison above is incomplete. Pass --allow-partial to "
                                 "accept that.")
    why = [f"{happened} finding(s) {what} and --fail-on-{what}" for what, asked, happened in (
        ("added", fail_on_added, result.added), ("removed", fail_on_removed, result.removed))
        if asked and happened]
    return found("; ".join(why)) if why else ExitCode.OK


def _deployed(subscription_id: str | None, resource_group: str | None, workspace: str | None,
              tenant_id: str | None, cloud: str, arm_endpoint: str | None,
              logs_endpoint: str | None) -> dict[str, Any]:
    """``--baseline deployed``: read each rule's deployed version through ARM."""
    from .. import api
    from ..deploy import Target

    if not (subscription_id and resource_group and workspace):
        raise InputError("--baseline deployed reads the rules from a workspace: give "
                         "--subscription-id, --resource-group and --workspace")
    target = Target(subscription_id, resource_group, workspace, tenant_id)
    with api.workspace_client(target, cloud=cloud, arm_endpoint=arm_endpoint,
                              logs_endpoint=logs_endpoint) as client:
        client.preflight()
        deployed = {str(r.get("name") or "").lower(): r for r in client.list_rules()}
    return {"fetch_deployed": deployed.get,
            "deployed_where": {"subscription_id": subscription_id,
                               "resource_group": resource_group, "workspace": workspace}}
