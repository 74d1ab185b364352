"""`hunt`: run rules' hunting queries over local telemetry (or, later, live workspaces)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from .. import api, render
from ..errors import ExitCode, InputError, PartialResultError
from ..render import OutputFormat
from ..timespan import parse_duration, parse_instant
from .app import app
from .common import (
    CloudOpt,
    Debug,
    LogsEndpoint,
    Out,
    Output,
    PackDir,
    TenantId,
    Verbose,
    command,
    output_stream,
    warn,
)

if TYPE_CHECKING:
    from ..rules import Pack, Rule


@app.command("hunt")
@command
def hunt_command(
    local: Annotated[
        list[str] | None,
        typer.Option(
            "--local",
            "-l",
            metavar="FILE",
            help="Telemetry file to hunt offline (CSV, TSV, JSON, JSONL, Parquet; text formats "
            "may be .gz), named after its table or given as TABLE=PATH. Repeat, or list several "
            "after it.",
        ),
    ] = None,
    files: Annotated[
        list[str] | None,
        typer.Argument(metavar="FILE", help="More files for --local.", show_default=False),
    ] = None,
    sample: Annotated[
        bool,
        typer.Option("--sample", help="Hunt the bundled sample telemetry (with its own clock)."),
    ] = False,
    rule: Annotated[
        list[str] | None,
        typer.Option(
            "--rule",
            "-r",
            metavar="ID",
            help="Rule id (or file name) to hunt with; repeat for several. "
            "Default: the source document's rule (web-server child processes).",
        ),
    ] = None,
    timespan: Annotated[
        str | None,
        typer.Option(
            "--timespan",
            "-t",
            metavar="DURATION",
            help="How far back from --end/--now: 24h, 7d, PT36H... [default: 24h]",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", metavar="TIME", help="Window start (exclusive), ISO 8601."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--end", metavar="TIME", help="Window end (inclusive), ISO 8601. Default: now."
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            metavar="TIME",
            help="Pin the clock (ISO 8601) for offline hunts, e.g. on old exports.",
        ),
    ] = None,
    fail_on_findings: Annotated[
        bool,
        typer.Option("--fail-on-findings", help="Exit 1 when anything is found (for pipelines)."),
    ] = False,
    workspace_id: Annotated[
        list[str] | None,
        typer.Option(
            "--workspace-id",
            metavar="GUID",
            help="Hunt this Log Analytics workspace (its workspace ID) through the Logs Query "
            "API. Repeat for several: each is queried on its own.",
        ),
    ] = None,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="Exit 0 even when part of the window could not be searched "
            '(it is still reported: warnings and "complete": false).',
        ),
    ] = False,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            metavar="FILE",
            dir_okay=False,
            help="Incremental hunts: start where the last complete run ended (minus --overlap) "
            "and never report a finding twice. Created on the first run.",
        ),
    ] = None,
    overlap: Annotated[
        str,
        typer.Option(
            "--overlap",
            metavar="DURATION",
            help="With --state: how far back the next run re-reads, for events ingested late.",
        ),
    ] = "1h",
    server_timeout: Annotated[
        int,
        typer.Option(
            "--server-timeout",
            metavar="SECONDS",
            min=1,
            max=600,
            help="Seconds the Logs API may run one query (max 600).",
        ),
    ] = 180,
    slice_size: Annotated[
        str,
        typer.Option(
            "--slice",
            metavar="DURATION",
            help="Largest time slice sent as one query; slices that come back too "
            "large are split in two and re-run.",
        ),
    ] = "1d",
    min_slice: Annotated[
        str,
        typer.Option(
            "--min-slice",
            metavar="DURATION",
            help="Slices are not split below this; a slice still too large is "
            "reported as incomplete.",
        ),
    ] = "1m",
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            metavar="N",
            min=1,
            max=5,
            help="Queries in flight at once (the Logs API allows 5 per identity).",
        ),
    ] = 5,
    pack_dir: PackDir = None,
    cloud: CloudOpt = "AzureCloud",
    tenant_id: TenantId = None,
    logs_endpoint: LogsEndpoint = None,
    output: Output = OutputFormat.table,
    out: Out = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Hunt with the pack's hunting queries over a window you choose.

    Offline with --local FILE... or --sample, or live with --workspace-id GUID... (Logs
    Query API); the default rule is the source document's (web-server child processes).
    The window is (end - timespan, end]; --timespan replaces the rule's built-in 24 h
    lookback.
    """
    paths = [*(local or []), *(files or [])]
    pack = api.load_pack(pack_dir)
    if workspace_id:
        if sample or paths:
            raise InputError("give --workspace-id or --local/--sample, not both")
        return _hunt_live(
            workspace_id,
            rule=rule,
            timespan=timespan,
            start=start,
            end=end,
            now=now,
            fail_on_findings=fail_on_findings,
            allow_partial=allow_partial,
            state_path=state,
            overlap=overlap,
            server_timeout=server_timeout,
            slice_size=slice_size,
            min_slice=min_slice,
            concurrency=concurrency,
            cloud=cloud,
            tenant_id=tenant_id,
            logs_endpoint=logs_endpoint,
            output=output,
            out=out,
            pack=pack,
        )
    for name, value in (("--state", state), ("--allow-partial", allow_partial)):
        if value:
            raise InputError(f"{name} is for live hunts (--workspace-id)")
    if files and not local:
        raise InputError(f"unexpected argument {files[0]!r}; files go after --local")
    if sample and paths:
        raise InputError("give --local FILE... or --sample, not both")
    if not (sample or paths):
        raise InputError(
            "nothing to hunt: give --local FILE... (offline), --sample "
            "(the bundled sample telemetry) or --workspace-id GUID (live)"
        )
    clock = parse_instant(now) if now else None
    with _progress(paths):
        results = api.hunt_local(
            paths, rule_ids=rule, timespan=timespan, start=start, end=end, now=clock,
            sample=sample, pack=pack,
        )
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


