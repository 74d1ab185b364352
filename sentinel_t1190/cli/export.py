"""`export`: the pack as ARM templates, Bicep or normalised Azure-Sentinel YAML."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import render
from ..errors import ExitCode, InputError
from ..formats import ExportFormat
from .app import app
from .common import Debug, PackDir, RuleIds, Verbose, command, output_stream

Formats = Annotated[list[ExportFormat], typer.Option(
    "--format", "-f", case_sensitive=False, metavar="FORMAT",
    help="arm (ARM template), bicep, or yaml (normalised Azure-Sentinel YAML); repeat for "
    "several with --out. sigma: a Sigma rule for each rule Sigma can express. navigator: "
    "one ATT&CK Navigator layer of the techniques the rules cover.")]
OutDir = Annotated[Path | None, typer.Option(
    "--out", file_okay=False, metavar="DIR",
    help="Folder to write one file per rule into (per format in arm/, bicep/, yaml/ when "
    "several formats are given). Default: one document on stdout.")]


@app.command("export")
@command
def export_command(
    formats: Formats,
    rule: RuleIds = None,
    pack_dir: PackDir = None,
    out: OutDir = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Export rules as an ARM template (az deployment group create, Sentinel Repositories),
    Bicep, YAML, Sigma, or an ATT&CK Navigator layer.

    The templates take one parameter, `workspace`, and deploy each rule under its fixed id,
    with the same properties `deploy` sends.
    """
    from .. import api, export

    rules = api.load_pack(pack_dir).select(rule)
    if out is not None:
        written = export.write(rules, formats, out)
        render.exported(written, out, sys.stderr)
        return ExitCode.OK
    if len(set(formats)) != 1:
        raise InputError("several --format values need --out FOLDER")
    text = export.render(rules, formats[0])
    with output_stream(None) as stream:
        stream.write(text)
    return ExitCode.OK
