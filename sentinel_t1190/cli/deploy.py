"""`deploy`: create or update the pack's rules in one Sentinel workspace (plan first)."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from .. import render
from ..errors import ExitCode, InputError
from ..render import OutputFormat
from ..safe_text import visible
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
    output_stream,
    refused_summary,
    require_workspace,
)

if TYPE_CHECKING:
    from ..azure.arm import SentinelWorkspaceClient
    from ..deploy import RulePlan, Target


def connect(target: "Target", cloud: str, arm_endpoint: str | None,
            logs_endpoint: str | None) -> "SentinelWorkspaceClient":
    """The workspace client for a command's target options (deploy, status, remove)."""
    from .. import api

    return api.workspace_client(target, cloud=cloud, arm_endpoint=arm_endpoint,
                                logs_endpoint=logs_endpoint)


@app.command("deploy")
@command
def deploy_command(
    subscription_id: OptSubscription = None,
    resource_group: OptResourceGroup = None,
    workspace: OptWorkspace = None,
    rule: RuleIds = None,
    pack_dir: PackDir = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the plan (created/updated with field diffs/unchanged); "
        "write nothing.")] = False,
    disabled: Annotated[bool, typer.Option(
        "--disabled", help="Deploy the rules disabled.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Deploy even when the workspace lacks a table or column the rule "
        "reads (Sentinel will auto-disable it).")] = False,
    allow_refused: AllowRefused = False,
    output: ReportOutput = OutputFormat.table,
    out: Out = None,
    cloud: CloudOpt = "AzureCloud",
    tenant_id: TenantId = None,
    arm_endpoint: ArmEndpoint = None,
    logs_endpoint: LogsEndpoint = None,
    defender: Defender = False,
    isolate_device: Annotated[bool, typer.Option(
        "--isolate-device", help="With --defender: each alert isolates its device (a response "
        "action; off unless asked).")] = False,
    graph_endpoint: GraphEndpoint = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Create or update the pack's rules in a Sentinel workspace, idempotently.

    Checks the workspace, Sentinel on it and each rule's table first; shows per rule
    created / updated (with a diff of each changed field) / unchanged / refused (with the
    reason). Unchanged rules are not written; every write is read back. Exit 1 when a rule is
    refused (unless --allow-refused), 4 when a write failed.
    """
    from .. import api
    from ..deploy import Target, deploy

    rules = api.load_pack(pack_dir).select(rule)
    if isolate_device and not defender:
        raise InputError("--isolate-device goes with --defender")
    if defender:
        from . import defender as on_defender

        return on_defender.deploy(rules, dry_run=dry_run, disabled=disabled,
                                  isolate=isolate_device, allow_refused=allow_refused,
                                  cloud=cloud, tenant_id=tenant_id,
                                  graph_endpoint=graph_endpoint, output=output, out=out)
    target = Target(*require_workspace(subscription_id, resource_group, workspace), tenant_id)
    with connect(target, cloud, arm_endpoint, logs_endpoint) as client:
        result = deploy(client, rules, dry_run=dry_run, disabled=disabled, force=force)
    with output_stream(out) as stream:
        render.deploy_result(result, output, stream)
    return deploy_exit(result.failed, result.refused, allow_refused)


def deploy_exit(failed: "Sequence[RulePlan]", refused: "Sequence[RulePlan]",
                allow_refused: bool) -> int:
    """A deploy's exit code, with the reason of each failure on stderr."""
    for step in failed:
        typer.echo(f"error: rule {step.rule.id}: {visible(step.reason or '')}", err=True)
    if failed:
        return ExitCode.SERVICE
    if refused and not allow_refused:
        return found(refused_summary(r.rule for r in refused))
    return ExitCode.OK

