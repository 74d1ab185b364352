"""Backtest: what a change to the pack does to the findings, before it ships.

The current pack and a baseline (another pack folder, the pack at a git revision, or the
rules as deployed in a workspace) run their queries, exclusions compiled in, over the same
data and window (against deployed rules both sides run their scheduled query, windowed).
Per rule the findings are compared as multisets of rows over the columns both versions
output: ``added`` (only the current pack finds them), ``removed`` (only the baseline does),
``unchanged``. A rule whose compiled query text is the same on both sides is run once.

Per exclusion of the current pack: ``suppressed`` is how many of the rule's findings the
entry alone removes (the rule without exclusions, minus the rule with only that entry).
One that suppresses nothing is ``dead-weight``; one that removes at least
:data:`BLIND_SPOT_SHARE` of the rule's findings is a possible ``blind-spot``.

The data is reached through a :data:`Runner` — local files (:func:`local_runner`) or a live
workspace through the hunt machinery — so the comparison itself is one code path.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AuthError, InputError
from .hunt import Window
from .rules import Pack, Rule, load_pack

if TYPE_CHECKING:
    from .livehunt import LiveOptions, LogsQuerier

#: The window when neither --timespan nor --start is given.
DEFAULT_TIMESPAN = "7d"
#: An exclusion that removes at least this share of its rule's findings is flagged.
BLIND_SPOT_SHARE = 0.5


@dataclass
class RunOutput:
    """One rule variant's findings over the backtest's data."""

    columns: list[str]
    rows: list[dict[str, Any]]
    complete: bool = True
    warnings: list[str] = field(default_factory=list)
    #: Why the rule could not run over this data (no file holds its tables, no workspace
    #: has them): it is reported as skipped, never as unchanged.
    skipped: str | None = None


#: Runs one rule (variant) over the backtest's data.
Runner = Callable[[Rule], RunOutput]


@dataclass(frozen=True)
class ExclusionEffect:
    name: str
    suppressed: int
    share: float

    @property
    def flag(self) -> str | None:
        if self.suppressed == 0:
            return "dead-weight"
        return "blind-spot" if self.share >= BLIND_SPOT_SHARE else None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "suppressed": self.suppressed,
                "share": round(self.share, 4), "flag": self.flag}


@dataclass
class RuleDiff:
    """One rule's change: ``status`` is changed, unchanged, new, deleted or skipped."""

    id: str
    name: str
    status: str
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    exclusions: list[ExclusionEffect] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "status": self.status,
                "added": self.added, "removed": self.removed, "unchanged": self.unchanged,
                "exclusions": [e.to_dict() for e in self.exclusions]}


@dataclass
class BacktestResult:
    """The ``backtest`` JSON shape (docs/json-output.md), plus source, warnings, summary."""

    baseline: dict[str, Any]
    source: dict[str, Any]
    window: Window
    rules: list[RuleDiff]
    complete: bool = True
    warnings: list[str] = field(default_factory=list)

    @property
    def added(self) -> int:
        return sum(len(r.added) for r in self.rules)

    @property
    def removed(self) -> int:
        return sum(len(r.removed) for r in self.rules)

    def summary(self) -> dict[str, int]:
        return {"added": self.added, "removed": self.removed,
                "unchanged": sum(r.unchanged for r in self.rules)}

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "source": self.source,
                "window": self.window.to_dict(), "complete": self.complete,
                "warnings": list(self.warnings), "summary": self.summary(),
                "rules": [r.to_dict() for r in self.rules]}


# --- the baseline --------------------------------------------------------------------------


def _git(folder: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              text=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"cannot run git: {exc}") from exc
    if done.returncode != 0:
        raise InputError(f"git {' '.join(args[:2])}: {done.stderr.strip() or 'failed'}")
    return done.stdout


@contextmanager
def git_pack(root: Path, revision: str) -> Iterator[tuple[Pack, dict[str, Any]]]:
    """The pack at *root* as it was at git *revision* (checked out into a temporary folder)."""
    if revision.startswith("-"):
        raise InputError(f"--baseline {revision!r} is not a folder or a git revision")
    if not (root / ".git").exists() and _git(root, "rev-parse", "--is-inside-work-tree"
                                             ).strip() != "true":
        raise InputError(f"{root} is not in a git repository")
    commit = _git(root, "rev-parse", "--verify", "--end-of-options",
                  f"{revision}^{{commit}}").strip()
    prefix = _git(root, "rev-parse", "--show-prefix").strip()
    with tempfile.TemporaryDirectory(prefix="sentinel-t1190-baseline-") as tmp:
        archive = Path(tmp) / "pack.tar"
        _git(root, "archive", "--format=tar", "-o", str(archive), f"{commit}:{prefix}"
             if prefix else commit)
        folder = Path(tmp) / "pack"
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
        if not (folder / "analytics").is_dir():
            raise InputError(f"{revision} ({commit[:12]}) has no analytics/ folder in "
                             f"{prefix or 'the repository root'}")
        yield load_pack(folder), {"kind": "git", "revision": revision, "commit": commit}


