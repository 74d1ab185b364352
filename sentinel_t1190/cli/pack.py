"""`rules` and `validate`: the pack itself."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import render
from ..errors import ExitCode
from ..render import OutputFormat
from .app import app
from .common import Debug, Out, Output, PackDir, Verbose, command, found, output_stream


@app.command("rules")
@command
def rules_command(
    pack_dir: PackDir = None,
    output: Output = OutputFormat.table,
    out: Out = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """List the rules in the pack: id, name, severity, tactics, techniques, tables."""
    from .. import api

    pack = api.load_pack(pack_dir)
    with output_stream(out) as stream:
        render.rules(pack.rules, output, stream)
    return ExitCode.OK


@app.command("validate")
@command
def validate_command(
    paths: Annotated[list[Path] | None, typer.Argument(
        metavar="PATH",
        help="Analytic-rule or hunting-query files or folders (a file in a folder named "
        "hunting, or with an analyticRuleId, is a hunting query). Default: the pack's "
        "analytics/ and hunting/.")] = None,
    pack_dir: PackDir = None,
    output: Output = OutputFormat.table,
    out: Out = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Check rule files: Sentinel limits, ATT&CK, KQL, columns read and output, hunting queries.

    Exits 1 when any rule has an error (warnings alone exit 0).
    """
    from .. import api

    checked, findings = api.validate(paths, pack_root=pack_dir)
    with output_stream(out) as stream:
        render.findings(findings, checked, output, stream)
    errors = sum(1 for f in findings if f.level == "error")
    return found(f"{errors} error(s) in the rule files") if errors else ExitCode.OK


@app.command("init")
@command
def init_command(
    folder: Annotated[Path, typer.Argument(
        metavar="DIR", help="New (or empty) folder to write the pack repository into.")],
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Write a starter pack repository: the bundled rules, exclusion starters, fixtures and
    hunting queries, its shipped-ids list, sample telemetry, a README, and CI (GitHub
    Actions, Azure DevOps) that validates, tests and backtests pull requests and rolls out
    on merge. Then use --pack DIR (or SENTINEL_T1190_PACK) with every rule command.
    """
    from ..starter import init_pack

    written = init_pack(folder)
    render.exported(written, folder, sys.stderr)
    return ExitCode.OK
