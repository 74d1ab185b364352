"""Deploy, check and remove the pack as Defender XDR custom detection rules: orchestration.

The same plan / write / read-back / drift model as :mod:`deploy`, over a client with the
methods of :class:`DetectionRulesClient` (``azure.graph.DetectionRulesClient`` is the real
one). The translation is :mod:`detection_rule`'s. Pure: no printing, no module state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .deploy import (
    Action,
    RemoveAction,
    RulePlan,
    RuleRemoval,
    RuleState,
    RuleStatus,
)
from .detection_rule import NotExpressible, diff, rule_id_of, to_body
from .rules import Rule

_DONE = {Action.WOULD_CREATE: Action.CREATED, Action.WOULD_UPDATE: Action.UPDATED}


class DetectionRulesClient(Protocol):
    def list_rules(self) -> list[dict[str, Any]]: ...
    def get_rule(self, rule_id: str) -> dict[str, Any] | None: ...
    def create_rule(self, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def update_rule(self, rule_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def delete_rule(self, rule_id: str) -> bool: ...


def where(tenant: str | None) -> dict[str, Any]:
    """The ``workspace`` object of the JSON documents for Defender XDR."""
    return {"kind": "defender", "tenant": tenant, "workspace": "Defender XDR custom detections",
            "resource_group": None}


@dataclass(frozen=True)
class DefenderResult:
    """deploy/status/remove outcome: the documents of shared shape (``workspace``, ``rules``)."""

    tenant: str | None
    rules: tuple[Any, ...]

    @property
    def failed(self) -> tuple[RulePlan, ...]:
        return tuple(p for p in self.rules if getattr(p, "action", None) is Action.FAILED)

    @property
    def refused(self) -> tuple[Any, ...]:
        return tuple(p for p in self.rules if Action.REFUSED in (
            getattr(p, "action", None), getattr(p, "state", None)))

    @property
    def in_sync(self) -> bool:
        return all(getattr(s, "state", None) is RuleState.IN_SYNC for s in self.rules)

    def to_dict(self) -> dict[str, Any]:
        return {"workspace": where(self.tenant), "rules": [r.to_dict() for r in self.rules]}


def _ours(client: DetectionRulesClient) -> dict[str, dict[str, Any]]:
    """Deployed detection rules made from pack rules, by pack rule id (first one wins)."""
    found: dict[str, dict[str, Any]] = {}
    for resource in client.list_rules():
        rule_id = rule_id_of(resource)
        if rule_id and rule_id not in found:
            found[rule_id] = resource
    return found


def _plan(rule: Rule, deployed: Mapping[str, Any] | None, *, disabled: bool,
          isolate: bool) -> RulePlan:
    try:
        body = to_body(rule, enabled=not disabled, isolate=isolate)
    except NotExpressible as exc:
        return RulePlan(rule, Action.REFUSED, f"not a custom detection: {exc}")
    if deployed is None:
        return RulePlan(rule, Action.WOULD_CREATE, body=body)
    changes = tuple(diff(body, deployed))
    return RulePlan(rule, Action.WOULD_UPDATE if changes else Action.UNCHANGED,
                    changes=changes, body=body, etag=str(deployed.get("id")))


def plan(client: DetectionRulesClient, rules: Sequence[Rule], *, disabled: bool = False,
         isolate: bool = False) -> list[RulePlan]:
    """What deploy would do per rule; reads the tenant's detection rules once."""
    deployed = _ours(client)
    return [_plan(r, deployed.get(r.id), disabled=disabled, isolate=isolate) for r in rules]


def _write(client: DetectionRulesClient, step: RulePlan) -> RulePlan:
    if step.action is Action.WOULD_CREATE:
        written = client.create_rule(step.body)
    else:
        assert step.etag is not None  # the deployed rule's Graph id
        written = client.update_rule(step.etag, step.body)
    back = client.get_rule(str(written.get("id") or step.etag))
    if back is None:
        return replace(step, action=Action.FAILED,
                       reason="Graph accepted the rule but reading it back finds nothing")
    lost = diff(step.body, back)
    if lost:
        return replace(step, action=Action.FAILED, reason="read back differs from what was "
                       "sent: " + ", ".join(c.field for c in lost))
    return replace(step, action=_DONE[step.action])


def deploy(client: DetectionRulesClient, rules: Sequence[Rule], *, tenant: str | None = None,
           dry_run: bool = False, disabled: bool = False, isolate: bool = False
           ) -> DefenderResult:
    """Create or update every rule that differs (unless *dry_run*), each read back."""
    steps = plan(client, rules, disabled=disabled, isolate=isolate)
    if not dry_run:
        steps = [_write(client, s) if s.action in _DONE else s for s in steps]
    return DefenderResult(tenant, tuple(steps))


def status(client: DetectionRulesClient, rules: Sequence[Rule], *, tenant: str | None = None
           ) -> DefenderResult:
    """Per rule: in-sync, drifted (with the changes), missing, disabled or refused."""
    deployed = _ours(client)
    states = []
    for rule in rules:
        actual = deployed.get(rule.id)
        enabled = bool(actual.get("isEnabled")) if actual else True
        try:
            body = to_body(rule, enabled=enabled)
        except NotExpressible as exc:
            states.append(RuleStatus(rule, RuleState.REFUSED,
                                     reason=f"not a custom detection: {exc}"))
            continue
        if actual is None:
            states.append(RuleStatus(rule, RuleState.MISSING))
            continue
        changes = tuple(diff(body, actual))
        state = (RuleState.DRIFTED if changes else
                 RuleState.IN_SYNC if enabled else RuleState.DISABLED)
        states.append(RuleStatus(rule, state, changes))
    return DefenderResult(tenant, tuple(states))


def remove(client: DetectionRulesClient, rules: Sequence[Rule], *, tenant: str | None = None
           ) -> DefenderResult:
    """Delete the detection rules made from *rules*; others are never touched."""
    deployed = _ours(client)
    removals = []
    for rule in rules:
        actual = deployed.get(rule.id)
        gone = actual is not None and client.delete_rule(str(actual.get("id")))
        removals.append(RuleRemoval(rule, RemoveAction.DELETED if gone else RemoveAction.ABSENT))
    return DefenderResult(tenant, tuple(removals))
