"""Tenant-wide rollout: the pack to many workspaces, with a report that survives a crash.

For each target :func:`rollout` calls :func:`sentinel_t1190.deploy.deploy` — the same
pre-flight, plan, write and read-back as ``deploy`` — from a bounded pool of worker threads.
One target's failure is recorded and never stops the others. After EACH target the report
(docs/json-output.md) is rewritten atomically (a temporary file renamed over it), so a run
that is interrupted, crashes or is killed loses nothing; :func:`load_report` + ``resume_from``
redo only the targets that failed or never ran.

Throttling is the clients' business: the SDK retry policy honours ``Retry-After`` on 429 and
backs off on 5xx and connection errors, and :class:`~sentinel_t1190.azure.throttle.ArmThrottle`
(installed by :class:`ArmClientFactory`) makes workers wait when a subscription's
``x-ms-ratelimit-remaining-subscription-*`` budget runs low.

``prune`` deletes from each workspace the alert rules this tool deployed earlier (their name
is in the pack's shipped-ids list, see :func:`sentinel_t1190.alert_rule.owned_ids`) that are
no longer in the pack; nothing else is ever touched.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import deploy as _deploy
from .alert_rule import resource_name, shipped_rule_ids
from .deploy import Action, RuleState, Target, WorkspaceClient
from .errors import InputError, SentinelT1190Error
from .files import atomic_open
from .output_schemas import SCHEMA_VERSION
from .rules import Rule
from .targets import target_key

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from .azure.clouds import Cloud
    from .azure.throttle import ArmThrottle

__all__ = [
    "DEFAULT_CONCURRENCY", "ArmClientFactory", "ClientFactory", "FleetStatus", "RolloutReport",
    "TargetResult", "TargetState", "TargetStatus", "fleet_status", "load_report",
    "remaining_targets", "rollout", "write_report",
]

#: Workers by default. Modest on purpose: a fleet in one subscription shares one ARM budget
#: (the throttle slows workers down when it runs low); spread fleets can use more.
DEFAULT_CONCURRENCY = 8

#: Builds the workspace client of one target (called from worker threads).
ClientFactory = Callable[[Target], WorkspaceClient]

T = TypeVar("T")
R = TypeVar("R")


class TargetStatus(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    #: At least one rule was refused there (its table or columns are missing); the rules'
    #: ``reason`` says why, the others were deployed as usual.
    REFUSED = "refused"
    #: Written by earlier versions when every rule was refused; read, never written now.
    SKIPPED = "skipped"
    WOULD_CREATE = "would-create"
    WOULD_UPDATE = "would-update"
    #: Not finished (yet): the run was interrupted before this target completed.
    PENDING = "pending"


#: Statuses ``--resume`` does not redo.
DONE = frozenset({TargetStatus.CREATED, TargetStatus.UPDATED, TargetStatus.UNCHANGED,
                  TargetStatus.REFUSED, TargetStatus.SKIPPED})
#: ``skipped`` stays in the summary (always 0 now) so readers of the old shape keep working.
_SUMMARY_KEYS = ("created", "updated", "unchanged", "refused", "failed", "skipped")
_PLAN_KEYS = ("would-create", "would-update")


@dataclass(frozen=True)
class TargetResult:
    """What happened at one workspace."""

    target: Target
    status: TargetStatus
    error: str | None = None
    #: The deploy JSON's ``rules`` (id, name, action, reason, changes).
    rules: tuple[Mapping[str, Any], ...] = ()
    #: Rules removed by ``prune``: name, displayName, action (deleted|absent|would-delete).
    pruned: tuple[Mapping[str, Any], ...] = ()
    #: The error class (AuthError, AzureServiceError, InputError…) when it failed.
    error_type: str | None = None
    seconds: float | None = None
    finished_at: str | None = None

    @cached_property
    def report_text(self) -> str:
        """:meth:`to_dict` as an item of the report's ``targets`` (``indent=2``, 4 deep):
        encoded once, though the report is rewritten after every target."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False).replace("\n", "\n    ")

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "subscription_id": t.subscription_id, "resource_group": t.resource_group,
            "workspace": t.workspace, "status": self.status.value, "error": self.error,
            "tenant_id": t.tenant_id, "error_type": self.error_type,
            "rules": [dict(r) for r in self.rules], "pruned": [dict(p) for p in self.pruned],
            "seconds": self.seconds, "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> TargetResult:
        target = Target(str(doc["subscription_id"]), str(doc["resource_group"]),
                        str(doc["workspace"]), doc.get("tenant_id") or None)
        return cls(target, TargetStatus(str(doc.get("status") or "pending")),
                   doc.get("error"), tuple(doc.get("rules") or ()),
                   tuple(doc.get("pruned") or ()), doc.get("error_type"),
                   doc.get("seconds"), doc.get("finished_at"))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RolloutReport:
    """The rollout report; ``to_dict`` is the JSON written to ``--report``."""

    targets: list[TargetResult]
    dry_run: bool = False
    prune: bool = False
    started_at: str = field(default_factory=_now)
    finished_at: str | None = None
    #: Seconds workers waited because a subscription's ARM budget ran low.
    throttle_wait_seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return all(r.status is not TargetStatus.PENDING for r in self.targets)

    @property
    def failed(self) -> list[TargetResult]:
        return [r for r in self.targets if r.status is TargetStatus.FAILED]

    @property
    def refused(self) -> list[TargetResult]:
        return [r for r in self.targets if r.status is TargetStatus.REFUSED]

    @property
    def pending(self) -> list[TargetResult]:
        return [r for r in self.targets if r.status is TargetStatus.PENDING]

    def summary(self) -> dict[str, int]:
        counts = {"total": len(self.targets), **dict.fromkeys(_SUMMARY_KEYS, 0)}
        if self.dry_run:
            counts.update(dict.fromkeys(_PLAN_KEYS, 0))
        counts["pending"] = 0
        for result in self.targets:
            counts[result.status.value] = counts.get(result.status.value, 0) + 1
        counts["pruned"] = sum(1 for r in self.targets for p in r.pruned
                               if p.get("action") in ("deleted", "would-delete"))
        return counts

    def to_dict(self, *, with_targets: bool = True) -> dict[str, Any]:
        targets = {"targets": [r.to_dict() for r in self.targets]} if with_targets else {}
        return {
            "summary": self.summary(), **targets, "dry_run": self.dry_run, "prune": self.prune,
            "complete": self.complete,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "throttle_wait_seconds": round(self.throttle_wait_seconds, 3),
        }


