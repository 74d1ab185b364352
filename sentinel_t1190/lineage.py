"""Which columns of which tables a query reads, and what for (per union branch and table).

A name in a query is a table column only where it resolves to one: ``RemotePort`` projected
by the DeviceNetworkEvents branch of a union is that table's column, and in the
CommonSecurityLog branch, where it is ``int(null)``, it reads nothing. So the query's IR
(duckdb-kql's, the one the engine runs) is walked like the engine runs it, each relation
carrying, per column name, the table columns it comes from.

A column is *needed* when it decides which rows come out (a ``where``, join key, summarize,
``top``...): a file without it cannot be hunted. It is *read* when it only reaches the output
(``project``, ``extend``, ``sort``): a file without it gives nulls there, with a warning.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from .errors import InputError, UnsupportedQueryError
from .schema import known_tables
from .timespan import iso_seconds

Origin = tuple[str, str]  # (table, column)


@dataclass(frozen=True)
class TimeBound:
    """``column > instant`` and the like: one side of a window, ``at`` relative to now."""

    column: str
    op: str  # one of > >= < <=
    since_now: timedelta | None = None  # ago(1h) -> -1h; now() -> 0
    instant: datetime | None = None  # a literal datetime / todatetime('...')

    def at(self, now: datetime) -> datetime:
        if self.instant is not None:
            return self.instant
        assert self.since_now is not None
        return now + self.since_now

    def admits(self, value: datetime, now: datetime) -> bool:
        edge = self.at(now)
        return {">": value > edge, ">=": value >= edge,
                "<": value < edge, "<=": value <= edge}[self.op]

    def describe(self, now: datetime) -> str:
        return f"{self.column} {self.op} {iso_seconds(self.at(now))}"


@dataclass
class TableUse:
    """How a query uses one table: the columns it needs and reads, its time windows.

    *windows* has one entry per place the table is read (a union may read it twice); an
    event is visible when one of them admits it. An entry lists the bounds the query puts on
    the table's own time columns before anything else; bounds it cannot evaluate are left out,
    so a window here is never narrower than the query's.
    """

    table: str
    needed: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)
    windows: list[list[TimeBound]] = field(default_factory=list)


# --- the walk ----------------------------------------------------------------------------------


@dataclass
class _Branch:
    """One input a relation's rows may come from: computed columns and, until a project, the
    table whose other columns are still visible."""

    cols: dict[str, frozenset[Origin]]
    table: str | None = None
    hidden: set[str] = field(default_factory=set)
    window: list[TimeBound] | None = None  # the table's bounds, while only where/extend ran

    def resolve(self, name: str) -> frozenset[Origin]:
        if name in self.hidden:
            return frozenset()
        if name in self.cols:
            return self.cols[name]
        if self.table is not None and _has_column(self.table, name):
            return frozenset({(self.table, name)})
        return frozenset()


def _has_column(table: str, name: str) -> bool:
    schema = known_tables().get(table)
    return schema is None or name in schema.columns


class _Walker:
    def __init__(self) -> None:
        self.uses: dict[str, TableUse] = {}

    def use(self, table: str) -> TableUse:
        return self.uses.setdefault(table, TableUse(table))

    def mark(self, origins: Iterable[Origin], *, needed: bool) -> None:
        for table, column in origins:
            use = self.use(table)
            use.read.add(column)
            if needed:
                use.needed.add(column)

    # Expressions: the table columns an expression reads (and sub-queries it runs).
    def refs(self, node: Any, rel: list[_Branch]) -> frozenset[Origin]:
        from duckdb_kql import ir

        found: set[Origin] = set()
        stack = [node]
        seen: set[int] = set()
        while stack:
            item = stack.pop()
            if id(item) in seen:
                continue
            seen.add(id(item))
            if isinstance(item, ir.ColumnRef):
                found.update(o for b in rel for o in b.resolve(item.name))
            elif isinstance(item, ir.LetRef):
                hits = {o for b in rel for o in b.resolve(item.name)}
                if hits:
                    found.update(hits)
                else:
                    stack.append(item.value)
            elif isinstance(item, ir.Query):
                self.query(item, {}, needed=True)
            elif isinstance(item, list | tuple):
                stack.extend(item)
            elif hasattr(item, "__dataclass_fields__"):
                stack.extend(getattr(item, f) for f in item.__dataclass_fields__)
        return frozenset(found)

    def query(self, query: Any, env: dict[str, list[_Branch]], *, needed: bool = False
              ) -> list[_Branch]:
        from duckdb_kql import ir

        env = dict(env)
        for name, bound in query.lets:
            if isinstance(bound, ir.Query):
                env[name] = self.query(bound, env)
        rel = self.source(query.source, env)
        for op in query.operators:
            rel = self.operator(op, rel, env)
        if needed:  # a sub-query's output decides rows of the query around it
            for branch in rel:
                self.mark((o for deps in branch.cols.values() for o in deps), needed=True)
                if branch.table is not None:
                    self.mark(((branch.table, c) for c in _all_columns(branch.table)),
                              needed=True)
        return rel

    def source(self, source: Any, env: dict[str, list[_Branch]]) -> list[_Branch]:
        from duckdb_kql import ir

        if isinstance(source, ir.TableRef) and source.database is None and source.name in env:
            return [_Branch(dict(b.cols), b.table, set(b.hidden), None) for b in env[source.name]]
        if isinstance(source, ir.TableRef):
            window: list[TimeBound] = []
            self.use(source.name).windows.append(window)
            return [_Branch({}, source.name, set(), window)]
        if isinstance(source, ir.DataTable):
            return [_Branch({name: frozenset() for name, _ in source.columns})]
        if isinstance(source, ir.PrintSource):
            return [_Branch({_name(e, i): frozenset() for i, e in enumerate(source.expressions)})]
        if isinstance(source, ir.RangeSource):
            return [_Branch({source.name: frozenset()})]
        raise UnsupportedQueryError(f"cannot tell which columns {type(source).__name__} reads")

    def operator(self, op: Any, rel: list[_Branch], env: dict[str, list[_Branch]]
                 ) -> list[_Branch]:
        from duckdb_kql import ir

        if isinstance(op, ir.Where):
            self.mark(self.refs(op.predicate, rel), needed=True)
            for branch in rel:
                if branch.window is not None and branch.table is not None:
                    branch.window.extend(_bounds(op.predicate, branch))
            return rel
        if isinstance(op, ir.Extend):
            for branch in rel:
                for i, named in enumerate(op.expressions):
                    deps = self.refs(named.expr, [branch])
                    self.mark(deps, needed=False)
                    name = _name(named, i)
                    branch.cols[name] = deps
                    branch.hidden.discard(name)
                    if branch.table is not None and _has_column(branch.table, name):
                        branch.window = None  # a time column may have been replaced
            return rel
        if isinstance(op, ir.Project):
            cols: dict[str, frozenset[Origin]] = {}
            for i, named in enumerate(op.expressions):
                deps = self.refs(named.expr, rel)
                self.mark(deps, needed=False)
                cols[_name(named, i)] = deps
            return [_Branch(cols)]
        if isinstance(op, ir.ProjectAway):
            for branch in rel:
                branch.hidden.update(op.columns)
                for column in op.columns:
                    branch.cols.pop(column, None)
            return rel
        if isinstance(op, ir.ProjectRename):
            for branch in rel:
                for new, old in op.renames:
                    branch.cols[new] = branch.resolve(old)
                    branch.hidden.add(old)
                    branch.cols.pop(old, None)
                    branch.window = None
            return rel
        if isinstance(op, ir.Sort):
            self.mark(self.refs(op.keys, rel), needed=False)
            return rel
        if isinstance(op, ir.Take):
            return rel
        if isinstance(op, ir.Union):
            out = list(rel)
            for branch_query in op.branches:
                out.extend(self.query(branch_query, env))
            if op.with_source:
                for branch in out:
                    branch.cols[op.with_source] = frozenset()
            return out
        if isinstance(op, ir.Summarize | ir.Distinct):
            exprs = (*op.aggregates, *op.by) if isinstance(op, ir.Summarize) else op.expressions
            cols = {}
            for i, named in enumerate(exprs):
                deps = self.refs(named.expr, rel)
                self.mark(deps, needed=True)
                cols[_name(named, i)] = deps
            return [_Branch(cols)]
        if isinstance(op, ir.Count):
            return [_Branch({op.name: frozenset()})]
        if isinstance(op, ir.Top):
            self.mark(self.refs(op.keys, rel), needed=True)
            return rel
        if isinstance(op, ir.Join | ir.Lookup):
            right = self.query(op.right, env)
            for key in op.keys:
                self.mark(frozenset(o for b in rel for o in b.resolve(key.left)), needed=True)
                self.mark(frozenset(o for b in right for o in b.resolve(key.right)),
                          needed=True)
            for branch in [*rel, *right]:
                branch.window = None
            return [*rel, *right]
        # Anything else (mv-expand, parse, ...): every name it mentions decides rows.
        self.mark(self.refs(op, rel), needed=True)
        for branch in rel:
            branch.window = None
        return rel


def _name(named: Any, index: int) -> str:
    from duckdb_kql import ir

    if named.name:
        return str(named.name)
    if isinstance(named.expr, ir.ColumnRef):
        return str(named.expr.name)
    return f"Column{index + 1}"


def _all_columns(table: str) -> Iterator[str]:
    schema = known_tables().get(table)
    return iter(schema.columns) if schema else iter(())


# --- time bounds -------------------------------------------------------------------------------

_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


def _bounds(predicate: Any, branch: _Branch) -> Iterator[TimeBound]:
    """The time bounds among *predicate*'s ``and``-ed parts that name a table time column."""
    from duckdb_kql import ir

    if isinstance(predicate, ir.BinaryOp) and predicate.op == "and":
        yield from _bounds(predicate.left, branch)
        yield from _bounds(predicate.right, branch)
        return
    if isinstance(predicate, ir.Between) and not predicate.negated:
        column = _time_column(predicate.value, branch)
        low, high = _instant(predicate.low), _instant(predicate.high)
        if column and low and high:
            yield TimeBound(column, ">=", *low)
            yield TimeBound(column, "<=", *high)
        return
    if not isinstance(predicate, ir.BinaryOp) or predicate.op not in _FLIP:
        return
    for side, other, op in ((predicate.left, predicate.right, predicate.op),
                            (predicate.right, predicate.left, _FLIP[predicate.op])):
        column = _time_column(side, branch)
        edge = _instant(other)
        if column and edge:
            yield TimeBound(column, op, *edge)


