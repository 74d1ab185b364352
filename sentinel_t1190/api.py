"""The public Python API: the same work as the CLI, for automation and notebooks.

    import sentinel_t1190 as st

    pack = st.load_pack()
    checked, findings = st.validate()
    st.classify("w3wp.exe", "whoami.exe")          # "Reconnaissance"
    [result] = st.hunt_local(["DeviceProcessEvents.csv"], timespan="7d")
    result.to_dict()["summary"]

    targets = st.load_targets(Path("targets.csv"))   # or st.discover_targets()
    report = st.run_rollout(targets, report_path=Path("report.json"))  # resume_from=...
    report.summary(), report.failed                  # examples/rollout_script.py
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import detection
from .errors import InputError
from .hunt import HuntResult, Window, resolve_window
from .rules import GUID, Finding, Pack, Rule
from .rules import load_pack as _load_pack
from .state import DEFAULT_OVERLAP, HuntState

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from .azure.arm import SentinelWorkspaceClient
    from .backtest import BacktestResult
    from .deploy import DeployResult, RulePlan, Target
    from .health import HealthReport, TableQuerier
    from .livehunt import LiveHuntResult, LiveOptions, LogsQuerier, RowSink
    from .render import OutputFormat
    from .rollout import (
        ArmClientFactory,
        ClientFactory,
        FleetStatus,
        RolloutReport,
        TargetResult,
        TargetState,
    )


def load_pack(root: Path | None = None) -> Pack:
    """The rule pack: ``analytics/`` and ``hunting/`` under *root* (default: bundled)."""
    return _load_pack(root)


def validate(paths: Iterable[Path] | None = None, *, pack_root: Path | None = None
             ) -> tuple[int, list[Finding]]:
    """Validate rule files (default: the pack at *pack_root*, else the bundled pack);
    return (files checked, findings)."""
    from .validate import validate_paths

    return validate_paths(paths, root=pack_root)


def classify(parent: str | None, child: str | None) -> str | None:
    """The ExploitEvidence label the T1190 rule gives this parent/child pair, or None."""
    return detection.classify(parent, child)


def default_hunt_rules(pack: Pack, rule_ids: Sequence[str] | None) -> tuple[Rule, ...]:
    """``--rule`` choices, or the source document's rule when none are given."""
    return pack.select(rule_ids or [detection.RULE_ID])


def hunt_local(
    files: Sequence[str],
    *,
    rule_ids: Sequence[str] | None = None,
    timespan: str | None = None,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
    sample: bool = False,
    pack: Pack | None = None,
) -> list[HuntResult]:
    """Hunt local telemetry files with the local engine, one result per rule.

    *now* pins the clock (default: the real time, or the sample's own clock with *sample*).
    The findings are in each result's ``findings`` list; for results too large to hold,
    use :func:`hunt_local_stored`.
    """
    with hunt_local_stored(files, rule_ids=rule_ids, timespan=timespan, start=start, end=end,
                           now=now, sample=sample, pack=pack) as results:
        for result in results:
            result.findings = list(result.rows())
            result.stored = None
    return results


@contextmanager
def hunt_local_stored(
    files: Sequence[str],
    *,
    rule_ids: Sequence[str] | None = None,
    timespan: str | None = None,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
    sample: bool = False,
    pack: Pack | None = None,
) -> Iterator[list[HuntResult]]:
    """:func:`hunt_local` with the findings left in the local engine (``result.stored``):
    memory does not grow with their number. They can be read until the block ends."""
    from .hunt import hunt_local_stored as _hunt_local_stored
    from .sample import sample_clock, sample_files

    if sample:
        files = sample_files()
        now = now or sample_clock()
    window = resolve_window(now or datetime.now(UTC), timespan, start, end)
    rules = default_hunt_rules(pack or load_pack(), rule_ids)
    source = {"kind": "sample", "files": list(files)} if sample else None
    with ExitStack() as stack:
        yield [_hunt_local_stored(rule, files, window, source=source, stack=stack)
               for rule in rules]


