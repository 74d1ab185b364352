"""`status`: is what is deployed what the pack says? in-sync, drifted, missing, disabled..."""

import typer

from .. import render
from ..errors import ExitCode
from ..render import OutputFormat
from .app import app
from .common import (
    AllowRefused,
    ArmEndpoint,
    CloudOpt,
    Debug,
    Defender,
    GraphEndpoint,
    LogsEndpoint,
    OptResourceGroup,
    OptSubscription,
    OptWorkspace,
    Out,
    PackDir,
    ReportOutput,
    RuleIds,
    TenantId,
    Verbose,
    command,
    found,
    from_command_line,
    not_in_sync,
    output_stream,
    refused_summary,
    require_workspace,
)
from .deploy import connect
from .rollout import Concurrency, Discover, TargetsFile, fleet_status


@app.command("status")
@command
def status_command(
    ctx: typer.Context,
    subscription_id: OptSubscription = None,
    resource_group: OptResourceGroup = None,
    workspace: OptWorkspace = None,
    rule: RuleIds = None,
    pack_dir: PackDir = None,
    targets: TargetsFile = None,
    discover: Discover = False,
    concurrency: Concurrency = 8,
    allow_refused: AllowRefused = False,
    output: ReportOutput = OutputFormat.table,
    out: Out = None,
    cloud: CloudOpt = "AzureCloud",
    tenant_id: TenantId = None,
    arm_endpoint: ArmEndpoint = None,
    logs_endpoint: LogsEndpoint = None,
    defender: Defender = False,
    graph_endpoint: GraphEndpoint = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Compare the deployed rules with the pack: in-sync, drifted (with a diff of each
    changed field), missing, refused (not deployed, and deploy refuses it there: the reason
    says why), disabled, auto-disabled. Exit 1 when any rule is not in sync (refused ones
    too, unless --allow-refused).

    One workspace (--subscription-id, --resource-group, --workspace), or a fleet:
    --targets FILE or --discover (--subscription-id then narrows the discovery).
    """
    from .. import api
    from ..deploy import Target, status

    # Extension point: fleet forms (--targets/--discover) branch here, before the single
    # target is required.
    if targets is not None or discover:
        if not from_command_line(ctx, "subscription_id"):
            subscription_id = None  # AZURE_SUBSCRIPTION_ID names no fleet: a default only
        return fleet_status(targets, discover, subscription_id, resource_group, workspace,
                            rule, concurrency, cloud, tenant_id, arm_endpoint, logs_endpoint,
                            output, out, pack_dir, allow_refused)
    rules = api.load_pack(pack_dir).select(rule)
    if defender:
        from . import defender as on_defender

        return on_defender.status(rules, allow_refused=allow_refused, cloud=cloud,
                                  tenant_id=tenant_id, graph_endpoint=graph_endpoint,
                                  output=output, out=out)
    target = Target(*require_workspace(subscription_id, resource_group, workspace), tenant_id)
    with connect(target, cloud, arm_endpoint, logs_endpoint) as client:
        result = status(client, rules)
    with output_stream(out) as stream:
        render.status_result(result, output, stream)
    if result.out_of_sync:
        return found(not_in_sync(s.state.value for s in result.out_of_sync) + " (see above)")
    if result.refused and not allow_refused:
        return found(refused_summary(s.rule for s in result.refused))
    return ExitCode.OK

