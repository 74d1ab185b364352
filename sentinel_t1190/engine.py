"""The local engine: telemetry files as DuckDB views, KQL run on them by duckdb-kql.

Files are never copied into tables: each table is a view over its files with the bundled
schema's types, so DuckDB streams Parquet and CSV and memory stays flat as files grow.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, UnsupportedQueryError, first_line
from .readers import WEB_LOG_SUFFIXES, WEB_LOG_TABLE, is_web_log
from .readers import file_suffix as _suffix
from .schema import DUCKDB_TYPES, TableSchema, known_tables, table_schema

if TYPE_CHECKING:
    import duckdb

    from .stored import StoredFindings

#: Suffix (after stripping .gz) -> DuckDB reader call; {p} is the quoted path. CSV is read
#: as RFC 4180 (the dialect Defender and Log Analytics export), every value as text: the
#: schema decides the types, so a column DuckDB would guess wrongly cannot fail the read.
_READERS = {
    ".csv": "read_csv({p}, header = true, all_varchar = true, delim = ',', quote = '\"', "
            "escape = '\"', skip = 0)",
    ".tsv": "read_csv({p}, header = true, all_varchar = true, delim = '\t', skip = 0)",
    ".json": "read_json({p}, format = 'auto', maximum_object_size = 268435456{c})",
    ".jsonl": "read_json({p}, format = 'newline_delimited', maximum_object_size = 268435456{c})",
    ".ndjson": "read_json({p}, format = 'newline_delimited', maximum_object_size = 268435456{c})",
    ".parquet": "read_parquet({p})",
}
#: JSON is read twice: once to learn its keys, then with every key as text (DuckDB's type
#: guess from the first records would otherwise fail on a later record of another type).
_JSON = (".json", ".jsonl", ".ndjson")
#: Log Analytics' "Export to CSV" writes headers like "TimeGenerated [UTC]", or
#: "TimeGenerated [Local Time]" (no offset given: such columns are not used).
_UTC_SUFFIX, _LOCAL_SUFFIX = " [UTC]", " [Local Time]"
#: Log Analytics' CSV export writes "11/27/2026, 10:00:00.123 AM".
_PORTAL_FORMATS = ("%m/%d/%Y, %I:%M:%S.%g %p", "%m/%d/%Y, %I:%M:%S %p")
#: A date that starts day or month first (03/04/2026, 3.4.26, 03-04-2026).
_SHORT_DATE = r"^\s*\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}([^0-9]|$)"
#: DuckDB's memory budget for a hunt over Parquet and CSV. With DuckDB's default (80% of RAM)
#: the Parquet reader holds about 1 GiB on a 5-million-row file; under this budget it holds
#: less at the same speed (benchmarks/README.md). 512 MB was too little to sort 83,000
#: findings with long command lines (5% matches): the query failed and ran again unbudgeted,
#: twice the time. A query that cannot run within it (say, over Parquet row groups of a
#: million rows with long command lines) runs again without it.
DEFAULT_MEMORY_LIMIT = "800MB"
#: DuckDB's JSON reader takes buffers of twice maximum_object_size per thread up front, more
#: than the budget: hunts that read JSON run under DuckDB's default limit.
_UNBUDGETED = (".json", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class LocalFile:
    """A telemetry file and the table it holds."""

    table: str
    path: Path


def resolve_files(specs: Iterable[str], main_table: str) -> list[LocalFile]:
    """``TABLE=PATH`` or a path named after its table (any case); else the rule's main table."""
    by_lower = {name.lower(): name for name in known_tables()}
    files: list[LocalFile] = []
    for spec in specs:
        table, sep, rest = spec.partition("=")
        if sep and table and not Path(spec).exists():
            if table.lower() not in by_lower:
                raise InputError(f"{spec}: unknown table {table!r}; known: "
                                 + ", ".join(sorted(known_tables())))
            if not rest:
                raise InputError(f"{spec}: give a file after {table}=")
            path, name = Path(rest), by_lower[table.lower()]
        else:
            path = Path(spec)
            name = by_lower.get(path.name.split(".")[0].lower(), main_table)
            if is_web_log(path):
                name = WEB_LOG_TABLE
        if is_web_log(path) and name != WEB_LOG_TABLE:
            raise InputError(f"{spec}: web-server logs are read as {WEB_LOG_TABLE}, not {name}")
        _check_file(path)
        if any(f.path.resolve() == path.resolve() for f in files):
            raise InputError(f"{path}: given twice (its rows would be counted twice)")
        files.append(LocalFile(name, path))
    return files


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the files in it")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = _suffix(path)
    if suffix not in _READERS and suffix not in WEB_LOG_SUFFIXES:
        raise InputError(f"{path}: unsupported file type; use "
                         + ", ".join(sorted([*_READERS, *WEB_LOG_SUFFIXES]))
                         + " (.gz compressed too, except Parquet)")
    if suffix == ".parquet" and path.suffix.lower() == ".gz":
        raise InputError(f"{path}: gzip-compressed Parquet cannot be read in place; Parquet "
                         "compresses internally, so gunzip it")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    if size == 0:
        raise InputError(f"{path}: the file is empty")


