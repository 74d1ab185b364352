"""`rollout`: the pack to many workspaces, resumable, with a report written as it goes."""

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import render
from ..errors import ExitCode, InputError
from ..render import OutputFormat
from .app import app
from .common import (
    AllowRefused,
    ArmEndpoint,
    CloudOpt,
    Debug,
    LogsEndpoint,
    MaxRetryAfter,
    Out,
    Output,
    PackDir,
    RuleIds,
    TenantId,
    Verbose,
    command,
    found,
    not_in_sync,
    note,
    output_stream,
)

if TYPE_CHECKING:
    from ..deploy import Target
    from ..rollout import RolloutReport, TargetResult

TargetsFile = Annotated[Path | None, typer.Option(
    "--targets", dir_okay=False, metavar="FILE",
    help="YAML or CSV inventory: subscription_id, resource_group, workspace, optional "
    "tenant_id (camelCase headers work too).")]
Discover = Annotated[bool, typer.Option(
    "--discover", help="Find every Sentinel-enabled workspace the identity can see with Azure "
    "Resource Graph (Lighthouse-delegated subscriptions included).")]
DiscoverSubscriptions = Annotated[list[str] | None, typer.Option(
    "--subscription-id", metavar="GUID",
    help="With --discover: only these subscriptions (repeatable).")]
Concurrency = Annotated[int, typer.Option(
    "--concurrency", "-j", metavar="N", min=1, max=64, help="Workspaces worked on at once.")]


def _targets(targets: Path | None, discover: bool, subscriptions: list[str] | None,
             azure: dict[str, Any], previous: "RolloutReport | None") -> "list[Target]":
    from .. import api

    if targets is not None and discover:
        raise InputError("give --targets FILE or --discover, not both")
    if subscriptions and not discover:
        raise InputError("--subscription-id filters --discover; with --targets, edit the file")
    if targets is not None:
        return api.load_targets(targets)
    if discover:
        found = api.discover_targets(subscriptions=subscriptions, cloud=azure["cloud"],
                                     arm_endpoint=azure["arm_endpoint"],
                                     tenant_id=azure["tenant_id"],
                                     max_retry_after=azure.get("max_retry_after", 120))
        if not found:
            raise InputError("--discover found no Sentinel-enabled workspace the identity "
                             "can see")
        return found
    if previous is not None:
        return [r.target for r in previous.targets]
    raise InputError("which workspaces? give --targets FILE or --discover "
                     "(or --resume REPORT to finish an earlier run)")


def reports_folder() -> Path:
    """Where rollout reports go without --report: the user's state folder, never the cwd.

    ``$XDG_STATE_HOME/sentinel-t1190/rollouts`` (default ``~/.local/state/…``); on Windows
    ``%LOCALAPPDATA%\\sentinel-t1190\\rollouts``.
    """
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "sentinel-t1190" / "rollouts"


def _default_report() -> Path:
    folder = reports_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {folder} for the rollout report ({exc.strerror}); "
                         "give --report FILE") from exc
    return folder / f"rollout-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"


class _Progress:
    """A rich progress bar on stderr with counts by status."""

    def __init__(self, total: int, dry_run: bool) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.counts: dict[str, int] = {}
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[counts]}"),
            console=Console(stderr=True), transient=False)
        self.task = self.progress.add_task("planning" if dry_run else "deploying",
                                           total=total, counts="")

    def __enter__(self) -> "_Progress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, result: "TargetResult") -> None:
        status = result.status.value
        self.counts[status] = self.counts.get(status, 0) + 1
        text = "  ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        self.progress.update(self.task, advance=1, counts=text)


