"""`remove`: delete the pack's rules from one Sentinel workspace."""

from __future__ import annotations

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
    LogsEndpoint,
    Out,
    PackDir,
    ReportOutput,
    ResourceGroup,
    RuleIds,
    SubscriptionId,
    TenantId,
    Verbose,
    Workspace,
    command,
    output_stream,
)
from .deploy import connect


@app.command("remove")
@command
def remove_command(
    subscription_id: SubscriptionId,
    resource_group: ResourceGroup,
    workspace: Workspace,
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
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Delete the pack's rules (or --rule ones) from a workspace; absent rules are fine."""
    from .. import api
    from ..deploy import Target, remove

    rules = api.load_pack(pack_dir).select(rule)
    names = ", ".join(f"{r.short_id} ({r.name})" for r in rules)
    question = (f"Delete {len(rules)} rule(s) from workspace {workspace!r} "
                f"(resource group {resource_group!r}): {names}?")
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"{question} No terminal to ask on: pass --yes to confirm")
        if not typer.confirm(question, err=True):
            typer.echo("nothing deleted", err=True)
            return ExitCode.OK
    target = Target(subscription_id, resource_group, workspace, tenant_id)
    with connect(target, cloud, arm_endpoint, logs_endpoint) as client:
        result = remove(client, rules)
    with output_stream(out) as stream:
        render.remove_result(result, output, stream)
    return ExitCode.OK