def test_rules(rule_ids: Sequence[str] | None = None, *, pack: Pack | None = None
               ) -> dict[str, Any]:
    """Run the fixture cases of the chosen rules (default: the whole pack); the ``test`` JSON."""
    from .ruletest import run_rules, summary

    rules = (pack or load_pack()).select(rule_ids)
    return summary(run_rules(rules))


def backtest(
    baseline: str,
    *,
    files: Sequence[str] = (),
    workspaces: Sequence[str] = (),
    client: LogsQuerier | None = None,
    options: LiveOptions | None = None,
    request_timespan: Callable[[Window], str | None] | None = None,
    rule_ids: Sequence[str] | None = None,
    pack: Pack | None = None,
    timespan: str | None = None,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
    fetch_deployed: Callable[[str], dict[str, Any] | None] | None = None,
    deployed_where: dict[str, Any] | None = None,
) -> BacktestResult:
    """The pack (default bundled) against *baseline* — a pack folder, a git revision of
    the pack's repository, or ``deployed`` (each rule as deployed in a workspace,
    ``fetch_deployed(name)`` reading the alert rule; both sides then run their scheduled
    query over the window) — over the same data: local telemetry *files*, or live
    *workspaces* through *client* (the hunt machinery: slices, splits, completeness). Per
    rule added/removed/unchanged findings, per exclusion the findings it suppresses.
    Default window: 7 days."""
    from . import backtest as _backtest

    if bool(files) == bool(workspaces):
        raise InputError("backtest over --local FILE... or --workspace-id GUID... (one of them)")
    for workspace in workspaces:
        if not GUID.fullmatch(workspace):
            raise InputError(f"--workspace-id {workspace!r} is not a workspace ID (a GUID)")
    current = pack or load_pack()
    window = resolve_window(now or datetime.now(UTC),
                            timespan or (None if start else _backtest.DEFAULT_TIMESPAN),
                            start, end)
    if files:
        run = _backtest.local_runner(files, window)
        source: dict[str, Any] = {"kind": "local", "files": list(files)}
    else:
        if client is None:
            raise InputError("a live backtest needs a Logs API client")
        run = _backtest.live_runner(list(dict.fromkeys(workspaces)), window, client,
                                    options=options, timespan=request_timespan)
        source = {"kind": "workspaces", "workspaces": list(dict.fromkeys(workspaces))}
    rules = current.select(rule_ids)
    if baseline == "deployed":
        if fetch_deployed is None:
            raise InputError("--baseline deployed needs the workspace the rules are deployed "
                             "in: --subscription-id, --resource-group and --workspace")
        scheduled, notes = _backtest.as_scheduled(rules)
        old, info, more = _backtest.deployed_pack(rules, fetch_deployed, deployed_where or {})
        result = _backtest.backtest(scheduled, old, run, baseline_info=info, source=source,
                                    window=window, include_deleted=False)
        result.warnings[:0] = [*notes, *more]
        return result
    with _backtest.baseline_pack(baseline, current.root or Path(".")) as (old, info):
        return _backtest.backtest(rules, old, run, baseline_info=info, source=source,
                                  window=window, include_deleted=not rule_ids)