def _hunt_live(
    workspaces: list[str],
    *,
    rule: list[str] | None,
    timespan: str | None,
    start: str | None,
    end: str | None,
    now: str | None,
    fail_on_findings: bool,
    allow_partial: bool,
    state_path: Path | None,
    overlap: str,
    server_timeout: int,
    slice_size: str,
    min_slice: str,
    concurrency: int,
    cloud: str,
    tenant_id: str | None,
    logs_endpoint: str | None,
    output: OutputFormat,
    out: Path | None,
    pack: Pack,
) -> int:
    import tempfile

    from ..azure import credentials
    from ..azure.clouds import resolve_cloud
    from ..azure.logs import LogsClient, timespan_for
    from ..livehunt import LiveOptions
    from ..state import load_state

    hunt_state = load_state(state_path) if state_path else None
    options = LiveOptions(
        slice_size=parse_duration(slice_size),
        min_slice=parse_duration(min_slice),
        concurrency=concurrency,
    )
    target = resolve_cloud(cloud, logs_endpoint=logs_endpoint)
    credential = credentials.default_credential(target, tenant_id)
    streamed = output in (OutputFormat.ndjson, OutputFormat.csv)
    spools: list[IO[str]] = []
    with (
        output_stream(out) as stream,
        LogsClient(target, credential, server_timeout=server_timeout) as client,
    ):

        def sink_for(_rule: Rule) -> Any:
            if streamed:
                return stream
            spool = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
            spools.append(spool)
            return spool

        results = api.hunt_live(
            workspaces,
            sink_for,
            output if streamed else OutputFormat.ndjson,
            client=client,
            rule_ids=rule,
            timespan=timespan,
            start=start,
            end=end,
            now=parse_instant(now) if now else None,
            state=hunt_state,
            overlap=overlap,
            options=options,
            request_timespan=lambda w: timespan_for(w.start, w.end),
            pack=pack,
        )
        for result in results:
            # Nothing was searched anywhere: that failure is the whole answer (one line).
            result.raise_if_all_failed()
        for result in results:
            for message in result.warnings:
                warn(message)
        if not streamed:
            render.hunt_live(
                [(r.to_dict(), s) for r, s in zip(results, spools, strict=True)], output, stream
            )
        for spool in spools:
            spool.close()
    if hunt_state is not None and any(r.complete for r in results):
        hunt_state.save()
    incomplete = [r for r in results if not r.complete]
    if incomplete and not allow_partial:
        raise PartialResultError(
            f"{len(incomplete)} rule(s) searched only part of the window (see warnings); "
            "the results above are incomplete. Pass --allow-partial to accept that."
        )
    found = any(r.tally.total for r in results)
    return ExitCode.FOUND if fail_on_findings and found else ExitCode.OK
