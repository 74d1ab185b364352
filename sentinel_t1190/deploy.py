"""Deploy, check and remove the pack's rules on ONE Sentinel workspace: pure orchestration.

Every function takes the workspace client as its first argument (anything with the methods of
:class:`WorkspaceClient`; :func:`sentinel_t1190.azure.arm.workspace_client` builds the real
one), never prints, keeps no module state and raises only :mod:`sentinel_t1190.errors`, so
``rollout`` can call them for hundreds of workspaces from worker threads. docs/deploy.md
describes them.

The translation between a rule and the API (``to_api_body``, ``normalise``, ``diff``,
``dropped``) is :mod:`sentinel_t1190.alert_rule`'s; nothing here rewrites a field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from .alert_rule import Change, diff, dropped, resource_name, to_api_body
from .compile import deployed_query
from .errors import ConflictError
from .rules import Rule

__all__ = [
    "Action", "Change", "DeployResult", "RemoveAction", "RemoveResult", "RuleCache", "RulePlan",
    "RuleRemoval", "RuleState", "RuleStatus", "StatusResult", "TableCheck", "Target",
    "WorkspaceClient", "WorkspaceInfo", "deploy", "plan", "remove", "status",
]

#: Sentinel renames a rule it disabled after repeated failures: "AUTO DISABLED <name>".
AUTO_DISABLED_PREFIX = "AUTO DISABLED"


@dataclass(frozen=True)
class Target:
    """One workspace to act on (a row of a targets file, or the CLI's target options)."""

    subscription_id: str
    resource_group: str
    workspace: str
    tenant_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"subscription_id": self.subscription_id, "resource_group": self.resource_group,
                "workspace": self.workspace, "tenant_id": self.tenant_id}


@dataclass(frozen=True)
class WorkspaceInfo:
    """What the pre-flight learnt about the workspace (the ``workspace`` object in JSON)."""

    subscription_id: str
    resource_group: str
    workspace: str
    resource_id: str
    customer_id: str
    location: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"subscription_id": self.subscription_id, "resource_group": self.resource_group,
                "workspace": self.workspace, "id": self.resource_id,
                "customer_id": self.customer_id, "location": self.location}


@dataclass(frozen=True)
class TableCheck:
    """A table's columns in the workspace (name -> KQL type), or why it cannot be read."""

    table: str
    columns: Mapping[str, str] | None
    reason: str | None = None


class WorkspaceClient(Protocol):
    """What deploy/status/remove need from a workspace (``arm.SentinelWorkspaceClient``)."""

    def preflight(self, *, sentinel: bool = True) -> WorkspaceInfo:
        """The workspace exists (and, with *sentinel*, Microsoft Sentinel is onboarded)."""
        ...

    def list_rules(self) -> list[dict[str, Any]]:
        """Every alert rule of the workspace, as the ARM JSON resources."""
        ...

    def get_rule(self, name: str) -> dict[str, Any] | None:
        """One alert rule's ARM JSON, or None if there is none by that name."""
        ...

    def put_rule(self, name: str, body: Mapping[str, Any], *,
                 etag: str | None = None) -> dict[str, Any]:
        """Create or update (``ConflictError`` on 409); returns the service's answer."""
        ...

    def delete_rule(self, name: str) -> bool:
        """Delete; True if it was there, False if it was already absent."""
        ...

    def table_schema(self, table: str) -> TableCheck:
        """The columns of *table* as the workspace resolves it (``getschema``)."""
        ...


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    WOULD_CREATE = "would-create"
    WOULD_UPDATE = "would-update"
    REFUSED = "refused"
    #: The write failed (409 twice) or the read-back lost fields: see ``reason``.
    FAILED = "failed"


_DONE = {Action.WOULD_CREATE: Action.CREATED, Action.WOULD_UPDATE: Action.UPDATED}


