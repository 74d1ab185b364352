"""A local hunt's findings kept in a DuckDB table, counted and written out by DuckDB.

The rows never become Python objects one value at a time: DuckDB renders each row as its
output text (an NDJSON line, a CSV record, an object of the indented JSON document) and
Python joins the texts of a batch. The texts are byte for byte what the Python writers give
(``json.dumps(row, ensure_ascii=False)``, ``json.dump(doc, indent=2)``,
``csv.writer(lineterminator="\\n")`` with formulas neutralised, timestamps as ``iso_z``)
for the types hunts project: text, timestamps, integers, booleans. A result holding another
type (a double, a list) is written by those Python writers instead, a batch at a time.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .safe_text import FORMULA_START, csv_text
from .timespan import iso_z

if TYPE_CHECKING:
    import duckdb

#: Rows fetched from DuckDB at a time.
BATCH = 4096

_INTEGERS = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                       "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"})
_TEXT = frozenset({"VARCHAR", "JSON"})
_TIMESTAMPS = frozenset({"TIMESTAMP", "TIMESTAMP WITH TIME ZONE"})
#: Control characters DuckDB's to_json escapes in upper-case hex (\\u000B), Python in lower.
_UPPER_HEX = "[" + "".join(chr(c) for c in (0x0B, 0x0E, 0x0F, *range(0x1A, 0x20))) + "]"
#: Python's own escapes; every other control character is \\u00xx.
#: What csv_cell puts before a formula.
QUOTE = "'"
_SHORT_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _json_string(text: str) -> str:
    """SQL: the JSON string of the VARCHAR *text* as ``json.dumps(ensure_ascii=False)``."""
    manual = text
    for old, new in (("\\", "\\\\"), ('"', '\\"')):
        manual = f"replace({manual}, {_literal(old)}, {_literal(new)})"
    for code in range(0x20):
        escape = _SHORT_ESCAPES.get(chr(code), f"\\u{code:04x}")
        manual = f"replace({manual}, chr({code}), {_literal(escape)})"
    return (f"CASE WHEN regexp_matches({text}, {_literal(_UPPER_HEX)}) "
            f"THEN '\"' || {manual} || '\"' ELSE CAST(to_json({text}) AS VARCHAR) END")


def _iso_z(column: str, dtype: str) -> str:
    """SQL: the timestamp as ``iso_z`` writes it (UTC, microseconds, Z)."""
    utc = f"timezone('UTC', {column})" if dtype == "TIMESTAMP WITH TIME ZONE" else column
    # Python's %Y does not pad years before 1000
    return (f"CASE WHEN {utc} >= TIMESTAMP '1000-01-01' "
            f"THEN strftime({utc}, '%Y-%m-%dT%H:%M:%S.%fZ') "
            f"ELSE CAST(year({utc}) AS VARCHAR) || strftime({utc}, '-%m-%dT%H:%M:%S.%fZ') END")


def _json_value(name: str, dtype: str) -> str:
    col = _ident(name)
    if dtype in _TEXT:
        text = f"CAST({col} AS VARCHAR)" if dtype == "JSON" else col
        value = _json_string(text)
    elif dtype in _INTEGERS:
        value = f"CAST({col} AS VARCHAR)"
    elif dtype == "BOOLEAN":
        value = f"CASE WHEN {col} THEN 'true' WHEN NOT {col} THEN 'false' END"
    else:
        value = f"'\"' || {_iso_z(col, dtype)} || '\"'"
    return f"coalesce({value}, 'null')"


def _csv_value(name: str, dtype: str, raw: bool) -> str:
    col = _ident(name)
    if dtype in _TEXT:
        text = f"CAST({col} AS VARCHAR)" if dtype == "JSON" else col
        if not raw:  # safe_text.csv_cell: a spreadsheet would run it as a formula
            starts = ", ".join(_literal(c) for c in FORMULA_START)
            text = (f"CASE WHEN left({text}, 1) IN ({starts}) THEN {_literal(QUOTE)} || {text} "
                    f"ELSE {text} END")
        value = (f"CASE WHEN contains({text}, ',') OR contains({text}, '\"') "
                 f"OR contains({text}, chr(10)) OR contains({text}, chr(13)) "
                 f"THEN '\"' || replace({text}, '\"', '\"\"') || '\"' ELSE {text} END")
    elif dtype in _INTEGERS:
        value = f"CAST({col} AS VARCHAR)"
    elif dtype == "BOOLEAN":
        value = f"CASE WHEN {col} THEN 'True' WHEN NOT {col} THEN 'False' END"
    else:
        value = _iso_z(col, dtype)
    return f"coalesce({value}, '')"


def _concat(parts: Sequence[str]) -> str:
    return "concat(" + ", ".join(parts) + ")" if parts else "''"


class StoredFindings:
    """The rows of one query, in the table *table* of *con* (alive as long as *con*)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str],
                 types: Sequence[str]) -> None:
        self.con = con
        self.table = table
        self.columns = list(columns)
        self.types = list(types)
        self.total = int(self._one(f"SELECT count(*) FROM {_ident(table)}"))
        #: Whether DuckDB can write every column as text (else Python does).
        self.in_sql = all(t in _TEXT | _INTEGERS | _TIMESTAMPS | {"BOOLEAN"} for t in types)

    def _one(self, sql: str) -> Any:
        row = self.con.execute(sql).fetchone()
        assert row is not None
        return row[0]

    def counts(self, columns: Sequence[str]) -> Counter[tuple[Any, ...]]:
        """Rows per distinct value of *columns* (a column the result lacks counts as null)."""
        exprs = [_ident(c) if c in self.columns else "NULL" for c in columns]
        keys = ", ".join(exprs)
        rows = self.con.execute(f"SELECT {keys}, count(*) FROM {_ident(self.table)} "
                                f"GROUP BY ALL").fetchall()
        return Counter({tuple(r[:-1]): int(r[-1]) for r in rows})

    def _batches(self, sql: str) -> Iterator[list[tuple[Any, ...]]]:
        cursor = self.con.execute(sql)
        while rows := cursor.fetchmany(BATCH):
            yield rows

    def dicts(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """The rows as dicts, in order (timestamps as ``iso_z`` text)."""
        cols = self.columns
        sql = f"SELECT * FROM {_ident(self.table)}" + (f" LIMIT {limit}" if limit else "")
        for rows in self._batches(sql):
            for row in rows:
                yield {c: iso_z(v) if isinstance(v, datetime) else v
                       for c, v in zip(cols, row, strict=True)}

    def _dict_batches(self) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        for row in self.dicts():
            batch.append(row)
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def ndjson(self) -> Iterator[str]:
        """NDJSON text, a batch of lines at a time."""
        if not self.in_sql:
            for batch in self._dict_batches():
                yield "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n"
                              for row in batch)
            return
        parts: list[str] = []
        for i, (name, dtype) in enumerate(zip(self.columns, self.types, strict=True)):
            key = json.dumps(name, ensure_ascii=False) + ": "
            parts += [_literal(("{" if i == 0 else ", ") + key), _json_value(name, dtype)]
        line = _concat([*parts, _literal("}" if parts else "{}")])
        for rows in self._batches(f"SELECT {line} FROM {_ident(self.table)}"):
            yield "\n".join([r[0] for r in rows]) + "\n"

    def csv(self, header: Sequence[str], *, raw: bool = False) -> Iterator[str]:
        """CSV records (no header) in the columns *header* (those the result lacks: empty);
        cells a spreadsheet would run as formulas neutralised unless *raw*."""
        if not self.in_sql:
            for batch in self._dict_batches():
                yield csv_text(([row.get(c) for c in header] for row in batch), raw=raw)
            return
        types = dict(zip(self.columns, self.types, strict=True))
        fields = [_csv_value(c, types[c], raw) if c in types else "''" for c in header]
        parts = [p for i, f in enumerate(fields) for p in ((f,) if i == 0 else ("','", f))]
        record = _concat(parts)
        if len(fields) == 1:  # the csv module quotes a record that is one empty field
            record = f"CASE WHEN {record} = '' THEN '\"\"' ELSE {record} END"
        for rows in self._batches(f"SELECT {record} FROM {_ident(self.table)}"):
            yield "\n".join([r[0] for r in rows]) + "\n"

    def json_items(self, pad: str) -> Iterator[list[str]]:
        """Each row as an object of an ``indent=2`` JSON document, its ``{`` after *pad*."""
        inner = pad + "  "
        if not self.in_sql:
            for batch in self._dict_batches():
                yield [json.dumps(row, indent=2, ensure_ascii=False, default=str)
                       .replace("\n", "\n" + pad) for row in batch]
            return
        if not self.columns:
            obj = "'{}'"
        else:
            parts: list[str] = []
            for i, (name, dtype) in enumerate(zip(self.columns, self.types, strict=True)):
                key = json.dumps(name, ensure_ascii=False) + ": "
                parts += [_literal(("{\n" if i == 0 else ",\n") + inner + key),
                          _json_value(name, dtype)]
            obj = _concat([*parts, _literal("\n" + pad + "}")])
        for rows in self._batches(f"SELECT {obj} FROM {_ident(self.table)}"):
            yield [r[0] for r in rows]