def write_report(report: RolloutReport, path: Path) -> None:
    """Write *report* to *path* atomically: readers see the old or the new file, never half."""
    with atomic_open(path, f"the rollout report {path}") as handle:
        handle.write(report_text(report))


def report_text(report: RolloutReport) -> str:
    """``json.dumps(versioned(report.to_dict()), indent=2)`` and a newline, from each target's
    :attr:`TargetResult.report_text` (a fleet's report is rewritten after every target)."""
    doc = report.to_dict(with_targets=False)
    summary = json.dumps(doc.pop("summary"), indent=2, ensure_ascii=False)
    rest = json.dumps(doc, indent=2, ensure_ascii=False)
    items = ",\n    ".join(t.report_text for t in report.targets)
    targets = f"[\n    {items}\n  ]" if report.targets else "[]"
    return (f'{{\n  "schema_version": {SCHEMA_VERSION},\n  "summary": '
            + summary.replace("\n", "\n  ") + ',\n  "targets": '
            + targets + "," + rest.removeprefix("{") + "\n")


def load_report(path: Path) -> RolloutReport:
    """Read a report written by :func:`rollout` (for ``--resume``)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        targets = [TargetResult.from_dict(t) for t in doc["targets"]]
    except OSError as exc:
        raise InputError(f"cannot read the rollout report {path}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a rollout report: {exc}") from exc
    return RolloutReport(targets, dry_run=bool(doc.get("dry_run")), prune=bool(doc.get("prune")),
                         started_at=str(doc.get("started_at") or _now()),
                         finished_at=doc.get("finished_at"))


def remaining_targets(targets: Sequence[Target], previous: RolloutReport) -> list[Target]:
    """*targets* that *previous* did not finish (failed, pending, or absent from it).

    A dry-run report finishes nothing: every target remains.
    """
    if previous.dry_run:
        return list(targets)
    done = {target_key(r.target) for r in previous.targets if r.status in DONE}
    return [t for t in targets if target_key(t) not in done]


# --- one target ----------------------------------------------------------------------------


def _prune(client: WorkspaceClient, keep: Collection[str], owned: Collection[str],
           dry_run: bool) -> list[dict[str, Any]]:
    removed: list[dict[str, Any]] = []
    for resource in client.list_rules():
        name = str(resource.get("name") or "").lower()
        if name not in owned or name in keep:
            continue
        display = (resource.get("properties") or {}).get("displayName")
        action = ("would-delete" if dry_run
                  else "deleted" if client.delete_rule(name) else "absent")
        removed.append({"name": name, "displayName": display, "action": action})
    return removed


def _target_status(rules: Sequence[Mapping[str, Any]], pruned: Sequence[Mapping[str, Any]],
                   dry_run: bool) -> TargetStatus:
    actions = {str(r["action"]) for r in rules}
    prunes = {str(p["action"]) for p in pruned}
    if Action.REFUSED in actions:
        return TargetStatus.REFUSED
    if dry_run:
        if Action.WOULD_CREATE in actions:
            return TargetStatus.WOULD_CREATE
        if Action.WOULD_UPDATE in actions or "would-delete" in prunes:
            return TargetStatus.WOULD_UPDATE
    else:
        if Action.CREATED in actions:
            return TargetStatus.CREATED
        if Action.UPDATED in actions or "deleted" in prunes:
            return TargetStatus.UPDATED
    return TargetStatus.UNCHANGED


def deploy_target(target: Target, rules: Sequence[Rule], client_factory: ClientFactory, *,
                  dry_run: bool = False, disabled: bool = False, force: bool = False,
                  prune: bool = False, keep: Collection[str] = (),
                  owned: Collection[str] | None = None,
                  cache: _deploy.RuleCache | None = None) -> TargetResult:
    """Deploy *rules* to one target (and prune); every failure becomes a ``failed`` result.

    *cache*: what the fleet's targets share (:class:`~sentinel_t1190.deploy.RuleCache`)."""
    started = time.monotonic()
    rule_docs: list[Mapping[str, Any]] = []
    pruned: list[dict[str, Any]] = []
    try:
        client = client_factory(target)
        try:
            result = _deploy.deploy(client, rules, dry_run=dry_run, disabled=disabled,
                                    force=force, cache=cache)
            rule_docs = [p.to_dict() for p in result.rules]
            if prune:
                pruned = _prune(client, keep,
                                shipped_rule_ids() if owned is None else owned, dry_run)
        finally:
            _close(client)
    except SentinelT1190Error as exc:
        return _failed(target, started, str(exc), type(exc).__name__, rule_docs, pruned)
    except Exception as exc:  # a fleet run must outlive a bug at one target
        return _failed(target, started, f"internal error: {type(exc).__name__}: {exc}",
                       type(exc).__name__, rule_docs, pruned)
    failed = [r for r in rule_docs if r["action"] == Action.FAILED]
    status = (TargetStatus.FAILED if failed
              else _target_status(rule_docs, pruned, dry_run))
    # A refusal is not an error: its reason stays with the rule, printed once.
    error = "; ".join(f"{r['name']}: {r['reason']}" for r in failed) if failed else None
    return TargetResult(target, status, error, tuple(rule_docs), tuple(pruned),
                        "RuleFailed" if failed else None,
                        round(time.monotonic() - started, 3), _now())