@dataclass(frozen=True)
class RulePlan:
    """What deploy does (or did) with one rule, and why."""

    rule: Rule
    action: Action
    reason: str | None = None
    changes: tuple[Change, ...] = ()
    #: The PUT body (``{"kind", "properties"}``) and the deployed rule's etag, for the write.
    body: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    etag: str | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.rule.id, "short_id": self.rule.short_id, "name": self.rule.name,
                "action": self.action.value, "reason": self.reason,
                "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class DeployResult:
    workspace: WorkspaceInfo
    rules: tuple[RulePlan, ...]

    @property
    def failed(self) -> tuple[RulePlan, ...]:
        return tuple(p for p in self.rules if p.action is Action.FAILED)

    @property
    def refused(self) -> tuple[RulePlan, ...]:
        return tuple(p for p in self.rules if p.action is Action.REFUSED)

    def to_dict(self) -> dict[str, Any]:
        """The ``deploy`` JSON shape (docs/json-output.md)."""
        return {"workspace": self.workspace.to_dict(), "rules": [p.to_dict() for p in self.rules]}


class RuleState(StrEnum):
    IN_SYNC = "in-sync"
    DRIFTED = "drifted"
    MISSING = "missing"
    #: Not deployed, and deploy would refuse it here (its table or columns are missing):
    #: the same word and reason as deploy's ``refused`` action.
    REFUSED = "refused"
    DISABLED = "disabled"
    AUTO_DISABLED = "auto-disabled"


@dataclass(frozen=True)
class RuleStatus:
    rule: Rule
    state: RuleState
    changes: tuple[Change, ...] = ()
    #: Why Sentinel auto-disabled the rule (when it says so), or why deploy refuses it.
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.rule.id, "short_id": self.rule.short_id, "name": self.rule.name,
                "state": self.state.value, "reason": self.reason,
                "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class StatusResult:
    workspace: WorkspaceInfo
    rules: tuple[RuleStatus, ...]

    @property
    def in_sync(self) -> bool:
        return all(s.state is RuleState.IN_SYNC for s in self.rules)

    @property
    def refused(self) -> tuple[RuleStatus, ...]:
        return tuple(s for s in self.rules if s.state is RuleState.REFUSED)

    @property
    def out_of_sync(self) -> tuple[RuleStatus, ...]:
        """Rules neither in sync nor refused: drifted, missing, disabled, auto-disabled."""
        return tuple(s for s in self.rules
                     if s.state not in (RuleState.IN_SYNC, RuleState.REFUSED))

    def to_dict(self) -> dict[str, Any]:
        """The ``status`` JSON shape (docs/json-output.md)."""
        return {"workspace": self.workspace.to_dict(), "rules": [s.to_dict() for s in self.rules]}


class RemoveAction(StrEnum):
    DELETED = "deleted"
    ABSENT = "absent"


@dataclass(frozen=True)
class RuleRemoval:
    rule: Rule
    action: RemoveAction

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.rule.id, "short_id": self.rule.short_id, "name": self.rule.name,
                "action": self.action.value}


@dataclass(frozen=True)
class RemoveResult:
    workspace: WorkspaceInfo
    rules: tuple[RuleRemoval, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"workspace": self.workspace.to_dict(), "rules": [r.to_dict() for r in self.rules]}


# --- plan ------------------------------------------------------------------------------------


def _deployed(client: WorkspaceClient) -> dict[str, dict[str, Any]]:
    return {str(r.get("name", "")).lower(): r for r in client.list_rules()}


def _needed_columns(rule: Rule, table: str) -> frozenset[str]:
    """The columns of *table* (per its bundled schema) that the deployed query reads."""
    from .errors import UnsupportedQueryError
    from .schema import columns_read

    try:
        return frozenset(columns_read(deployed_query(rule), table))
    except UnsupportedQueryError:
        return frozenset()  # the table check alone still runs