@contextmanager
def baseline_pack(spec: str, root: Path) -> Iterator[tuple[Pack, dict[str, Any]]]:
    """``--baseline``: a pack folder, or a git revision of the repository holding *root*."""
    folder = Path(spec)
    if folder.is_dir():
        yield load_pack(folder), {"kind": "folder", "path": str(folder)}
        return
    with git_pack(root, spec) as found:
        yield found


# --- the comparison ------------------------------------------------------------------------


def _key(row: dict[str, Any], columns: Sequence[str]) -> str:
    return json.dumps([row.get(c) for c in columns], default=str)


def diff_rows(current: RunOutput, baseline: RunOutput
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(added, removed, unchanged): rows compared over the columns both versions output."""
    shared = [c for c in current.columns if c in baseline.columns]
    wanted = Counter(_key(r, shared) for r in baseline.rows)
    added: list[dict[str, Any]] = []
    unchanged = 0
    for row in current.rows:
        key = _key(row, shared)
        if wanted[key] > 0:
            wanted[key] -= 1
            unchanged += 1
        else:
            added.append(row)
    removed: list[dict[str, Any]] = []
    for row in baseline.rows:
        key = _key(row, shared)
        if wanted[key] > 0:
            wanted[key] -= 1
            removed.append(row)
    return added, removed, unchanged


def _compiled(rule: Rule) -> str | None:
    from .compile import hunting_query

    return hunting_query(rule)


def exclusion_effects(rule: Rule, run: Runner) -> list[ExclusionEffect]:
    """How many findings each active exclusion of *rule* suppresses on its own."""
    from datetime import UTC, datetime

    from .exclusions import active, load_exclusions

    entries = active(load_exclusions(rule)[0], datetime.now(UTC).date())
    if not entries:
        return []
    raw = run(replace(rule, exclusion_subset=frozenset()))
    if raw.skipped:
        return []
    effects = []
    for entry in entries:
        alone = run(replace(rule, exclusion_subset=frozenset({entry.name})))
        suppressed = len(raw.rows) - len(alone.rows)
        effects.append(ExclusionEffect(entry.name, suppressed,
                                       suppressed / len(raw.rows) if raw.rows else 0.0))
    return effects


def backtest(rules: Sequence[Rule], baseline: Pack, run: Runner, *,
             baseline_info: dict[str, Any], source: dict[str, Any], window: Window,
             include_deleted: bool = True) -> BacktestResult:
    """Compare *rules* (the current pack's, or a selection) with *baseline* over *run*."""
    result = BacktestResult(baseline_info, source, window, [])
    seen: set[str] = set()
    outputs: list[RunOutput] = []

    def runs(rule: Rule) -> RunOutput:
        output = run(rule)
        if not output.skipped:
            outputs.append(output)
        return output

    before = {r.id.lower(): r for r in baseline.rules}
    for rule in rules:
        seen.add(rule.id.lower())
        old = before.get(rule.id.lower())
        if rule.hunting is None:
            result.warnings.append(f"rule {rule.id} ({rule.name}) has no hunting query: "
                                   "not backtested")
            result.rules.append(RuleDiff(rule.id, rule.name, "skipped"))
            continue
        now = runs(rule)
        if now.skipped:
            result.warnings.append(f"rule {rule.name!r} not backtested: {now.skipped}")
            result.rules.append(RuleDiff(rule.id, rule.name, "skipped"))
            continue
        diff = RuleDiff(rule.id, rule.name, "unchanged")
        if old is None or old.hunting is None:
            diff.status, diff.added = "new", list(now.rows)
        elif _compiled(old) == _compiled(rule):
            diff.unchanged = len(now.rows)
        else:
            then = runs(old)
            if then.skipped:
                diff.status, diff.added = "new", list(now.rows)
            else:
                diff.added, diff.removed, diff.unchanged = diff_rows(now, then)
                diff.status = "changed" if diff.added or diff.removed else "unchanged"
        diff.exclusions = exclusion_effects(rule, runs)
        result.rules.append(diff)
    if include_deleted:
        for old in baseline.rules:
            if old.id.lower() in seen or old.hunting is None:
                continue
            then = runs(old)
            if not then.skipped:
                result.rules.append(RuleDiff(old.id, old.name, "deleted",
                                             removed=list(then.rows)))
    result.complete = all(o.complete for o in outputs)
    for output in outputs:
        result.warnings.extend(w for w in output.warnings if w not in result.warnings)
    return result


def local_runner(files: Sequence[str], window: Window) -> Runner:
    """Run rules over local telemetry files with the local engine (as ``hunt --local``)."""
    from .engine import resolve_files
    from .hunt import hunt_local

    def run(rule: Rule) -> RunOutput:
        held = {f.table for f in resolve_files(files, rule.tables[0])} if rule.tables else set()
        if not held & set(rule.tables):
            return RunOutput([], [], skipped=f"no file holds its tables ("
                             f"{', '.join(rule.tables) or 'none named'})")
        found = hunt_local(rule, files, window)
        return RunOutput(found.columns, found.findings, found.complete, found.warnings)

    return run


def live_runner(workspaces: Sequence[str], window: Window, client: LogsQuerier, *,
                options: LiveOptions | None = None,
                timespan: Callable[[Window], str | None] | None = None) -> Runner:
    """Run rules in live workspaces through the hunt machinery (slicing, splitting of
    too-large slices, completeness), as ``hunt --workspace-id`` does. A rule that no
    workspace can run (its table is missing everywhere) is skipped with the reason; an
    authentication failure everywhere raises."""
    import io

    from .livehunt import hunt_workspaces
    from .render import OutputFormat

    def run(rule: Rule) -> RunOutput:
        sink = io.StringIO()
        found = hunt_workspaces(rule, workspaces, window, client, sink, OutputFormat.ndjson,
                                options=options, timespan=timespan)
        if found.workspaces and all(ws.status == "failed" for ws in found.workspaces):
            if any(issubclass(t, AuthError) for ws in found.workspaces
                   for t in ws.error_types):
                found.raise_if_all_failed()
            errors = [e for ws in found.workspaces for e in ws.errors]
            return RunOutput([], [], skipped="; ".join(dict.fromkeys(errors))
                             or "every workspace failed")
        rows = [json.loads(line) for line in sink.getvalue().splitlines() if line]
        warnings = list(found.warnings)
        warnings += [f"workspace {ws.id}: {ws.status} ({'; '.join(ws.errors)})"
                     for ws in found.workspaces if ws.status != "complete"]
        return RunOutput(found.columns, rows, found.complete, warnings)

    return run


# --- the deployed versions as the baseline -----------------------------------------------------

#: A time filter as deployed rules have it: ``| where Timestamp > ago(1h)`` under the table.
_AGO_FILTER = re.compile(r"^(\s*)\|\s*where\s+([A-Za-z_]\w*)\s*>\s*ago\(\s*[^()]*\)\s*$")
_WINDOW_LETS = ("let starttime = todatetime('{{StartTimeISO}}');\n"
                "let endtime = todatetime('{{EndTimeISO}}');\n")


def windowed(query: str, tables: Sequence[str]) -> str | None:
    """A scheduled rule's query with each table's ``ago()`` time filter (the line under the
    line naming the table) turned into the hunting window, as the pack's hunting queries
    write it; None when the query has no such filter (edited outside the pack's layout)."""
    lines = query.splitlines()
    changed = False
    for i, line in enumerate(lines[:-1]):
        found = _AGO_FILTER.match(lines[i + 1]) if line.strip() in tables else None
        if found:
            lines[i + 1] = (f"{found[1]}| where {found[2]} > starttime and "
                            f"{found[2]} <= endtime")
            changed = True
    return _WINDOW_LETS + "\n".join(lines) + "\n" if changed else None


def _with_query(rule: Rule, query: str, **changes: Any) -> Rule:
    from .rules import HuntingQuery

    hunting = HuntingQuery(rule.hunting.id if rule.hunting else rule.id, rule.name, query,
                           rule.id, rule.path, {})
    return replace(rule, hunting=hunting, **changes)


def as_scheduled(rules: Sequence[Rule]) -> tuple[list[Rule], list[str]]:
    """*rules* running their scheduled query over the window (their exclusions compiled in
    as deploy does), to compare like with like against deployed rules."""
    out, warnings = [], []
    for rule in rules:
        query = windowed(rule.query, rule.tables)
        if query is None:
            warnings.append(f"rule {rule.name!r}: its query has no `| where Col > ago(...)` "
                            "under its table; its hunting query stands in for it")
            out.append(rule)
        else:
            out.append(_with_query(rule, query))
    return out, warnings


def deployed_pack(rules: Sequence[Rule], fetch: Callable[[str], dict[str, Any] | None],
                  where: dict[str, Any]) -> tuple[Pack, dict[str, Any], list[str]]:
    """The baseline of ``--baseline deployed``: each rule as deployed (``fetch(name)`` reads
    the alert rule through ARM), its query windowed; exclusions are in the deployed text."""
    from .alert_rule import resource_name

    found: list[Rule] = []
    warnings: list[str] = []
    missing: list[str] = []
    for rule in rules:
        resource = fetch(resource_name(rule))
        query = ((resource or {}).get("properties") or {}).get("query")
        if not isinstance(query, str):
            missing.append(rule.id)
            continue
        windowed_query = windowed(query, rule.tables)
        if windowed_query is None:
            warnings.append(f"rule {rule.name!r}: the deployed query has no `| where Col > "
                            "ago(...)` under its table; compared as not deployed")
            missing.append(rule.id)
            continue
        found.append(_with_query(rule, windowed_query, exclusion_subset=frozenset()))
    info = {"kind": "deployed", **where, "rules": len(found), "not_deployed": missing}
    return Pack(tuple(found)), info, warnings
