"""`doctor`: who is signed in, and whether it can read, write and query a workspace."""

from typing import Annotated

import typer

from .. import render
from ..errors import ExitCode
from ..render import OutputFormat
from .app import app
from .common import (
    ArmEndpoint,
    CloudOpt,
    Debug,
    GraphEndpoint,
    LogsEndpoint,
    OptResourceGroup,
    OptSubscription,
    OptWorkspace,
    Out,
    Output,
    PackDir,
    RuleIds,
    TenantId,
    Verbose,
    command,
    from_command_line,
    output_stream,
    require_workspace,
)


@app.command("doctor")
@command
def doctor_command(
    ctx: typer.Context,
    subscription_id: OptSubscription = None,
    resource_group: OptResourceGroup = None,
    workspace: OptWorkspace = None,
    rule: RuleIds = None,
    pack_dir: PackDir = None,
    output: Output = OutputFormat.table,
    out: Out = None,
    cloud: CloudOpt = "AzureCloud",
    tenant_id: TenantId = None,
    arm_endpoint: ArmEndpoint = None,
    logs_endpoint: LogsEndpoint = None,
    defender: Annotated[bool, typer.Option(
        "--defender", help="Also check Defender XDR through Microsoft Graph: advanced hunting "
        "(ThreatHunting.Read.All) and custom detection rules.")] = False,
    graph_endpoint: GraphEndpoint = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Check the sign-in: which credential answered, the tenant and object id (from the
    token's claims; the token is never shown), cloud and endpoints.

    With a workspace (--subscription-id, --resource-group, --workspace) also: the workspace,
    Sentinel on it, reading alert rules, writing them (your permissions there), querying it,
    and each table the pack's rules read; every failed check says what to fix (the missing
    role). Exit 0 when every check passes, 1 when one fails, 3 when nobody can sign in.
    """
    from .. import api
    from ..azure.clouds import resolve_cloud
    from ..deploy import Target
    from ..doctor import diagnose

    where = resolve_cloud(cloud, arm_endpoint=arm_endpoint, logs_endpoint=logs_endpoint,
                          graph_endpoint=graph_endpoint)
    target = None
    typed = from_command_line(ctx, "subscription_id")
    if resource_group or workspace or typed:
        target = Target(*require_workspace(subscription_id, resource_group, workspace),
                        tenant_id)
    rules = api.load_pack(pack_dir).select(rule) if target is not None else ()
    tables = sorted({table for r in rules for table in r.tables})
    diagnosis = diagnose(where, tenant_id=tenant_id, target=target, tables=tables,
                         defender=defender)
    with output_stream(out) as stream:
        render.doctor(diagnosis.to_dict(), output, stream)
    return ExitCode.OK if diagnosis.ok else ExitCode.FOUND
