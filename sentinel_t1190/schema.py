"""Bundled table schemas (column name -> KQL type) and the columns a query reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .errors import InputError

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
    """The columns of *table* (per its bundled schema; none if it has none) that *kql* reads.

    Per union branch: a name that is another branch's column, or an output name, is not a
    column of this table (:mod:`lineage`).
    """
    from .lineage import table_uses

    schema = known_tables().get(table)
    use = table_uses(kql).get(table)
    return use.read & schema.columns.keys() if schema and use else set()