def _csv_header(path: Path, suffix: str, utf16: bool) -> list[str]:
    """The header record of a CSV/TSV file ([] when it cannot be read here: DuckDB says why)."""
    import csv
    import gzip

    encoding = "utf-16" if utf16 else "utf-8-sig"
    try:
        with (gzip.open(path, "rt", encoding=encoding, errors="replace", newline="")
              if path.suffix.lower() == ".gz"
              else path.open(encoding=encoding, errors="replace", newline="")) as handle:
            return next(csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ","), [])
    except (OSError, EOFError, csv.Error):
        return []


def _refuse_repeated_columns(path: Path, names: Sequence[str]) -> None:
    """An InputError naming the columns a header gives more than once (in any case, with or
    without the portal's `` [UTC]`` suffix): which one the rule would read is a guess."""
    seen: dict[str, list[str]] = {}
    for name in names:
        seen.setdefault(name.strip().removesuffix(_UTC_SUFFIX).lower(), []).append(name)
    repeated = [spellings for spellings in seen.values() if len(spellings) > 1]
    if repeated:
        raise InputError(f"{path}: the header names a column more than once: " + "; ".join(
            ", ".join(repr(n) for n in spellings) for spellings in repeated))


def _utf16(path: Path) -> bool:
    """Whether the text starts with a UTF-16 byte-order mark (Excel's "Unicode text")."""
    import gzip

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(2)
    except (OSError, EOFError):
        return False  # DuckDB reports the unreadable file with its own words
    return head in (b"\xff\xfe", b"\xfe\xff")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_expr(source: str, source_type: str, kql_type: str, where: str) -> str:
    """SQL reading *source* as the schema's type; bad values fail loudly, naming the place."""
    target = DUCKDB_TYPES.get(kql_type, "VARCHAR")
    col = _ident(source)
    if source_type == target:
        return col
    if target == "TIMESTAMP":
        if source_type.startswith("TIMESTAMP"):
            return f"CAST({col} AS TIMESTAMP)"
        text = f"CAST({col} AS VARCHAR)"
        tries = ", ".join(f"try_strptime({text}, {_literal(f)})" for f in _PORTAL_FORMATS)
        message = _literal(f"{where}: unparseable timestamp ")
        ambiguous = _literal(f"{where}: ambiguous date ")
        fix = _literal(" (day/month or month/day?); write times as ISO 8601, e.g. "
                       "2026-04-03T10:00:00Z")
        # DuckDB would read 04/03/26 as the year 4: a date that starts with two short numbers
        # is only taken in the Log Analytics portal's own month-first form.
        return (
            f"CASE WHEN {col} IS NULL OR trim({text}) = '' THEN NULL "
            f"WHEN regexp_matches({text}, {_literal(_SHORT_DATE)}) THEN coalesce({tries}, "
            f"error({ambiguous} || {_shown(text)} || {fix})) ELSE coalesce("
            f"CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP), {tries}, "
            f"error({message} || {_shown(text)})) END"
        )
    if target == "JSON":
        text = f"CAST({col} AS VARCHAR)"
        return f"CASE WHEN json_valid({text}) THEN CAST({text} AS JSON) ELSE to_json({text}) END"
    if target == "VARCHAR":
        return f"CAST({col} AS VARCHAR)"
    text = f"NULLIF(trim(CAST({col} AS VARCHAR)), '')"
    message = _literal(f"{where}: not a {kql_type} value: ")
    return (f"CASE WHEN {text} IS NULL THEN NULL ELSE coalesce(TRY_CAST({text} AS {target}), "
            f"error({message} || {_shown(text)})) END")