def health(
    workspaces: Sequence[str | Target],
    *,
    query: TableQuerier,
    rule_ids: Sequence[str] | None = None,
    pack: Pack | None = None,
    timespan: str | None = None,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
    noisy_per_day: float | None = None,
    resolve: Callable[[Target], Any] | None = None,
) -> HealthReport:
    """Per rule per workspace: runs, failures, state, alerts, incidents by classification,
    precision (default window: 30 days). *workspaces* are workspace IDs (GUIDs) or targets,
    whose workspace ID *resolve* (target -> :class:`~sentinel_t1190.deploy.WorkspaceInfo`)
    looks up through ARM. One workspace failing is recorded in its entry; when all fail,
    the first error is raised."""
    from . import health as _health
    from .errors import SentinelT1190Error

    if not workspaces:
        raise InputError("give --workspace-id GUID..., --targets FILE or --discover")
    rules = (pack or load_pack()).select(rule_ids)
    window = resolve_window(now or datetime.now(UTC),
                            timespan or (None if start else _health.DEFAULT_TIMESPAN),
                            start, end)
    report = _health.HealthReport(window, [], noisy_per_day or _health.NOISY_ALERTS_PER_DAY)
    errors: list[SentinelT1190Error] = []
    for workspace in workspaces:
        if isinstance(workspace, str):
            if not GUID.fullmatch(workspace):
                raise InputError(f"--workspace-id {workspace!r} is not a workspace ID (a "
                                 "GUID, shown as 'Workspace ID' on the workspace's overview)")
            describe: dict[str, Any] = {"workspace_id": workspace}
        else:
            describe = {"subscription_id": workspace.subscription_id,
                        "resource_group": workspace.resource_group,
                        "workspace": workspace.workspace}
        try:
            if not isinstance(workspace, str):
                if resolve is None:
                    raise InputError("targets need ARM to find their workspace IDs")
                workspace = resolve(workspace).customer_id
                describe["workspace_id"] = workspace
            report.workspaces.append(_health.workspace_health(
                str(workspace), rules, window, query, describe=describe))
        except SentinelT1190Error as exc:
            errors.append(exc)
            report.workspaces.append(_health.WorkspaceHealth(describe, [], error=str(exc)))
    if errors and len(errors) == len(workspaces):
        raise errors[0]
    return report


def hunt_live(
    workspaces: Sequence[str],
    sink_for: Callable[[Rule], RowSink],
    fmt: OutputFormat,
    *,
    client: LogsQuerier,
    rule_ids: Sequence[str] | None = None,
    timespan: str | None = None,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
    state: HuntState | None = None,
    overlap: str = DEFAULT_OVERLAP,
    options: LiveOptions | None = None,
    request_timespan: Callable[[Window], str | None] | None = None,
    pack: Pack | None = None,
    source: dict[str, Any] | None = None,
) -> list[LiveHuntResult]:
    """Hunt live workspaces through the Logs Query API, one result per rule.

    *client* may also be another engine running the same KQL (Defender XDR, a Data Explorer
    cluster: :func:`hunt_defender`, :func:`hunt_cluster`); *source* then describes it and
    *workspaces* are labels, not workspace IDs.

    Rows go to ``sink_for(rule)`` in *fmt* (ndjson or csv) as the slices finish. With
    *state*, each rule's window starts where its last complete run ended minus *overlap*
    (at most as far back as the state remembers findings), findings reported before are
    not reported again, and the state is updated (in memory; :meth:`HuntState.save` writes
    it) only when every workspace was complete. Hold the state with
    :func:`~sentinel_t1190.state.locked_state` so that two runs never share it.
    """
    from .livehunt import LiveOptions, hunt_workspaces
    from .state import parse_overlap

    if not workspaces:
        raise InputError("give at least one --workspace-id")
    for workspace in workspaces if source is None else ():
        if not GUID.fullmatch(workspace):
            raise InputError(f"--workspace-id {workspace!r} is not a workspace ID (a GUID, "
                             "shown as 'Workspace ID' on the workspace's overview page)")
    overlap_span = parse_overlap(overlap)
    clock = now or datetime.now(UTC)
    rules = default_hunt_rules(pack or load_pack(), rule_ids)
    opts = options or LiveOptions()
    if state is not None:
        opts = replace(opts, track_keys=True)
    results = []
    for rule in rules:
        resumed = state.start_for(rule.id, overlap_span) if state else None
        if resumed is not None and (start or timespan):
            raise InputError(f"the state file already holds a run of {rule.id}; its next run "
                             "starts where that one ended, so drop --start/--timespan")
        window = resolve_window(clock, timespan, start, end)
        if resumed is not None:
            if resumed >= window.end:
                raise InputError(f"nothing new to hunt: the last run ended at "
                                 f"{window.to_dict()['end']} or later")
            window = Window(resumed, window.end)
        cut = state.overlap_cut(rule.id, overlap_span) if state else None
        result = hunt_workspaces(
            rule, list(dict.fromkeys(workspaces)), window, client, sink_for(rule), fmt,
            options=opts, reported=state.reported(rule.id) if state else frozenset(),
            timespan=request_timespan, source=source)
        if cut:
            result.warnings.append(cut)
        if state is not None:
            if result.complete:
                state.record(rule.id, window.end, overlap_span, result.tally.keys)
            else:
                result.warnings.append("the state file is not advanced: the run was "
                                       "incomplete, so the next run searches this window again")
        results.append(result)
    return results