def _time_column(node: Any, branch: _Branch) -> str | None:
    from duckdb_kql import ir

    if not isinstance(node, ir.ColumnRef) or branch.table is None:
        return None
    schema = known_tables().get(branch.table)
    if schema is None or schema.columns.get(node.name) != "datetime":
        return None
    return str(node.name) if branch.resolve(node.name) == {(branch.table, node.name)} else None


def _instant(node: Any) -> tuple[timedelta | None, datetime | None] | None:
    """(offset from now, None) for ago()/now(), (None, instant) for a literal; else None."""
    from duckdb_kql import ir

    if isinstance(node, ir.LetRef):
        return _instant(node.value)
    if isinstance(node, ir.FunctionCall) and node.name in ("ago", "now"):
        if not node.args:
            return (timedelta(0), None)
        span = _timespan(node.args[0])
        if span is None:
            return None
        return (-span if node.name == "ago" else span, None)
    text = None
    if isinstance(node, ir.Literal) and node.kind == "datetime":
        text = node.value
    elif (isinstance(node, ir.FunctionCall) and node.name in ("todatetime", "datetime")
          and len(node.args) == 1 and isinstance(node.args[0], ir.Literal)):
        text = node.args[0].value
    if isinstance(text, str):
        try:
            moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
        except ValueError:
            return None
        return (None, moment.replace(tzinfo=UTC) if moment.tzinfo is None
                else moment.astimezone(UTC))
    return None