class RuleCache:
    """What deploy and status work out from a rule alone, whatever the workspace: its PUT
    body (the deployed query with its exclusions compiled in) and the columns that query
    reads. A fleet run (rollout, fleet status) shares one, so each is worked out once for
    the run rather than once per workspace; alone, deploy and status use a fresh one.

    Worker threads may share it: a value two of them compute at once is the same value.
    The bodies it hands out are shared and must not be changed.
    """

    def __init__(self) -> None:
        # Keyed by id(rule), holding the rule so that its id cannot be reused meanwhile.
        self._values: dict[tuple[str, int, object], tuple[Rule, Any]] = {}

    def _once(self, what: str, rule: Rule, arg: object, compute: Callable[[], Any]) -> Any:
        key = (what, id(rule), arg)
        found = self._values.get(key)
        if found is None:
            found = self._values[key] = (rule, compute())
        return found[1]

    def body(self, rule: Rule, *, enabled: bool) -> Mapping[str, Any]:
        """:func:`~sentinel_t1190.alert_rule.to_api_body` of *rule*."""
        body: Mapping[str, Any] = self._once("body", rule, enabled,
                                             lambda: to_api_body(rule, enabled=enabled))
        return body

    def needed_columns(self, rule: Rule, table: str) -> frozenset[str]:
        """The columns of *table* that *rule*'s deployed query reads."""
        columns: frozenset[str] = self._once("columns", rule, table,
                                             lambda: _needed_columns(rule, table))
        return columns


def _table_problem(client: WorkspaceClient, rule: Rule, tables: dict[str, TableCheck],
                   cache: RuleCache) -> str | None:
    """Why *rule* would fail in this workspace (table or columns missing), or None."""
    for table in rule.tables:
        if table not in tables:
            tables[table] = client.table_schema(table)
        check = tables[table]
        if check.columns is None:
            return check.reason or f"table {table} does not exist in the workspace"
        missing = sorted(c for c in cache.needed_columns(rule, table)
                         if c not in check.columns)
        if missing:
            return (f"table {table} in the workspace lacks column(s) the rule reads: "
                    + ", ".join(missing))
    return None