def hunt_defender(
    sink_for: Callable[[Rule], RowSink],
    fmt: OutputFormat,
    *,
    client: LogsQuerier,
    tenant: str | None = None,
    rule_ids: Sequence[str] | None = None,
    timespan: str | None = None,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
    state: HuntState | None = None,
    overlap: str = DEFAULT_OVERLAP,
    options: LiveOptions | None = None,
    pack: Pack | None = None,
) -> list[LiveHuntResult]:
    """Hunt tenant-wide through Defender XDR advanced hunting (Microsoft Graph).

    *client* is an ``azure.graph.DefenderHuntingClient``. The same hunting queries, slicing,
    state and classifier as :func:`hunt_live`; rules reading tables Defender XDR does not
    have, and windows older than its 30 days of data, are refused before anything runs.
    """
    from .sources import DEFENDER_RETENTION, check_defender_tables
    from .timespan import iso_z

    clock = now or datetime.now(UTC)
    check_defender_tables(default_hunt_rules(pack or load_pack(), rule_ids))
    if state is None and resolve_window(clock, timespan, start, end).start < (
            clock - DEFENDER_RETENTION):
        raise InputError(f"Defender XDR keeps {DEFENDER_RETENTION.days} days of advanced "
                         "hunting data: shorten --timespan/--start, or hunt the archive with "
                         "--cluster URL --database DB")
    return hunt_live(
        ["defender"], sink_for, fmt, client=client, rule_ids=rule_ids, timespan=timespan,
        start=start, end=end, now=clock, state=state, overlap=overlap, options=options,
        request_timespan=lambda w: f"{iso_z(w.start)}/{iso_z(w.end)}", pack=pack,
        source={"kind": "defender", "tenant": tenant})


def hunt_cluster(
    cluster: str,
    database: str,
    sink_for: Callable[[Rule], RowSink],
    fmt: OutputFormat,
    *,
    client: LogsQuerier,
    rule_ids: Sequence[str] | None = None,
    timespan: str | None = None,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
    state: HuntState | None = None,
    overlap: str = DEFAULT_OVERLAP,
    options: LiveOptions | None = None,
    pack: Pack | None = None,
    table_map: dict[str, str] | None = None,
) -> list[LiveHuntResult]:
    """Hunt one database of an Azure Data Explorer cluster (``azure.kusto.KustoHuntingClient``):
    the same KQL runs on the cluster, sliced and checked as :func:`hunt_live` does."""
    return hunt_live(
        [f"{cluster}/{database}"], sink_for, fmt, client=client, rule_ids=rule_ids,
        timespan=timespan, start=start, end=end, now=now, state=state, overlap=overlap,
        options=options, pack=pack,
        source={"kind": "adx", "cluster": cluster, "database": database,
                "table_map": dict(table_map or {})})


def workspace_client(
    target: Target,
    *,
    cloud: str = "AzureCloud",
    arm_endpoint: str | None = None,
    logs_endpoint: str | None = None,
    credential: TokenCredential | None = None,
    **client_kwargs: Any,
) -> SentinelWorkspaceClient:
    """The client ``deploy.deploy/status/remove`` take, for one workspace.

    *credential* defaults to DefaultAzureCredential in the target's tenant; *client_kwargs*
    (``retry_total``, ``retry_backoff_factor``, hooks...) go to the Azure SDK clients.
    """
    from .azure import arm, credentials
    from .azure.clouds import resolve_cloud

    where = resolve_cloud(cloud, arm_endpoint=arm_endpoint, logs_endpoint=logs_endpoint)
    token = credential or credentials.default_credential(where, target.tenant_id)
    return arm.workspace_client_for(target, token, where, **client_kwargs)