@app.command("rollout")
@command
def rollout_command(
    targets: TargetsFile = None,
    discover: Discover = False,
    subscription_id: DiscoverSubscriptions = None,
    rule: RuleIds = None,
    pack_dir: PackDir = None,
    concurrency: Concurrency = 8,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the fleet plan (target x rule x action); write nothing.")
    ] = False,
    report: Annotated[Path | None, typer.Option(
        "--report", dir_okay=False, metavar="FILE",
        help="Where to keep the report, rewritten after every target. Default: the --resume "
        "file, else rollout-<UTC time>.json in ~/.local/state/sentinel-t1190/rollouts "
        "($XDG_STATE_HOME; none for --dry-run).")] = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", dir_okay=False, metavar="REPORT",
        help="Redo only the targets this earlier report lists as failed or not done.")] = None,
    prune: Annotated[bool, typer.Option(
        "--prune", help="Also delete rules this tool deployed that are no longer in the pack "
        "(never any rule it did not create).")] = False,
    disabled: Annotated[bool, typer.Option(
        "--disabled", help="Deploy the rules disabled.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Deploy even where the rule's table or columns are missing.")] = False,
    allow_refused: AllowRefused = False,
    cloud: CloudOpt = "AzureCloud",
    tenant_id: TenantId = None,
    arm_endpoint: ArmEndpoint = None,
    logs_endpoint: LogsEndpoint = None,
    max_retry_after: MaxRetryAfter = 120,
    output: Output = OutputFormat.table,
    out: Out = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Deploy the pack to many workspaces: --targets FILE or --discover.

    Each workspace gets the same pre-flight, plan, write and read-back as `deploy`; one
    failing workspace never stops the others. The report (JSON) is rewritten after every
    workspace, so an interrupted run loses nothing: --resume REPORT then redoes only what
    failed or never ran. Exit 1 if any workspace failed or refused a rule (unless
    --allow-refused).
    """
    from .. import api
    from ..rollout import load_report, remaining_targets

    azure = {"cloud": cloud, "tenant_id": tenant_id, "arm_endpoint": arm_endpoint,
             "max_retry_after": max_retry_after}
    previous = load_report(resume) if resume is not None else None
    fleet = _targets(targets, discover, subscription_id, azure, previous)
    report_path = report or resume or (None if dry_run else _default_report())
    todo = len(remaining_targets(fleet, previous)) if previous else len(fleet)
    note(f"{len(fleet)} workspace(s), {todo} to do; report: {report_path or 'none (dry run)'}")
    try:
        with _Progress(todo, dry_run) as progress:
            result = api.run_rollout(
                fleet, rule_ids=rule, concurrency=concurrency, dry_run=dry_run,
                disabled=disabled, force=force, prune=prune, report_path=report_path,
                resume_from=previous, cloud=cloud, arm_endpoint=arm_endpoint,
                logs_endpoint=logs_endpoint, tenant_id=tenant_id, on_result=progress,
                pack=api.load_pack(pack_dir), max_retry_after=max_retry_after)
    except KeyboardInterrupt:
        if report_path is not None:
            note(f"interrupted: finished workspaces are in {report_path}; to do the rest: "
                 f"sentinel-t1190 rollout --resume {_quoted(report_path)}")
        raise
    with output_stream(out) as stream:
        render.rollout_report(result.to_dict(), output, stream)
    return _rollout_exit(result, report_path, allow_refused)


def _quoted(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))


def _rollout_exit(result: "RolloutReport", report_path: Path | None,
                  allow_refused: bool) -> int:
    """Exit 1 for failed workspaces (and refusals), saying why and how to resume."""
    if report_path is not None:
        note(f"report: {report_path}")
    if result.failed:
        hint = (f"; after fixing them: sentinel-t1190 rollout --resume {_quoted(report_path)}"
                if report_path is not None else "")
        return found(f"{len(result.failed)} workspace(s) failed{hint}")
    if result.refused and not allow_refused:
        return found(f"{len(result.refused)} workspace(s) refused a rule (reasons in the "
                     "output; --force deploys anyway, --allow-refused exits 0)")
    return ExitCode.OK


def fleet_status(targets: Path | None, discover: bool, subscription_id: str | None,
                 resource_group: str | None, workspace: str | None, rule: list[str] | None,
                 concurrency: int, cloud: str, tenant_id: str | None, arm_endpoint: str | None,
                 logs_endpoint: str | None, output: OutputFormat, out: Path | None,
                 pack_dir: Path | None = None, allow_refused: bool = False) -> int:
    """`status --targets FILE | --discover`: every workspace's status in one table / JSON."""
    from .. import api

    if resource_group or workspace:
        raise InputError("--resource-group/--workspace name one workspace; with --targets or "
                         "--discover leave them out")
    azure = {"cloud": cloud, "tenant_id": tenant_id, "arm_endpoint": arm_endpoint}
    subscriptions = [subscription_id] if subscription_id and discover else None
    if subscription_id and not discover:
        raise InputError("--subscription-id names one workspace's subscription; with "
                         "--targets, edit the file")
    fleet = _targets(targets, discover, subscriptions, azure, None)
    result = api.fleet_status(fleet, rule_ids=rule, concurrency=concurrency, cloud=cloud,
                              arm_endpoint=arm_endpoint, logs_endpoint=logs_endpoint,
                              tenant_id=tenant_id, pack=api.load_pack(pack_dir))
    with output_stream(out) as stream:
        render.fleet_status(result.to_dict(), output, stream)
    failed, drifted = result.count("failed"), result.count("out-of-sync")
    if failed or drifted:
        states = [s.state.value for t in result.targets if t.result
                  for s in t.result.out_of_sync]
        why = [f"{failed} workspace(s) could not be read"] if failed else []
        why += [not_in_sync(states)] if states else []
        return found("; ".join(why))
    if result.count("refused") and not allow_refused:
        return found(f"{result.count('refused')} workspace(s) have refused rules (reasons in "
                     "the output; --allow-refused exits 0)")
    return ExitCode.OK
