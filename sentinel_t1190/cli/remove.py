"""`remove`: delete the pack's rules from one Sentinel workspace."""

import sys
from typing import Annotated

import typer

from .. import render
from ..errors import ExitCode, InputError
from ..render import OutputFormat
from .app import app
from .common import (
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
    output_stream,
    require_workspace,
)
from .deploy import connect


@app.command("remove")
@command
def remove_command(
    subscription_id: OptSubscription = None,
    resource_group: OptResourceGroup = None,
    workspace: OptWorkspace = None,
    rule: RuleIds = None,
    pack_dir: PackDir = None,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask for confirmation (needed without a terminal).")] = False,
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
    """Delete the pack's rules (or --rule ones) from a workspace; absent rules are fine."""
    from .. import api
    from ..deploy import Target, remove

    rules = api.load_pack(pack_dir).select(rule)
    if not defender:
        subscription_id, resource_group, workspace = require_workspace(
            subscription_id, resource_group, workspace)
    names = ", ".join(f"{r.short_id} ({r.name})" for r in rules)
    place = ("Defender XDR custom detections" if defender else
             f"workspace {workspace!r} (resource group {resource_group!r})")
    question = f"Delete {len(rules)} rule(s) from {place}: {names}?"
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"{question} No terminal to ask on: pass --yes to confirm")
        if not typer.confirm(question, err=True):
            typer.echo("nothing deleted", err=True)
            return ExitCode.OK
    if defender:
        from . import defender as on_defender

        return on_defender.remove(rules, cloud=cloud, tenant_id=tenant_id,
                                  graph_endpoint=graph_endpoint, output=output, out=out)
    assert subscription_id and resource_group and workspace
    target = Target(subscription_id, resource_group, workspace, tenant_id)
    with connect(target, cloud, arm_endpoint, logs_endpoint) as client:
        result = remove(client, rules)
    with output_stream(out) as stream:
        render.remove_result(result, output, stream)
    return ExitCode.OK