# --- fleets: plan / deploy to one target / rollout / fleet status (issue 5) --------------------


def _fleet_factory(cloud: str, arm_endpoint: str | None, logs_endpoint: str | None,
                   tenant_id: str | None, credential: TokenCredential | None,
                   client_kwargs: dict[str, Any]) -> ArmClientFactory:
    from .azure.clouds import resolve_cloud
    from .rollout import ArmClientFactory

    where = resolve_cloud(cloud, arm_endpoint=arm_endpoint, logs_endpoint=logs_endpoint)
    fixed = (lambda _cloud, _tenant: credential) if credential is not None else None
    return ArmClientFactory(where, tenant_id=tenant_id, credential_factory=fixed,
                            **client_kwargs)


def load_targets(path: Path) -> list[Target]:
    """Targets from a YAML or CSV file (subscription_id, resource_group, workspace, tenant_id).

    Raises InputError naming every bad line.
    """
    from .targets import load_targets as _load

    return _load(path)


def discover_targets(*, subscriptions: Sequence[str] | None = None, cloud: str = "AzureCloud",
                     arm_endpoint: str | None = None, tenant_id: str | None = None,
                     credential: TokenCredential | None = None,
                     **client_kwargs: Any) -> list[Target]:
    """Every Sentinel-enabled workspace the identity sees, through Azure Resource Graph.

    All visible subscriptions (Azure Lighthouse-delegated ones included) unless
    *subscriptions* narrows them. *credential* defaults to DefaultAzureCredential in
    *tenant_id*; *client_kwargs* go to the ResourceGraphClient (``max_retry_after``: the
    longest Retry-After or quota reset waited, in seconds).
    """
    from .azure import resourcegraph
    from .azure.throttle import DEFAULT_MAX_RETRY_AFTER

    factory = _fleet_factory(cloud, arm_endpoint, None, tenant_id, credential, {})
    client = resourcegraph.graph_client(factory.credential(None), factory.cloud,
                                        **client_kwargs)
    with client:
        return resourcegraph.discover_workspaces(
            client, subscriptions=subscriptions,
            max_wait=client_kwargs.get("max_retry_after", DEFAULT_MAX_RETRY_AFTER))


def plan_target(target: Target, *, rule_ids: Sequence[str] | None = None,
                force: bool = False, disabled: bool = False, cloud: str = "AzureCloud",
                arm_endpoint: str | None = None, logs_endpoint: str | None = None,
                credential: TokenCredential | None = None, pack: Pack | None = None,
                **client_kwargs: Any) -> list[RulePlan]:
    """What ``deploy`` would do at one workspace, per rule (would-create, would-update with
    the changed fields, unchanged, refused). Writes nothing."""
    from . import deploy

    rules = (pack or load_pack()).select(rule_ids)
    with _fleet_factory(cloud, arm_endpoint, logs_endpoint, None, credential,
                        client_kwargs) as factory:
        client = factory(target)
        try:
            client.preflight()
            return deploy.plan(client, rules, force=force, disabled=disabled)
        finally:
            factory.release(client)


def deploy_to_target(target: Target, *, rule_ids: Sequence[str] | None = None,
                     dry_run: bool = False, disabled: bool = False, force: bool = False,
                     cloud: str = "AzureCloud", arm_endpoint: str | None = None,
                     logs_endpoint: str | None = None, credential: TokenCredential | None = None,
                     pack: Pack | None = None, **client_kwargs: Any) -> DeployResult:
    """``deploy`` for one workspace: pre-flight, plan, write, read back.

    Raises AuthError / InputError / AzureServiceError; ``result.failed`` lists rules whose
    write or read-back failed. ``result.to_dict()`` is the deploy JSON.
    """
    from . import deploy

    rules = (pack or load_pack()).select(rule_ids)
    with _fleet_factory(cloud, arm_endpoint, logs_endpoint, None, credential,
                        client_kwargs) as factory:
        client = factory(target)
        try:
            return deploy.deploy(client, rules, dry_run=dry_run, disabled=disabled,
                                 force=force)
        finally:
            factory.release(client)


