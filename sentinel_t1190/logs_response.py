"""Logs Query API response bodies, parsed as they stream in (pure; no azure imports).

A response is ``{"tables": [{"name", "columns": [{"name", "type"}], "rows": [[...], ...]}],
"error": {...}?}``; an ``error`` next to ``tables`` is a *partial* result (what
azure-monitor-query reports as ``LogsQueryPartialResult``). It can be 500,000 rows and
~100 MB, so rows are handed on in batches while the body arrives and the whole body is never
held: memory is one batch (about :data:`BATCH_CHARS` bytes), not the response.

How a batch is cut: the bytes up to the last ``],[`` in the buffer are parsed as one JSON
array in a single ``orjson.loads`` call (C speed, straight from the UTF-8 bytes). That is only
accepted when every element is a row of scalars with the table's column count; a cut inside a
string (a command line holding ``],[``) cannot parse, since the string would be unterminated,
so a few earlier ``],[`` are tried. Anything else falls back to decoding one row at a time
with the standard library, which is always exact (and accepts what orjson refuses, such as
``NaN`` or a lone surrogate escape).

Nothing the service (or anything posing as it) sends is trusted: a body that is not exactly
one result table — empty, ``{}``, no ``tables``, columns without names, rows with more or
fewer cells than there are columns, a datetime cell that is no date — raises
:class:`ResponseFormatError`, never another exception and never an empty "complete" result.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import InputError

#: Bytes buffered before a batch of rows is cut (128 KiB, about 450 rows of a hunt). Batches
#: this small stay in the CPU caches and die young: 500,000 rows took a quarter less CPU than
#: with 1 MiB batches, and 4 MiB batches took over twice as long.
BATCH_CHARS = 1 << 17
#: Earlier ``],[`` tried when the last one is inside a string, before decoding row by row.
_CUT_TRIES = 4
_ROWS_KEY = re.compile(rb'"rows"\s*:\s*\[')
_COLUMNS_KEY = re.compile(r'"columns"\s*:\s*')
_SPACE = re.compile(r"\s*")
_DECODER = json.JSONDecoder()

RowsCallback = Callable[[list[list[Any]]], None]


class ResponseFormatError(ValueError):
    """The body is not a Logs Query API response."""


def describe_error(error: dict[str, Any]) -> str:
    """``code: message (innermost message)`` of a Logs API error object."""
    code, message = error.get("code") or "Error", error.get("message") or ""
    inner: list[str] = []
    for detail in [error, *_list(error.get("details"))]:
        node = detail
        while isinstance(node, dict) and node.get("innererror"):
            node = node["innererror"]
        if node is not detail and isinstance(node, dict) and node.get("message"):
            inner.append(str(node["message"]))
    text = f"{code}: {message}".rstrip(": ")
    return f"{text} ({'; '.join(dict.fromkeys(inner))})" if inner else text


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _columns(value: Any) -> tuple[list[str], list[str]]:
    """Names and types of a table's ``columns``: a non-empty list of ``{"name", "type"}``."""
    if not isinstance(value, list) or not value:
        raise ResponseFormatError("the result table has no columns")
    names, types = [], []
    for column in value:
        name = column.get("name") if isinstance(column, dict) else None
        kind = column.get("type", "") if isinstance(column, dict) else None
        if not isinstance(name, str) or not isinstance(kind, str):
            raise ResponseFormatError(f"unreadable column in the response: {column!r:.80}")
        names.append(name)
        types.append(kind)
    return names, types


@dataclass
class ParsedResponse:
    """What remains once the rows have been handed on: columns, types and any error."""

    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    rows: int = 0
    #: The ``error`` member of a partial result (``code``, ``message``, ``details``), or None.
    error: dict[str, Any] | None = None
    #: Number of tables in the response (a hunting query has one).
    tables: int = 0


def normalize_datetime(value: Any) -> Any:
    """A Logs API datetime (any precision, ``Z``) in the fixed form ``...HH:MM:SS.ffffffZ``.

    The same text the local engine writes, so local and live output sort and compare alike.
    """
    if not isinstance(value, str) or len(value) == 27:
        return value
    if len(value) == 28 and value[19] == "." and value[27] == "Z":  # Kusto's 100 ns ticks
        return value[:26] + "Z"
    if len(value) >= 20 and value.endswith("Z") and value[10] == "T":
        base, _, frac = value[:-1].partition(".")
        if len(base) == 19:
            return f"{base}.{frac[:6].ljust(6, '0')}Z"
    from .timespan import iso_z, parse_instant

    return iso_z(parse_instant(value))