def _shown(text: str) -> str:
    """SQL quoting a bad value for an error message: one line, at most 60 characters."""
    return f"'''' || left(regexp_replace({text}, '\\s+', ' ', 'g'), 60) || ''''"


def register_functions() -> None:
    """KQL functions the pack uses that duckdb-kql 1.1 has no mapping for (idempotent).

    ``url_decode``: DuckDB's own, wrapped in TRY so an invalid escape gives null instead of
    failing the whole query (the companion rules match the raw text as well as the decoded
    one, so a null here never hides a match the raw text shows).
    """
    from duckdb_kql.translate import functions

    functions.SCALAR_FUNCTIONS.setdefault("url_decode", functions.FunctionSpec(
        "url_decode", "template", "TRY(url_decode({0}))", (1,),
        note="sentinel-t1190: null on invalid escapes"))


class LocalEngine:
    """An in-process DuckDB with one view per table, queried in KQL."""

    def __init__(self, *, memory_limit: str | None = DEFAULT_MEMORY_LIMIT) -> None:
        """*memory_limit*: DuckDB's budget (None: DuckDB's default, 80% of RAM)."""
        import duckdb_kql

        register_functions()
        self.con: duckdb.DuckDBPyConnection = duckdb_kql.connect()
        # The library never prints: no progress bar on long scans.
        self.con.execute("SET enable_progress_bar = false")
        # Spill under the system temp folder, not ".tmp" in the caller's working directory;
        # DuckDB creates the folder only when it spills and removes it on close.
        spill = Path(tempfile.gettempdir()) / f"sentinel-t1190-{os.getpid()}-{id(self):x}"
        self.con.execute(f"SET temp_directory = {_literal(str(spill))}")
        #: Whether DuckDB runs under the budget (False once a JSON file or a retry lifted it).
        self.limited = memory_limit is not None
        #: What reading the files noticed (records of other tables skipped, bad log lines).
        self.warnings: list[str] = []
        self._converted: tempfile.TemporaryDirectory[str] | None = None
        if memory_limit is not None:
            self.con.execute(f"SET memory_limit = {_literal(memory_limit)}")

    def _lift_budget(self) -> None:
        self.con.execute("RESET memory_limit")
        self.limited = False

    def close(self) -> None:
        self.con.close()
        if self._converted is not None:
            self._converted.cleanup()

    def _readable(self, path: Path, table: str) -> tuple[Path | str, list[str] | None] | None:
        """What DuckDB reads for *path*: the file itself, its rows converted to JSON lines
        (with their keys) or a relation over it (:mod:`readers`); None when the conversion
        found no rows."""
        from .readers import convert

        if self._converted is None:
            self._converted = tempfile.TemporaryDirectory(prefix="sentinel-t1190-rows-")
        converted = convert(path, table, Path(self._converted.name))
        if converted is None:
            return path, None
        self.warnings.extend(converted.warnings)
        if converted.sql is not None:
            return converted.sql, None
        if converted.path is None or not converted.rows:
            return None
        return converted.path, converted.columns

    def time_range(self, table: str, column: str, start: datetime, end: datetime
                   ) -> tuple[int, int, datetime | None, datetime | None]:
        """Rows in *table*'s view, those with *column* in (start, end], its first and last."""
        import duckdb

        col = _ident(column)
        try:
            row = self.con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE {col} > ? AND {col} <= ?), "
                f"min({col}), max({col}) FROM {_ident(table)}",
                [start.replace(tzinfo=None), end.replace(tzinfo=None)]).fetchone()
        except duckdb.Error as exc:  # a value the file's rows cannot be read as
            raise InputError(_clean(exc)) from exc
        assert row is not None
        return int(row[0]), int(row[1]), row[2], row[3]

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, files: Sequence[LocalFile], required: Mapping[str, set[str]],
             confirm: Callable[[str, Path, set[str]], set[str]] | None = None) -> None:
        """Create a view per table over its files; *required* names columns a query needs.

        *required* may be a cheap superset: *confirm(table, path, missing)*, when given,
        narrows the columns a file lacks to those the query really needs before that is an
        error (the others are read as null).
        """
        if self.limited and any(_suffix(f.path) in (*_UNBUDGETED, *WEB_LOG_SUFFIXES)
                                for f in files):
            self._lift_budget()
        by_table: dict[str, list[Path]] = {}
        for f in files:
            by_table.setdefault(f.table, []).append(f.path)
        for table, paths in by_table.items():
            schema = table_schema(table)
            parts = [self._select(schema, p, required.get(table, set()), confirm)
                     for p in paths]
            self.con.execute(f"CREATE OR REPLACE VIEW {_ident(table)} AS "
                             + " UNION ALL ".join(parts))

    def load_empty(self, table: str) -> None:
        """An empty view with *table*'s schema (for tables a query reads but no file holds)."""
        self.con.execute(f"CREATE OR REPLACE VIEW {_ident(table)} AS "
                         + _empty_select(table_schema(table)))

    def _select(self, schema: TableSchema, path: Path, required: set[str],
                confirm: Callable[[str, Path, set[str]], set[str]] | None = None) -> str:
        opened = self._readable(path, schema.name)
        if opened is None:
            return _empty_select(schema)
        readable, keys = opened
        if isinstance(readable, str):
            suffix, reader = "", f"({readable})"
        else:
            suffix = _suffix(readable)
            reader = _READERS[suffix].format(p=_literal(str(readable)), c="")
        text_table = readable if isinstance(readable, Path) and suffix in (".csv", ".tsv") \
            else None
        utf16 = text_table is not None and _utf16(text_table)
        if utf16:
            reader = reader.removesuffix(")") + ", encoding = 'utf-16')"
        if text_table is not None:
            # DuckDB renames a repeated header (DeviceName, DeviceName_1): refuse it instead.
            _refuse_repeated_columns(path, _csv_header(text_table, suffix, utf16))
        if keys is not None:  # converted JSON lines: every key is known, every value text
            as_text = ", ".join(f"{_literal(name)}: 'VARCHAR'" for name in keys)
            reader = _READERS[suffix].format(p=_literal(str(readable)),
                                             c=f", columns = {{{as_text}}}")
            described = [(name, "VARCHAR") for name in keys]
        else:
            described = self._describe(path, reader)
        if suffix in _JSON and keys is None:
            if not required <= {name for name, _ in described}:
                # DuckDB learns keys from the first records; a key may first appear later.
                described = self._describe(path, _READERS[suffix].format(
                    p=_literal(str(readable)), c=", sample_size = -1"))
            as_text = ", ".join(f"{_literal(name)}: 'VARCHAR'" for name, _ in described)
            reader = _READERS[suffix].format(p=_literal(str(readable)),
                                             c=f", columns = {{{as_text}}}")
            described = [(name, "VARCHAR") for name, _ in described]
        present: dict[str, tuple[str, str]] = {}
        local_time: set[str] = set()
        for name, dtype in described:
            clean = name.removesuffix(_UTC_SUFFIX)
            if clean.endswith(_LOCAL_SUFFIX):
                local_time.add(clean.removesuffix(_LOCAL_SUFFIX))
            else:
                present.setdefault(clean, (name, dtype))
        # Hand-made files may spell a column in another case: accept it when unambiguous.
        folded: dict[str, list[tuple[str, str]]] = {}
        for clean, found in present.items():
            folded.setdefault(clean.lower(), []).append(found)
        for column in schema.columns.keys() - present.keys():
            if len(folded.get(column.lower(), [])) == 1:
                present[column] = folded[column.lower()][0]
        missing = required - present.keys()
        if missing and confirm is not None:
            required = required - (missing - confirm(schema.name, path, missing))
        _check_columns(schema, path, required, present, local_time)
        columns = []
        for column, kql_type in schema.columns.items():
            if column in present:
                source, dtype = present[column]
                expr = _column_expr(source, dtype, kql_type, f"{path}, column {column}")
            else:
                expr = f"CAST(NULL AS {DUCKDB_TYPES.get(kql_type, 'VARCHAR')})"
            columns.append(f"{expr} AS {_ident(column)}")
        return f"SELECT {', '.join(columns)} FROM {reader}"

    def _describe(self, path: Path, reader: str) -> list[tuple[str, str]]:
        """The file's columns and DuckDB types, or an InputError naming the file."""
        import duckdb

        try:
            described = self.con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
        except duckdb.Error as exc:
            raise InputError(f"{path}: cannot read as {_suffix(path)[1:]}: {_summary(exc)}"
                             ) from exc
        return [(str(row[0]), str(row[1])) for row in described]

    def query(
        self, kql: str, now: datetime | None = None
    ) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
        """Run *kql*; return its columns and an iterator over its rows (fetched in batches)."""
        relation = self._relation(kql, now)
        return list(relation.columns), self._rows(relation, kql, now)

    def store(self, kql: str, now: datetime | None = None,
              name: str = "findings") -> StoredFindings:
        """Run *kql* into the table *name*: the rows stay in DuckDB (which spills them to disk
        beyond its budget), to be counted and written out by it."""
        import duckdb

        from .stored import StoredFindings

        relation = self._relation(kql, now)
        try:
            relation.create(name)
        except duckdb.OutOfMemoryException as exc:
            if not self.limited:
                raise InputError(_clean(exc)) from exc
            # Over the budget: lift it and run again.
            self._lift_budget()
            self.con.execute(f"DROP TABLE IF EXISTS {_ident(name)}")
            return self.store(kql, now, name)
        except duckdb.Error as exc:
            raise InputError(_clean(exc)) from exc
        return StoredFindings(self.con, name, relation.columns,
                              [str(t) for t in relation.types])

    def _relation(self, kql: str, now: datetime | None) -> Any:
        import duckdb
        import duckdb_kql

        try:
            return duckdb_kql.kql(self.con, kql, query_now=now)
        except duckdb_kql.KqlUnsupportedError as exc:
            raise UnsupportedQueryError(
                f"the local engine does not support this KQL: {first_line(exc)}") from exc
        except duckdb_kql.KqlError as exc:
            raise InputError(f"the KQL cannot run locally: {first_line(exc)}") from exc
        except duckdb.Error as exc:
            raise InputError(_clean(exc)) from exc

    def _rows(
        self, relation: Any, kql: str, now: datetime | None, size: int = 10_000
    ) -> Iterator[tuple[Any, ...]]:
        import duckdb

        produced = False
        try:
            for row in relation.iter_rows(batch_size=size):
                produced = True
                yield row
        except duckdb.OutOfMemoryException as exc:
            if produced or not self.limited:
                raise InputError(_clean(exc)) from exc
            # Over the budget before the first row: lift it and run again (nothing repeats).
            self._lift_budget()
            yield from self._rows(self._relation(kql, now), kql, now, size)
        except duckdb.Error as exc:
            raise InputError(_clean(exc)) from exc