def _close(client: object) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        close()


def _failed(target: Target, started: float, message: str, kind: str,
            rules: Sequence[Mapping[str, Any]], pruned: Sequence[Mapping[str, Any]],
            ) -> TargetResult:
    return TargetResult(target, TargetStatus.FAILED, message, tuple(rules), tuple(pruned), kind,
                        round(time.monotonic() - started, 3), _now())


# --- the fleet -----------------------------------------------------------------------------


def _fan_out(items: Sequence[T], work: Callable[[T], R], concurrency: int,
             on_done: Callable[[int, R], None]) -> None:
    """Run *work* over *items* on *concurrency* threads; *on_done(index, result)* runs in the
    calling thread as each finishes. On an exception there (Ctrl-C, a callback raising), work
    not started is cancelled, work in flight is still collected, and the exception re-raised.
    """
    if concurrency < 1:
        raise InputError(f"concurrency must be at least 1, not {concurrency}")
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rollout") as pool:
        futures: dict[Future[R], int] = {pool.submit(work, item): i
                                         for i, item in enumerate(items)}
        try:
            for future in as_completed(futures):
                on_done(futures[future], future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            with contextlib.suppress(KeyboardInterrupt):
                for future in as_completed([f for f in futures if not f.cancelled()]):
                    if not future.exception():
                        with contextlib.suppress(Exception):
                            on_done(futures[future], future.result())
            raise


def rollout(targets: Sequence[Target], rules: Sequence[Rule], client_factory: ClientFactory, *,
            concurrency: int = DEFAULT_CONCURRENCY, dry_run: bool = False,
            disabled: bool = False, force: bool = False, prune: bool = False,
            keep_ids: Iterable[str] | None = None, owned_ids: Collection[str] | None = None,
            report_path: Path | None = None, resume_from: RolloutReport | None = None,
            on_result: Callable[[TargetResult], None] | None = None,
            throttle: ArmThrottle | None = None) -> RolloutReport:
    """Deploy *rules* to every target; return the report (also written to *report_path*).

    *resume_from*: a previous report; its finished targets are kept as they were and not
    touched again, the rest (failed, pending, new) run. *prune* deletes rules the tool
    deployed whose ids are not in *keep_ids* (default: the ids of *rules* — pass the whole
    pack's ids when *rules* is a selection) and are in *owned_ids* (default: the bundled
    pack's shipped ids; :func:`~sentinel_t1190.alert_rule.owned_ids` of your own pack).
    *on_result* is called in the calling thread as
    each target finishes (progress bars); *throttle* is only read for the report.
    """
    keep = {i.lower() for i in keep_ids} if keep_ids is not None else {
        resource_name(r) for r in rules}
    previous = {} if resume_from is None or resume_from.dry_run else {
        target_key(r.target): r for r in resume_from.targets if r.status in DONE}
    results = [previous.get(target_key(t)) or TargetResult(t, TargetStatus.PENDING)
               for t in targets]
    todo = [i for i, r in enumerate(results) if r.status is TargetStatus.PENDING]
    report = RolloutReport(results, dry_run=dry_run, prune=prune)
    lock = threading.Lock()
    cache = _deploy.RuleCache()  # each rule's body and columns, once for the fleet

    def save() -> None:
        if throttle is not None:
            report.throttle_wait_seconds = throttle.waited
        if report_path is not None:
            write_report(report, report_path)

    def work(index: int) -> TargetResult:
        return deploy_target(targets[index], rules, client_factory, dry_run=dry_run,
                             disabled=disabled, force=force, prune=prune, keep=keep,
                             owned=owned_ids, cache=cache)

    def done(position: int, result: TargetResult) -> None:
        with lock:
            report.targets[todo[position]] = result
            save()
        if on_result is not None:
            on_result(result)

    save()
    try:
        _fan_out(todo, work, concurrency, done)
    finally:
        report.finished_at = _now()
        save()
    return report


# --- fleet status --------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetState:
    """``status`` of one workspace, or why it could not be read."""

    target: Target
    result: _deploy.StatusResult | None
    error: str | None = None
    error_type: str | None = None

    @property
    def state(self) -> str:
        """failed, out-of-sync (drift, missing, disabled…), refused (only refusals), in-sync."""
        if self.result is None:
            return "failed"
        if self.result.out_of_sync:
            return "out-of-sync"
        return "refused" if self.result.refused else "in-sync"

    @cached_property
    def report_text(self) -> str:
        """:meth:`to_dict` as an item of the report's ``targets`` (``indent=2``, 4 deep):
        encoded once, though the report is rewritten after every target."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False).replace("\n", "\n    ")

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "subscription_id": t.subscription_id, "resource_group": t.resource_group,
            "workspace": t.workspace, "tenant_id": t.tenant_id, "status": self.state,
            "error": self.error, "error_type": self.error_type,
            "rules": [] if self.result is None else [s.to_dict() for s in self.result.rules],
        }


@dataclass(frozen=True)
class FleetStatus:
    targets: tuple[TargetState, ...]

    @property
    def in_sync(self) -> bool:
        return all(t.state == "in-sync" for t in self.targets)

    def count(self, state: str) -> int:
        return sum(1 for t in self.targets if t.state == state)

    def summary(self) -> dict[str, int]:
        counts = {"total": len(self.targets), "in-sync": 0, "out-of-sync": 0, "refused": 0,
                  "failed": 0}
        rules = dict.fromkeys((s.value for s in RuleState), 0)
        for t in self.targets:
            counts[t.state] += 1
            for s in t.result.rules if t.result else ():
                rules[s.state.value] += 1
        return {**counts, **{f"rules_{k}": v for k, v in rules.items()}}

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "targets": [t.to_dict() for t in self.targets]}


def status_target(target: Target, rules: Sequence[Rule], client_factory: ClientFactory,
                  cache: _deploy.RuleCache | None = None) -> TargetState:
    """``status`` of one workspace; a failure becomes a ``failed`` entry."""
    try:
        client = client_factory(target)
        try:
            return TargetState(target, _deploy.status(client, rules, cache=cache))
        finally:
            _close(client)
    except SentinelT1190Error as exc:
        return TargetState(target, None, str(exc), type(exc).__name__)
    except Exception as exc:  # one workspace must not hide the others
        return TargetState(target, None, f"internal error: {type(exc).__name__}: {exc}",
                           type(exc).__name__)


def fleet_status(targets: Sequence[Target], rules: Sequence[Rule],
                 client_factory: ClientFactory, *, concurrency: int = DEFAULT_CONCURRENCY,
                 on_result: Callable[[TargetState], None] | None = None) -> FleetStatus:
    """Per target, per rule: in-sync, drifted, missing, disabled, auto-disabled (in order)."""
    states: list[TargetState | None] = [None] * len(targets)

    def done(index: int, state: TargetState) -> None:
        states[index] = state
        if on_result is not None:
            on_result(state)

    cache = _deploy.RuleCache()
    _fan_out(list(targets), lambda t: status_target(t, rules, client_factory, cache),
             concurrency, done)
    return FleetStatus(tuple(s for s in states if s is not None))


# --- clients -------------------------------------------------------------------------------


class ArmClientFactory:
    """Real workspace clients for a fleet: one credential per tenant, one shared throttle.

    A target with a ``tenant_id`` authenticates in that tenant (a multi-tenant app or a guest
    identity); the others use *tenant_id* (the identity's own tenant: Lighthouse-delegated
    subscriptions are reached from there). *credential_factory* defaults to
    :func:`sentinel_t1190.azure.credentials.default_credential`. All clients share one HTTP
    connection pool of *pool_size* connections per host (closed by :meth:`close`).
    """

    def __init__(self, cloud: Cloud, *, tenant_id: str | None = None,
                 credential_factory: Callable[[Cloud, str | None], TokenCredential] | None = None,
                 throttle: ArmThrottle | None = None, pool_size: int = 32,
                 **client_kwargs: Any) -> None:
        from .azure.throttle import ArmThrottle

        self.cloud = cloud
        self.tenant_id = tenant_id
        self.throttle = throttle or ArmThrottle()
        self.pool_size = pool_size
        self.client_kwargs = client_kwargs
        self._credential_factory = credential_factory
        self._credentials: dict[str | None, TokenCredential] = {}
        self._transport: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> ArmClientFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the shared connection pool (clients made afterwards open a new one)."""
        from .azure.transport import close_transport

        with self._lock:
            close_transport(self._transport)
            self._transport = None

    def _shared_transport(self) -> Any:
        from .azure.transport import pooled_transport

        with self._lock:
            if self._transport is None and "transport" not in self.client_kwargs:
                self._transport = pooled_transport(self.pool_size, **self.client_kwargs)
            return self._transport

    def credential(self, tenant_id: str | None) -> TokenCredential:
        """The credential for *tenant_id* (None: the default tenant), built once."""
        key = (tenant_id or self.tenant_id or "").lower() or None
        with self._lock:
            if key not in self._credentials:
                if self._credential_factory is None:
                    from .azure.credentials import default_credential

                    self._credentials[key] = default_credential(self.cloud, key)
                else:
                    self._credentials[key] = self._credential_factory(self.cloud, key)
            return self._credentials[key]

    @staticmethod
    def release(client: WorkspaceClient) -> None:
        """Close a client made by this factory (the shared pool stays open)."""
        _close(client)

    def __call__(self, target: Target) -> WorkspaceClient:
        from .azure import arm

        kwargs = {**self.throttle.hooks(), **self.client_kwargs}
        transport = self._shared_transport()
        if transport is not None:
            kwargs["transport"] = transport
        client: WorkspaceClient = arm.workspace_client_for(
            target, self.credential(target.tenant_id), self.cloud, **kwargs)
        return client