def run_rollout(targets: Sequence[Target], *, rule_ids: Sequence[str] | None = None,
            concurrency: int | None = None, dry_run: bool = False, disabled: bool = False,
            force: bool = False, prune: bool = False, report_path: Path | None = None,
            resume_from: Path | RolloutReport | None = None, cloud: str = "AzureCloud",
            arm_endpoint: str | None = None, logs_endpoint: str | None = None,
            tenant_id: str | None = None, credential: TokenCredential | None = None,
            on_result: Callable[[TargetResult], None] | None = None,
            client_factory: ClientFactory | None = None, pack: Pack | None = None,
            **client_kwargs: Any) -> RolloutReport:
    """Deploy the pack (or *rule_ids*) to every target; the report says what happened where.

    Bounded by *concurrency* (default 8) worker threads; one target's failure never stops
    the others. *report_path* is rewritten after every target (atomically), so an interrupted
    run loses nothing; pass it (or the loaded report) back as *resume_from* to redo only
    what failed or never ran. *prune* also deletes rules this tool deployed that are no
    longer in the pack (never any other rule). A target's ``tenant_id`` picks the tenant to
    authenticate in (DefaultAzureCredential per tenant), else *tenant_id*; *credential*
    replaces that with one credential for all. *client_kwargs* (``retry_total``,
    ``retry_backoff_factor``, ``connection_verify``…) go to the Azure SDK clients.
    ``report.failed`` lists failed targets; ``report.to_dict()`` is the report JSON.
    """
    from . import rollout as _rollout
    from .alert_rule import owned_ids

    pack = pack or load_pack()
    rules = pack.select(rule_ids)
    owned = owned_ids(pack)
    previous = (_rollout.load_report(resume_from) if isinstance(resume_from, Path)
                else resume_from)
    workers = concurrency or _rollout.DEFAULT_CONCURRENCY
    if client_factory is not None:
        return _rollout.rollout(
            targets, rules, client_factory, concurrency=workers, dry_run=dry_run,
            disabled=disabled, force=force, prune=prune, keep_ids=[r.id for r in pack.rules],
            owned_ids=owned, report_path=report_path, resume_from=previous,
            on_result=on_result)
    with _fleet_factory(cloud, arm_endpoint, logs_endpoint, tenant_id, credential,
                        {"pool_size": 2 * workers, **client_kwargs}) as factory:
        return _rollout.rollout(
            targets, rules, factory, concurrency=workers, dry_run=dry_run,
            disabled=disabled, force=force, prune=prune, keep_ids=[r.id for r in pack.rules],
            owned_ids=owned, report_path=report_path, resume_from=previous,
            on_result=on_result, throttle=factory.throttle)


def fleet_status(targets: Sequence[Target], *, rule_ids: Sequence[str] | None = None,
                 concurrency: int | None = None, cloud: str = "AzureCloud",
                 arm_endpoint: str | None = None, logs_endpoint: str | None = None,
                 tenant_id: str | None = None, credential: TokenCredential | None = None,
                 on_result: Callable[[TargetState], None] | None = None,
                 pack: Pack | None = None, **client_kwargs: Any) -> FleetStatus:
    """``status`` for every target: per rule in-sync, drifted (with field diffs), missing,
    disabled or auto-disabled; a target that cannot be read is ``failed`` with the reason."""
    from . import rollout as _rollout

    workers = concurrency or _rollout.DEFAULT_CONCURRENCY
    with _fleet_factory(cloud, arm_endpoint, logs_endpoint, tenant_id, credential,
                        {"pool_size": 2 * workers, **client_kwargs}) as factory:
        return _rollout.fleet_status(targets, (pack or load_pack()).select(rule_ids), factory,
                                     concurrency=workers, on_result=on_result)