def _empty_select(schema: TableSchema) -> str:
    cols = ", ".join(f"CAST(NULL AS {DUCKDB_TYPES.get(t, 'VARCHAR')}) AS {_ident(c)}"
                     for c, t in schema.columns.items())
    return f"SELECT {cols} LIMIT 0"


def _check_columns(schema: TableSchema, path: Path, required: set[str],
                   present: dict[str, tuple[str, str]], local_time: set[str]) -> None:
    """Columns the query needs must be in the file (in UTC); say what is wrong and how."""
    missing = sorted(required - present.keys())
    if not missing:
        return
    if not present.keys() & schema.columns.keys() and not local_time:
        found = ", ".join(sorted(present)[:8]) + (", ..." if len(present) > 8 else "")
        raise InputError(f"{path}: none of its columns is a {schema.name} column "
                         f"(it has: {found}); is it a {schema.name} export?")
    local = [c for c in missing if c in local_time]
    if local:
        raise InputError(f"{path}: {', '.join(local)} in local time, of unknown offset; export "
                         "with the time zone set to UTC")
    raise InputError(f"{path}: missing columns the {schema.name} query needs: "
                     + ", ".join(missing))


_ERROR_KIND = re.compile(r"^[A-Z][A-Za-z ]*Error: ")


def _summary(exc: BaseException) -> str:
    """DuckDB's message on one line: its first paragraph, without quoted data lines."""
    lines: list[str] = []
    for line in str(exc).strip().splitlines():
        if not line.strip():
            break
        if not line.startswith(("Original Line:", "LINE ")):
            lines.append(line.strip())
    text = " ".join(lines[:2]) or type(exc).__name__
    return _ERROR_KIND.sub("", text)


def _clean(exc: BaseException) -> str:
    text = first_line(exc)
    for prefix in ("Invalid Input Error: ", "Conversion Error: ", "Binder Error: "):
        text = text.removeprefix(prefix)
    return text
