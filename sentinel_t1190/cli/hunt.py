"""`hunt`: run rules' hunting queries over local telemetry (or, later, live workspaces)."""

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from .. import render
from ..errors import ExitCode, InputError, PartialResultError, SentinelT1190Error
from ..render import OutputFormat
from ..timespan import parse_duration, parse_instant
from .app import app
from .common import (
    CloudOpt,
    Debug,
    GraphEndpoint,
    LogsEndpoint,
    MaxRetryAfter,
    Out,
    PackDir,
    TenantId,
    Verbose,
    command,
    found,
    note,
    output_stream,
    warn,
)


class HuntFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"
    html = "html"


HuntOutput = Annotated[HuntFormat, typer.Option(
    "--output", "-o", metavar="FORMAT", case_sensitive=False,
    help="table for people; json, ndjson or csv for machines; html for one self-contained "
    "page with a timeline of findings per device and label.")]

if TYPE_CHECKING:
    from ..azure.clouds import Cloud
    from ..livehunt import HuntProgress
    from ..rules import Pack, Rule
    from ..state import HuntState


@app.command("hunt")
@command
def hunt_command(
    local: Annotated[
        list[str] | None,
        typer.Option(
            "--local",
            "-l",
            metavar="FILE",
            help="Telemetry file to hunt offline (CSV, TSV, JSON, JSONL, Parquet, Event Hub "
            "records; IIS W3C and Apache/nginx logs as W3CIISLog; text formats may be .gz), "
            "named after its table or given as TABLE=PATH. Repeat, or list several after it.",
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
            help="With --state: how far back the next run re-reads, for events ingested late "
            "(at most 14d, and never further back than the findings the state file "
            "remembers, so nothing is reported twice).",
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
    max_retry_after: MaxRetryAfter = 120,
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
    progress_every: Annotated[
        float,
        typer.Option(
            "--progress-every",
            metavar="SECONDS",
            min=0,
            help="Live hunts with stderr not a terminal (CI logs): seconds between progress "
            "lines (share of the window searched, slices, findings). A terminal gets a bar.",
        ),
    ] = 15.0,
    defender: Annotated[
        bool,
        typer.Option(
            "--defender",
            help="Hunt tenant-wide in Defender XDR advanced hunting (Microsoft Graph; 30 days "
            "of data; permission ThreatHunting.Read.All).",
        ),
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            metavar="URL",
            help="Hunt an Azure Data Explorer cluster (with --database), e.g. archived "
            "Defender tables; the query runs on the cluster.",
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option("--database", metavar="NAME", help="The cluster's database (--cluster)."),
    ] = None,
    table_map: Annotated[
        list[str] | None,
        typer.Option(
            "--table-map",
            metavar="TABLE=NAME",
            help="With --cluster: read TABLE under another name in the database; repeatable.",
        ),
    ] = None,
    pack_dir: PackDir = None,
    cloud: CloudOpt = "AzureCloud",
    tenant_id: TenantId = None,
    logs_endpoint: LogsEndpoint = None,
    graph_endpoint: GraphEndpoint = None,
    output: HuntOutput = HuntFormat.table,
    csv_raw: Annotated[
        bool,
        typer.Option(
            "--csv-raw",
            help="With --output csv: write cells as they are. By default a cell starting with "
            "= + - @, tab or CR gets a leading ' so spreadsheets do not run it as a formula.",
        ),
    ] = False,
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
    from .. import api

    paths = [*(local or []), *(files or [])]
    html = output is HuntFormat.html
    fmt = OutputFormat.json if html else OutputFormat(output.value)
    if database and not cluster:
        raise InputError("--database goes with --cluster URL")
    if table_map and not cluster:
        raise InputError("--table-map goes with --cluster URL")
    live = [name for name, given in (("--workspace-id", workspace_id), ("--defender", defender),
                                      ("--cluster", cluster)) if given]
    if len(live) > 1:
        raise InputError(f"give one of {', '.join(live)}")
    pack = api.load_pack(pack_dir)
    if live:
        if sample or paths:
            raise InputError(f"give {live[0]} or --local/--sample, not both")
        if cluster and not database:
            raise InputError("--cluster needs --database NAME")
        return _hunt_live(
            LiveSource(workspace_id or [], defender, cluster, database, table_map,
                       graph_endpoint),
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
            max_retry_after=max_retry_after,
            slice_size=slice_size,
            min_slice=min_slice,
            concurrency=concurrency,
            cloud=cloud,
            tenant_id=tenant_id,
            logs_endpoint=logs_endpoint,
            output=fmt,
            csv_raw=csv_raw,
            out=out,
            html=html,
            pack=pack,
            progress_every=progress_every,
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
    with ExitStack() as stack:
        with _progress(paths):
            results = stack.enter_context(api.hunt_local_stored(
                paths, rule_ids=rule, timespan=timespan, start=start, end=end, now=clock,
                sample=sample, pack=pack))
        for result in results:
            for message in result.warnings:
                warn(message)
        with _report_stream(out, html) as stream:
            render.hunt(results, fmt, stream, raw_csv=csv_raw)
        total = sum(r.total for r in results)
    if fail_on_findings and total:
        return found(f"{total} finding(s) and --fail-on-findings")
    return ExitCode.OK


@contextmanager
def _report_stream(out: Path | None, html: bool) -> Iterator[IO[str]]:
    """Where the hunt writes: the output, or for --output html a buffer of the JSON
    document(s) turned into the page when the hunt is done."""
    if not html:
        with output_stream(out) as stream:
            yield stream
        return
    import io
    import json

    from ..html_report import hunt_page

    buffer = io.StringIO()
    yield buffer
    document = json.loads(buffer.getvalue())
    with output_stream(out) as stream:
        stream.write(hunt_page(document.get("results") or [document]))


#: Files at least this big (together) get a spinner on stderr while the query runs.
PROGRESS_BYTES = 8 * 1024 * 1024


def _size(spec: str) -> int:
    """Bytes in a --local FILE or TABLE=PATH (0 when it is not a file: the hunt reports it)."""
    path = Path(spec)
    if not path.is_file():
        path = Path(spec.partition("=")[2])
    return path.stat().st_size if path.is_file() else 0


def _live_client(where: "LiveSource", cloud: "Cloud", credential: Any, server_timeout: int,
                 max_retry_after: float) -> Any:
    """The query client of the live source (each is a context manager)."""
    if where.defender:
        from ..azure.graph import DefenderHuntingClient

        return DefenderHuntingClient(cloud, credential, max_retry_after=max_retry_after)
    if where.cluster and where.database:
        from ..azure.kusto import KustoHuntingClient, parse_table_map

        return KustoHuntingClient(where.cluster, where.database, credential,
                                  table_map=parse_table_map(where.table_map),
                                  server_timeout=server_timeout,
                                  max_retry_after=max_retry_after)
    from ..azure.logs import LogsClient

    return LogsClient(cloud, credential, server_timeout=server_timeout,
                      max_retry_after=max_retry_after)


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


class _LiveProgress:
    """Live hunt progress on stderr: a bar on a terminal, else a line every *every* seconds
    (CI logs), so a long hunt is never silent and a short one stays quiet."""

    def __init__(self, every: float = 15.0) -> None:
        import time

        self._clock = time.monotonic
        self._last = self._clock()
        self._every = every
        self._bar: Any = None
        self._task: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f}% of the window"),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=True)

    def __enter__(self) -> "_LiveProgress":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, progress: "HuntProgress") -> None:
        detail = f"{progress.slices} slice(s), {progress.rows:,} finding(s)"
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task("hunting", total=1.0, detail="")
            self._bar.update(self._task, completed=progress.searched, detail=detail,
                             description=f"hunting {progress.rule[:40]}")
        elif self._clock() - self._last >= self._every:
            self._last = self._clock()
            note(f"hunting {progress.rule}: {progress.searched:.0%} of the window searched, "
                 f"{detail}")


@dataclass(frozen=True)
class LiveSource:
    """Where a live hunt runs: Log Analytics workspaces, Defender XDR, or a cluster."""

    workspaces: list[str]
    defender: bool
    cluster: str | None
    database: str | None
    table_map: list[str] | None
    graph_endpoint: str | None


def _hunt_live(where: LiveSource, *, state_path: Path | None, **options: Any) -> int:
    """A live hunt; with --state, the state file stays locked until the run has saved it."""
    from ..state import locked_state

    if state_path is None:
        return _run_live(where, hunt_state=None, **options)
    with locked_state(state_path) as hunt_state:
        return _run_live(where, hunt_state=hunt_state, **options)


def _run_live(
    where: LiveSource,
    *,
    rule: list[str] | None,
    timespan: str | None,
    start: str | None,
    end: str | None,
    now: str | None,
    fail_on_findings: bool,
    allow_partial: bool,
    hunt_state: "HuntState | None",
    overlap: str,
    server_timeout: int,
    max_retry_after: float,
    slice_size: str,
    min_slice: str,
    concurrency: int,
    cloud: str,
    tenant_id: str | None,
    logs_endpoint: str | None,
    output: OutputFormat,
    csv_raw: bool,
    out: Path | None,
    html: bool,
    pack: "Pack",
    progress_every: float,
) -> int:
    import tempfile

    from .. import api
    from ..azure import credentials
    from ..azure.clouds import resolve_cloud
    from ..livehunt import LiveOptions

    reporter = _LiveProgress(progress_every)
    options = LiveOptions(
        slice_size=parse_duration(slice_size),
        min_slice=parse_duration(min_slice),
        concurrency=concurrency,
        raw_csv=csv_raw,
        on_progress=reporter,
    )
    target = resolve_cloud(cloud, logs_endpoint=logs_endpoint,
                           graph_endpoint=where.graph_endpoint)
    credential = credentials.default_credential(target, tenant_id)
    streamed = output in (OutputFormat.ndjson, OutputFormat.csv)
    spools: list[IO[str]] = []
    with (
        _report_stream(out, html) as stream,
        _live_client(where, target, credential, server_timeout, max_retry_after) as client,
        reporter,
    ):

        def sink_for(_rule: "Rule") -> Any:
            if streamed:
                return stream
            spool = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
            spools.append(spool)
            return spool

        common: dict[str, Any] = {
            "client": client, "rule_ids": rule, "timespan": timespan, "start": start,
            "end": end, "now": parse_instant(now) if now else None, "state": hunt_state,
            "overlap": overlap, "options": options, "pack": pack}
        fmt = output if streamed else OutputFormat.ndjson
        if where.defender:
            results = api.hunt_defender(sink_for, fmt, tenant=tenant_id, **common)
        elif where.cluster and where.database:
            from ..azure.kusto import parse_table_map

            results = api.hunt_cluster(where.cluster, where.database, sink_for, fmt,
                                       table_map=parse_table_map(where.table_map), **common)
        else:
            from ..azure.logs import timespan_for

            results = api.hunt_live(where.workspaces, sink_for, fmt,
                                    request_timespan=lambda w: timespan_for(w.start, w.end),
                                    **common)
        for result in results:
            # Nothing was searched anywhere: that failure is the whole answer (one line).
            result.raise_if_all_failed()
        for result in results:
            for message in result.warnings:
                warn(message)
        try:
            if not streamed:
                render.hunt_live(
                    [(r.to_dict(), s) for r, s in zip(results, spools, strict=True)], output,
                    stream)
        except SentinelT1190Error:
            raise
        except Exception:
            # A bug while showing the findings: still remember the searched window, or every
            # scheduled run would meet the same finding and fail the same way.
            if hunt_state is not None and any(r.complete for r in results):
                hunt_state.save()
            raise
        finally:
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
    total = sum(r.tally.total for r in results)
    if fail_on_findings and total:
        return found(f"{total} finding(s) and --fail-on-findings")
    return ExitCode.OK