def _kind_change(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> list[Change]:
    kind = actual.get("kind")
    return [] if kind == desired["kind"] else [Change("kind", kind, desired["kind"])]


def _plan_rule(client: WorkspaceClient, rule: Rule, actual: Mapping[str, Any] | None,
               tables: dict[str, TableCheck], *, force: bool, disabled: bool,
               cache: RuleCache) -> RulePlan:
    body = cache.body(rule, enabled=not disabled)
    problem = _table_problem(client, rule, tables, cache)
    if problem and not force:
        return RulePlan(rule, Action.REFUSED, _refusal(problem), body=body)
    return _compare(rule, body, actual, f"forced: {problem}" if problem else None)


def _refusal(problem: str) -> str:
    """The one wording of a refusal, in deploy, status and rollout alike."""
    return f"{problem} (Sentinel would auto-disable the rule; --force deploys it anyway)"


def _compare(rule: Rule, body: Mapping[str, Any], actual: Mapping[str, Any] | None,
             reason: str | None) -> RulePlan:
    if actual is None:
        return RulePlan(rule, Action.WOULD_CREATE, reason, body=body)
    changes = (*_kind_change(body, actual), *diff(body, actual))
    action = Action.WOULD_UPDATE if changes else Action.UNCHANGED
    etag = actual.get("etag")
    return RulePlan(rule, action, reason, tuple(changes), body=body,
                    etag=etag if isinstance(etag, str) else None)


def plan(client: WorkspaceClient, rules: Sequence[Rule], *, force: bool = False,
         disabled: bool = False, cache: RuleCache | None = None) -> list[RulePlan]:
    """Compare each rule with what is deployed: would-create, would-update (with the changed
    fields), unchanged, or refused (its table or columns are missing; ``force`` overrides).

    Reads the workspace's rules once and each table's schema once. Writes nothing.
    *cache*: shared by a fleet run (:class:`RuleCache`).
    """
    deployed = _deployed(client)
    tables: dict[str, TableCheck] = {}
    cache = cache or RuleCache()
    return [_plan_rule(client, rule, deployed.get(resource_name(rule)), tables, force=force,
                       disabled=disabled, cache=cache) for rule in rules]


# --- deploy ----------------------------------------------------------------------------------


def _write(client: WorkspaceClient, step: RulePlan) -> RulePlan:
    name = resource_name(step.rule)
    for attempt in (1, 2):
        try:
            client.put_rule(name, step.body, etag=step.etag)
            break
        except ConflictError as exc:
            if attempt == 2:
                return replace(step, action=Action.FAILED,
                               reason=f"changed by someone else during deploy, twice: {exc}")
            # Someone changed the rule meanwhile: read it again and plan again, once.
            step = _compare(step.rule, step.body, client.get_rule(name), step.reason)
            if step.action not in _DONE:
                return step
    back = client.get_rule(name)
    if back is None:
        return replace(step, action=Action.FAILED,
                       reason="the service accepted the rule but reading it back finds nothing")
    lost = dropped(step.body, back)
    if lost:
        return replace(step, action=Action.FAILED,
                       reason="the service dropped fields that were sent: " + ", ".join(lost))
    return replace(step, action=_DONE[step.action])


def deploy(client: WorkspaceClient, rules: Sequence[Rule], *, dry_run: bool = False,
           disabled: bool = False, force: bool = False,
           cache: RuleCache | None = None) -> DeployResult:
    """Pre-flight, plan, then create or update every rule that differs (unless *dry_run*).

    An unchanged or refused rule is not written. Each write is read back and compared with
    what was sent; a 409 (concurrent change) re-reads, re-plans and retries once. Rules that
    still fail come back with action ``failed`` and the reason (see ``DeployResult.failed``).
    """
    workspace = client.preflight()
    steps = plan(client, rules, force=force, disabled=disabled, cache=cache)
    if not dry_run:
        steps = [_write(client, s) if s.action in _DONE else s for s in steps]
    return DeployResult(workspace, tuple(steps))


# --- status ----------------------------------------------------------------------------------


def _auto_disabled_reason(props: Mapping[str, Any], rule: Rule) -> str | None:
    """Sentinel writes the reason into the description, ahead of the original text."""
    text = str(props.get("description") or "").strip()
    original = str(rule.data.get("description") or "").strip()
    if original:
        text = text.replace(original, "").strip()
    return text or None


def _rule_status(client: WorkspaceClient, rule: Rule, actual: Mapping[str, Any] | None,
                 tables: dict[str, TableCheck], cache: RuleCache) -> RuleStatus:
    if actual is None:
        problem = _table_problem(client, rule, tables, cache)
        if problem:
            return RuleStatus(rule, RuleState.REFUSED, reason=_refusal(problem))
        return RuleStatus(rule, RuleState.MISSING)
    props = actual.get("properties") or {}
    enabled = bool(props.get("enabled"))
    # Compare the content with the enabled flag as deployed; disabled is its own state.
    body = cache.body(rule, enabled=enabled)
    changes = [*_kind_change(body, actual), *diff(body, actual)]
    display = str(props.get("displayName") or "")
    if display.upper().startswith(AUTO_DISABLED_PREFIX):
        return RuleStatus(rule, RuleState.AUTO_DISABLED, tuple(changes),
                          _auto_disabled_reason(props, rule))
    if changes:
        if not enabled:
            changes.append(Change("enabled", False, True))
        return RuleStatus(rule, RuleState.DRIFTED, tuple(changes))
    return RuleStatus(rule, RuleState.IN_SYNC if enabled else RuleState.DISABLED)


def status(client: WorkspaceClient, rules: Sequence[Rule], *,
           cache: RuleCache | None = None) -> StatusResult:
    """Per rule: in-sync, drifted (with the changed fields), missing, refused (not deployed,
    and deploy refuses it here: the reason says why), disabled, or auto-disabled (Sentinel's
    "AUTO DISABLED" rename, with its reason when it gives one).

    Only a rule that is not deployed costs a table check (each table once). *cache*: shared
    by a fleet run (:class:`RuleCache`)."""
    workspace = client.preflight()
    deployed = _deployed(client)
    tables: dict[str, TableCheck] = {}
    cache = cache or RuleCache()
    return StatusResult(workspace, tuple(
        _rule_status(client, r, deployed.get(resource_name(r)), tables, cache) for r in rules))


# --- remove ----------------------------------------------------------------------------------


def remove(client: WorkspaceClient, rules: Sequence[Rule]) -> RemoveResult:
    """Delete the rules from the workspace; a rule that is not there is not an error."""
    workspace = client.preflight(sentinel=False)
    done = tuple(RuleRemoval(r, RemoveAction.DELETED if client.delete_rule(resource_name(r))
                             else RemoveAction.ABSENT) for r in rules)
    return RemoveResult(workspace, done)