class ResponseParser:
    """Feed the body's bytes as they arrive; complete rows go to *on_rows* in batches.

    *on_columns* is called once with (names, types) before the first batch.
    """

    def __init__(self, on_rows: RowsCallback,
                 on_columns: Callable[[list[str], list[str]], None] | None = None,
                 batch_chars: int = BATCH_CHARS) -> None:
        self._on_rows = on_rows
        self._on_columns = on_columns
        self._batch = batch_chars
        self._buf = b""
        #: Bytes received but not yet joined onto _buf (joining once per batch, not per
        #: chunk, keeps the copying linear in the body size).
        self._parts: list[bytes] = []
        self._pending = 0
        self._head = ""
        self._state = "head"  # head -> rows -> tail
        self.result = ParsedResponse()
        self._datetime_idx: list[int] = []

    # -- input ---------------------------------------------------------------------------
    def feed_bytes(self, chunk: bytes) -> None:
        self._parts.append(chunk)
        self._pending += len(chunk)
        if self._state == "rows" and len(self._buf) + self._pending < self._batch:
            return
        self._join()
        if self._state == "head":
            self._find_rows()
        while self._state == "rows" and len(self._buf) >= self._batch:
            before = len(self._buf)
            self._cut_batches()
            if len(self._buf) == before:  # an incomplete row: wait for more bytes
                break

    def feed(self, text: str) -> None:
        """Feed text already decoded (the body itself goes to :meth:`feed_bytes`)."""
        self.feed_bytes(text.encode("utf-8"))

    def close(self) -> ParsedResponse:
        """The end of the body: the last rows, then the columns and error of the whole."""
        self._join()
        if self._state == "head":
            self._find_rows()
        if self._state == "head":  # no rows array at all: a small document, parse it whole
            self._finish(_text(self._buf), streamed=False)
            return self.result
        if self._state == "rows":
            self._cut_batches(exact=False)  # the bulk in one go, the last row(s) exactly
            self._decode_rows(final=True)
        if self._state != "tail":
            raise ResponseFormatError("the response ends inside its rows")
        self._finish(self._head + "[]" + _text(self._buf), streamed=True)
        return self.result

    def _join(self) -> None:
        if self._parts:
            self._buf += b"".join(self._parts)
            self._parts.clear()
            self._pending = 0

    # -- states --------------------------------------------------------------------------
    def _find_rows(self) -> None:
        match = _ROWS_KEY.search(self._buf)
        if not match:
            return
        head = _text(self._buf[: match.end() - 1])
        cols = _COLUMNS_KEY.search(head)
        if cols is None:
            raise ResponseFormatError("the response has rows but no columns")
        try:
            columns, _ = _DECODER.raw_decode(head, cols.end())
        except ValueError as exc:
            raise ResponseFormatError(f"unreadable columns in the response: {exc}") from exc
        names, types = _columns(columns)
        self.result.columns, self.result.types = names, types
        self._datetime_idx = [i for i, t in enumerate(types) if t == "datetime"]
        if self._on_columns:
            self._on_columns(names, types)
        self._head = head
        self._buf = self._buf[match.end():]
        self._state = "rows"

    def _cut_batches(self, exact: bool = True) -> None:
        buf, end = self._buf, len(self._buf)
        for _ in range(_CUT_TRIES):
            cut = buf.rfind(b"],[", 0, end)
            if cut <= 0:
                break
            try:
                rows = orjson.loads(b"[" + buf[: cut + 1] + b"]")
            except orjson.JSONDecodeError:
                end = cut  # inside a string, or something only the exact path reads
                continue
            if self._valid(rows):
                self._buf = buf[cut + 2:]
                self._emit(rows)
                return
            break
        if exact:
            self._decode_rows(final=False)

    def _valid(self, rows: list[Any]) -> bool:
        width = len(self.result.columns)
        if set(map(type, rows)) != {list} or set(map(len, rows)) != {width}:
            return False
        if "dynamic" not in self.result.types:
            # Every cell is a scalar, so a structural "],[" only ever separates two rows.
            return True
        return not any(isinstance(v, (list, dict)) for r in rows for v in r)

    def _decode_rows(self, *, final: bool) -> None:
        """Exact fallback: one row at a time, up to the end of the rows or of the buffer."""
        data = self._buf
        try:  # an incomplete character at the end of a non-final buffer waits for the rest
            buf = codecs.getincrementaldecoder("utf-8")().decode(data, final=final)
        except UnicodeDecodeError as exc:
            raise ResponseFormatError(f"the response is not UTF-8: {exc}") from None
        pos = 0
        rows: list[list[Any]] = []
        while True:
            pos = _SPACE.match(buf, pos).end()  # type: ignore[union-attr]
            if pos < len(buf) and buf[pos] == "]":
                self._state = "tail"
                pos += 1
                break
            if pos < len(buf) and buf[pos] == ",":
                pos += 1
                pos = _SPACE.match(buf, pos).end()  # type: ignore[union-attr]
            try:
                row, end = _DECODER.raw_decode(buf, pos)
            except ValueError:
                if final:
                    raise ResponseFormatError("the response's rows are not valid JSON") from None
                break
            if type(row) is not list:
                raise ResponseFormatError("a row of the response is not an array")
            if len(row) != len(self.result.columns):
                raise ResponseFormatError(
                    f"row {self.result.rows + len(rows) + 1} of the response has {len(row)} "
                    f"cells for {len(self.result.columns)} columns")
            rows.append(row)
            pos = end
            if not final and len(rows) >= 10_000:
                break
        # a row decoded at the very end of a non-final buffer may be followed by more text
        consumed = pos if len(buf) == len(data) else len(buf[:pos].encode("utf-8"))
        self._buf = data[consumed:]
        if rows:
            self._emit(rows)

    def _emit(self, rows: list[list[Any]]) -> None:
        for i in self._datetime_idx:
            for row in rows:
                value = row[i]
                if value.__class__ is str and len(value) == 28 and value[27] == "Z":
                    row[i] = value[:26] + "Z"  # the service's 100 ns ticks: the fast path
                elif value.__class__ is not str or len(value) != 27:
                    try:
                        row[i] = normalize_datetime(value)
                    except InputError:
                        raise ResponseFormatError(
                            f"column {self.result.columns[i]!r:.60} holds {value!r:.60}, not a "
                            "datetime") from None
        self.result.rows += len(rows)
        self._on_rows(rows)

    def _finish(self, text: str, *, streamed: bool) -> None:
        """Check the whole document (its rows, when *streamed*, replaced by ``[]``)."""
        if not text.strip():
            raise ResponseFormatError("the response is empty")
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise ResponseFormatError(f"the response is not valid JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise ResponseFormatError("the response is not a JSON object")
        error = document.get("error")
        if error is not None and not isinstance(error, dict):
            raise ResponseFormatError("the response's error is not an object")
        tables = document.get("tables")
        if not isinstance(tables, list) or not tables or not isinstance(tables[0], dict):
            said = f" (it says {describe_error(error)})" if error else ""
            raise ResponseFormatError(f"the response holds no result table{said}")
        first = tables[0]
        names, types = _columns(first.get("columns"))
        rows = first.get("rows")
        if streamed and (rows != [] or names != self.result.columns
                         or types != self.result.types):
            raise ResponseFormatError("the response's rows are not those of its first table")
        if not isinstance(rows, list):
            raise ResponseFormatError("the result table has no rows array")
        if rows:  # rows not found by _ROWS_KEY (a key spelled with escapes): not read
            raise ResponseFormatError("the response's rows could not be read")
        self.result.tables = len(tables)
        if not streamed:
            self.result.columns, self.result.types = names, types
            if self._on_columns:
                self._on_columns(names, types)
        self.result.error = error


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResponseFormatError(f"the response is not UTF-8: {exc}") from None


def parse_chunks(chunks: Iterable[bytes], on_rows: RowsCallback,
                 batch_chars: int = BATCH_CHARS) -> ParsedResponse:
    """Parse a whole body given as byte chunks (for tests and benchmarks)."""
    parser = ResponseParser(on_rows, batch_chars=batch_chars)
    for chunk in chunks:
        parser.feed_bytes(chunk)
    return parser.close()
