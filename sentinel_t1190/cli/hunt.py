"""`hunt`: run rules' hunting queries over local telemetry (or, later, live workspaces)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from .. import api, render
from ..errors import ExitCode, InputError
from ..render import OutputFormat
from ..timespan import parse_instant
from .app import app
from .common import Debug, Out, Output, Verbose, command, output_stream, warn


@app.command("hunt")
@command
def hunt_command(
    local: Annotated[list[str] | None, typer.Option(
        "--local", "-l", metavar="FILE",
        help="Telemetry file to hunt offline (CSV, TSV, JSON, JSONL, Parquet; text formats "
        "may be .gz), named after its table or given as TABLE=PATH. Repeat, or list several "
        "after it.")] = None,
    files: Annotated[list[str] | None, typer.Argument(
        metavar="[FILE]...", help="More files for --local.", show_default=False)] = None,
    sample: Annotated[bool, typer.Option(
        "--sample", help="Hunt the bundled sample telemetry (with its own clock).")] = False,
    rule: Annotated[list[str] | None, typer.Option(
        "--rule", "-r", help="Rule id (or file name) to hunt with; repeat for several. "
        "Default: the source document's rule (web-server child processes).")] = None,
    timespan: Annotated[str | None, typer.Option(
        "--timespan", "-t", help="How far back from --end/--now: 24h, 7d, PT36H... "
        "[default: 24h]")] = None,
    start: Annotated[str | None, typer.Option(
        "--start", help="Window start (exclusive), ISO 8601.")] = None,
    end: Annotated[str | None, typer.Option(
        "--end", help="Window end (inclusive), ISO 8601. Default: now.")] = None,
    now: Annotated[str | None, typer.Option(
        "--now", help="Pin the clock (ISO 8601) for offline hunts, e.g. on old exports.")] = None,
    fail_on_findings: Annotated[bool, typer.Option(
        "--fail-on-findings", help="Exit 1 when anything is found (for pipelines).")] = False,
    output: Output = OutputFormat.table,
    out: Out = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Hunt with the pack's hunting queries over a window you choose.

    Offline with --local FILE... or --sample; the default rule is the source document's
    (web-server child processes). The window is (end - timespan, end]; --timespan replaces
    the rule's built-in 24 h lookback.
    """
    paths = [*(local or []), *(files or [])]
    if files and not local:
        raise InputError(f"unexpected argument {files[0]!r}; files go after --local")
    if sample and paths:
        raise InputError("give --local FILE... or --sample, not both")
    if not (sample or paths):
        raise InputError("nothing to hunt: give --local FILE... (offline) or --sample "
                         "(the bundled sample telemetry)")
    clock = parse_instant(now) if now else None
    with _progress(paths):
        results = api.hunt_local(paths, rule_ids=rule, timespan=timespan, start=start,
                                 end=end, now=clock, sample=sample)
    for result in results:
        for message in result.warnings:
            warn(message)
    with output_stream(out) as stream:
        render.hunt(results, output, stream)
    found = any(r.findings for r in results)
    return ExitCode.FOUND if fail_on_findings and found else ExitCode.OK


#: Files at least this big (together) get a spinner on stderr while the query runs.
PROGRESS_BYTES = 8 * 1024 * 1024


def _size(spec: str) -> int:
    """Bytes in a --local FILE or TABLE=PATH (0 when it is not a file: the hunt reports it)."""
    path = Path(spec)
    if not path.is_file():
        path = Path(spec.partition("=")[2])
    return path.stat().st_size if path.is_file() else 0


@contextmanager
def _progress(paths: list[str]) -> Iterator[None]:
    """A transient spinner on stderr for big local files, only when stderr is a terminal."""
    total = sum(_size(p) for p in paths)
    if total < PROGRESS_BYTES or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    label = f"Hunting {len(paths)} file(s), {total / 1024 / 1024:,.0f} MiB…"
    with Console(stderr=True).status(label, spinner="dots"):
        yield