def _timespan(node: Any) -> timedelta | None:
    from duckdb_kql import ir

    if not isinstance(node, ir.Literal) or node.kind != "timespan":
        return None
    from .timespan import parse_duration

    try:
        return parse_duration(str(node.value))
    except InputError:
        return None


# --- entry points ------------------------------------------------------------------------------


def table_uses(kql: str) -> dict[str, TableUse]:
    """Per table the query reads: the columns it needs and reads, and its time windows.

    Cached on the text (parsing costs ~0.3 s; a rollout asks once per workspace); callers
    get their own copies. One parse at a time: a rollout's workers all ask at once, and
    without the lock each would parse the same text (the parser holds the GIL anyway).
    """
    with _PARSING:
        uses = _table_uses(kql)
    return {t: TableUse(u.table, set(u.needed), set(u.read), [list(w) for w in u.windows])
            for t, u in uses.items()}


_PARSING = threading.Lock()


@cache
def _table_uses(kql: str) -> dict[str, TableUse]:
    import duckdb_kql
    from duckdb_kql.lower import lower

    try:
        query = lower(kql)
    except duckdb_kql.KqlUnsupportedError as exc:
        raise UnsupportedQueryError(f"the local engine does not support this KQL: {exc}") from exc
    except duckdb_kql.KqlError as exc:
        raise InputError(f"the KQL does not parse: {exc}") from exc
    walker = _Walker()
    for branch in walker.query(query, {}):
        if branch.table is not None:  # no project at the end: every column is output
            walker.mark(((branch.table, c) for c in _all_columns(branch.table)), needed=False)
    return walker.uses
