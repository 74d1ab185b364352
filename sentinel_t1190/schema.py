"""Bundled table schemas (column name -> KQL type) and the columns a query reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .errors import InputError, UnsupportedQueryError

#: KQL type -> DuckDB type used when loading local files.
DUCKDB_TYPES = {
    "string": "VARCHAR", "long": "BIGINT", "int": "INTEGER", "real": "DOUBLE",
    "bool": "BOOLEAN", "datetime": "TIMESTAMP", "dynamic": "JSON", "guid": "VARCHAR",
    "timespan": "INTERVAL",
}


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: dict[str, str]
    time_column: str | None = None


@cache
def known_tables() -> dict[str, TableSchema]:
    """Every bundled schema, by table name."""
    tables: dict[str, TableSchema] = {}
    for entry in resources.files("sentinel_t1190.schemas").iterdir():
        if entry.name.endswith(".json"):
            doc = json.loads(entry.read_text(encoding="utf-8"))
            tables[doc["table"]] = TableSchema(doc["table"], doc["columns"], doc.get("time_column"))
    return tables


def table_schema(name: str) -> TableSchema:
    try:
        return known_tables()[name]
    except KeyError:
        raise InputError(f"no bundled schema for table {name!r}; known: "
                         + ", ".join(sorted(known_tables()))) from None


def columns_read(kql: str, table: str) -> set[str]:
    """The columns of *table* (per its bundled schema; none if it has none) that *kql* reads."""
    schema = known_tables().get(table)
    return set(referenced_columns(kql) & schema.columns.keys()) if schema else set()


def referenced_columns(kql: str) -> frozenset[str]:
    """Names the query reads as columns (and names it defines; callers intersect with a schema).

    Walks duckdb-kql's typed IR, so it sees exactly what the engine will run. Cached: parsing
    costs ~0.3 s and a rollout asks the same question for every workspace.
    """
    return _referenced_columns(kql)


@cache
def _referenced_columns(kql: str) -> frozenset[str]:
    import duckdb_kql
    from duckdb_kql import ir
    from duckdb_kql.lower import lower

    try:
        query = lower(kql)
    except duckdb_kql.KqlUnsupportedError as exc:
        raise UnsupportedQueryError(f"the local engine does not support this KQL: {exc}") from exc
    except duckdb_kql.KqlError as exc:
        raise InputError(f"the KQL does not parse: {exc}") from exc
    names: set[str] = set()
    seen: set[int] = set()

    def walk(node: Any) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, ir.ColumnRef | ir.LetRef):
            names.add(node.name)
        if isinstance(node, list | tuple):
            for item in node:
                walk(item)
        elif hasattr(node, "__dataclass_fields__"):
            for field_name in node.__dataclass_fields__:
                walk(getattr(node, field_name))

    walk(query)
    return frozenset(names)
