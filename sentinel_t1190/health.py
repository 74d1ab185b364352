"""How the pack's rules behave in production, per workspace, through the Logs API.

Three aggregating queries per workspace (the rows come back summarised, never raw):

- ``SentinelHealth`` (Microsoft Sentinel health monitoring; the table exists only when it is
  turned on): analytics-rule runs grouped by rule, ``Status`` and ``Reason``. The rule is
  the last segment of ``SentinelResourceId`` (``…/alertRules/<rule GUID>``). The group with
  the newest run holds the last status; ``Reason`` "The analytics rule is disabled and was
  not executed." is the documented mark of an auto-disabled rule.
- ``SecurityAlert``: the rule's alerts, named by the ``"Analytic Rule Ids"`` entry of
  ``ExtendedProperties`` (a JSON array in a string); each ``SystemAlertId`` counts once.
- ``SecurityIncident``: the latest row per ``IncidentNumber`` (every update of an incident is
  a new row), its ``RelatedAnalyticRuleIds`` and ``Classification`` (TruePositive,
  FalsePositive, BenignPositive, Undetermined; empty while open).

Sources (docs/health.md): Microsoft Learn "SentinelHealth tables reference", "Monitor the
health and audit the integrity of your analytics rules", and the Azure Monitor table
references of SecurityAlert and SecurityIncident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from .hunt import Window
from .rules import Rule
from .timespan import iso_z, parse_instant

DEFAULT_TIMESPAN = "30d"
#: SentinelHealth ``Reason`` of a run skipped because the rule was auto-disabled.
AUTO_DISABLED_REASON = "The analytics rule is disabled and was not executed."
#: A rule raising more alerts than this per day is flagged noisy (``--noisy-alerts-per-day``).
NOISY_ALERTS_PER_DAY = 10.0
#: ...and so is one whose classified incidents are mostly not true positives.
LOW_PRECISION = 0.2
MIN_CLASSIFIED = 5

_RULE_FROM_RESOURCE = 'tolower(extract(@"(?i)/alertRules/([^/]+)$", 1, SentinelResourceId))'


def _ids(rules: Sequence[Rule]) -> str:
    return ", ".join(f'"{r.id.strip().lower()}"' for r in rules)


def runs_query(rules: Sequence[Rule]) -> str:
    return (f'SentinelHealth\n| where SentinelResourceType == "Analytics Rule"\n'
            f"| extend RuleId = {_RULE_FROM_RESOURCE}\n| where RuleId in ({_ids(rules)})\n"
            "| summarize Runs = count(), LastRun = max(TimeGenerated) by RuleId, Status, Reason")


def alerts_query(rules: Sequence[Rule]) -> str:
    return ("SecurityAlert\n| extend RuleIds = todynamic(tostring(todynamic("
            'ExtendedProperties)["Analytic Rule Ids"]))\n'
            "| mv-expand RuleId = RuleIds to typeof(string)\n| extend RuleId = tolower(RuleId)\n"
            f"| where RuleId in ({_ids(rules)})\n| summarize by RuleId, SystemAlertId\n"
            "| summarize Alerts = count() by RuleId")


def incidents_query(rules: Sequence[Rule]) -> str:
    return ("SecurityIncident\n| summarize arg_max(TimeGenerated, Status, Classification, "
            "RelatedAnalyticRuleIds) by IncidentNumber\n"
            "| mv-expand RuleId = RelatedAnalyticRuleIds to typeof(string)\n"
            f"| extend RuleId = tolower(RuleId)\n| where RuleId in ({_ids(rules)})\n"
            "| summarize Incidents = count() by RuleId, Status, Classification")


class TableQuerier(Protocol):
    """Runs one query in one workspace; returns its rows as dicts, or None when the
    workspace cannot resolve the table the query reads (it was never created)."""

    def __call__(self, workspace_id: str, query: str, window: Window
                 ) -> list[dict[str, Any]] | None: ...


@dataclass
class Incidents:
    total: int = 0
    true_positive: int = 0
    false_positive: int = 0
    benign_positive: int = 0
    undetermined: int = 0
    open: int = 0

    @property
    def classified(self) -> int:
        return self.true_positive + self.false_positive + self.benign_positive

    def to_dict(self) -> dict[str, int]:
        return {"total": self.total, "true_positive": self.true_positive,
                "false_positive": self.false_positive, "benign_positive": self.benign_positive,
                "undetermined": self.undetermined, "open": self.open}


_CLASSIFICATIONS = {"truepositive": "true_positive", "falsepositive": "false_positive",
                    "benignpositive": "benign_positive", "undetermined": "undetermined"}


@dataclass
class RuleHealth:
    id: str
    name: str
    runs: int = 0
    failures: int = 0
    last_run: datetime | None = None
    last_failure: datetime | None = None
    last_status: str | None = None
    last_reason: str | None = None
    failure_reasons: dict[str, int] = field(default_factory=dict)
    alerts: int = 0
    incidents: Incidents = field(default_factory=Incidents)
    monitored: bool = True
    days: float = 1.0

    @property
    def state(self) -> str:
        """healthy, failing, auto-disabled, not-running, or unknown (no health data)."""
        if not self.monitored:
            return "unknown"
        if not self.runs:
            return "not-running"
        if self.last_reason == AUTO_DISABLED_REASON:
            return "auto-disabled"
        return "failing" if self.last_status == "Failure" else "healthy"

    @property
    def precision(self) -> float | None:
        """True positives over classified incidents (true, false and benign positives)."""
        classified = self.incidents.classified
        return self.incidents.true_positive / classified if classified else None

    @property
    def alerts_per_day(self) -> float:
        return self.alerts / self.days

    def flags(self, noisy_per_day: float = NOISY_ALERTS_PER_DAY) -> list[str]:
        found = [self.state] if self.state in ("failing", "auto-disabled",
                                                "not-running") else []
        precision = self.precision
        if self.alerts_per_day > noisy_per_day or (
                precision is not None and self.incidents.classified >= MIN_CLASSIFIED
                and precision < LOW_PRECISION):
            found.append("noisy")
        return found

    def to_dict(self, noisy_per_day: float = NOISY_ALERTS_PER_DAY) -> dict[str, Any]:
        precision = self.precision
        return {
            "id": self.id, "name": self.name, "runs": self.runs, "failures": self.failures,
            "last_run": _iso(self.last_run), "last_failure": _iso(self.last_failure),
            "state": self.state,
            "failure_reasons": [{"reason": r, "count": n} for r, n in sorted(
                self.failure_reasons.items(), key=lambda kv: -kv[1])],
            "alerts": self.alerts, "alerts_per_day": round(self.alerts_per_day, 2),
            "incidents": self.incidents.to_dict(),
            "precision": None if precision is None else round(precision, 4),
            "flags": self.flags(noisy_per_day),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso_z(moment).replace(".000000Z", "Z")


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return parse_instant(str(value)) if value else None


@dataclass
class WorkspaceHealth:
    workspace: dict[str, Any]
    rules: list[RuleHealth]
    monitored: bool = True
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self, noisy_per_day: float = NOISY_ALERTS_PER_DAY) -> dict[str, Any]:
        return {"workspace": {**self.workspace, "health_monitoring": self.monitored},
                "error": self.error, "warnings": list(self.warnings),
                "rules": [r.to_dict(noisy_per_day) for r in self.rules]}


@dataclass
class HealthReport:
    window: Window
    workspaces: list[WorkspaceHealth]
    noisy_per_day: float = NOISY_ALERTS_PER_DAY

    @property
    def unhealthy(self) -> bool:
        return any(w.error for w in self.workspaces) or any(
            r.flags(self.noisy_per_day) for w in self.workspaces for r in w.rules)

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.window.to_dict(),
                "workspaces": [w.to_dict(self.noisy_per_day) for w in self.workspaces]}


def workspace_health(workspace_id: str, rules: Sequence[Rule], window: Window,
                     query: TableQuerier, *, describe: dict[str, Any] | None = None
                     ) -> WorkspaceHealth:
    """The health of *rules* in one workspace over *window*."""
    days = max((window.end - window.start) / timedelta(days=1), 1 / 24)
    by_id = {r.id.strip().lower(): RuleHealth(r.id, r.name, days=days) for r in rules}
    result = WorkspaceHealth(describe or {"workspace_id": workspace_id}, list(by_id.values()))
    runs = query(workspace_id, runs_query(rules), window)
    if runs is None:
        result.monitored = False
        result.warnings.append(
            "health monitoring is not enabled in this workspace (no SentinelHealth table): "
            "runs, failures and auto-disable are unknown; turn it on under Microsoft Sentinel "
            "> Settings > Auditing and health monitoring")
        for rule in by_id.values():
            rule.monitored = False
    for row in runs or []:
        ran = by_id.get(str(row.get("RuleId") or ""))
        if ran is None:
            continue
        count, last = int(row.get("Runs") or 0), _instant(row.get("LastRun"))
        status, reason = str(row.get("Status") or ""), str(row.get("Reason") or "")
        ran.runs += count
        if last is not None and (ran.last_run is None or last > ran.last_run):
            ran.last_run, ran.last_status, ran.last_reason = last, status, reason
        if status == "Failure":
            ran.failures += count
            ran.failure_reasons[reason or "(no reason given)"] = (
                ran.failure_reasons.get(reason or "(no reason given)", 0) + count)
            if last is not None and (ran.last_failure is None or last > ran.last_failure):
                ran.last_failure = last
    alerts = query(workspace_id, alerts_query(rules), window)
    if alerts is None:
        result.warnings.append("no SecurityAlert table in this workspace: no alerts yet")
    for row in alerts or []:
        if (alerted := by_id.get(str(row.get("RuleId") or ""))) is not None:
            alerted.alerts += int(row.get("Alerts") or 0)
    incidents = query(workspace_id, incidents_query(rules), window)
    if incidents is None:
        result.warnings.append("no SecurityIncident table in this workspace: no incidents yet")
    for row in incidents or []:
        if (related := by_id.get(str(row.get("RuleId") or ""))) is None:
            continue
        count = int(row.get("Incidents") or 0)
        related.incidents.total += count
        kind = _CLASSIFICATIONS.get(str(row.get("Classification") or "").lower())
        if str(row.get("Status") or "") != "Closed":
            related.incidents.open += count
        elif kind is not None:
            setattr(related.incidents, kind, getattr(related.incidents, kind) + count)
    return result


def logs_querier(client: Any) -> TableQuerier:
    """A :class:`TableQuerier` over :class:`sentinel_t1190.azure.logs.LogsClient`: a 400
    (the workspace cannot resolve the table) is None; other failures raise."""
    from .azure.logs import LogsQueryFailed

    def run(workspace_id: str, query: str, window: Window) -> list[dict[str, Any]] | None:
        columns: list[str] = []
        rows: list[dict[str, Any]] = []

        def on_columns(names: list[str], _types: list[str]) -> None:
            columns[:] = names

        def on_rows(batch: list[list[Any]]) -> None:
            rows.extend(dict(zip(columns, row, strict=True)) for row in batch)

        span = f"{iso_z(window.start)}/{iso_z(window.end)}"
        try:
            result = client.query(workspace_id, query, timespan=span, on_rows=on_rows,
                                  on_columns=on_columns)
        except LogsQueryFailed as exc:
            if exc.status == 400:
                return None
            raise
        if not result.complete:
            from .errors import PartialResultError

            raise PartialResultError(f"workspace {workspace_id}: partial result for a health "
                                     f"query: {result.reason}")
        return rows

    return run


