"""Files that are not one row per record: raw web-server logs and Event Hub / streaming records.

What an incident responder copies off a server, or out of an Event Hub, is turned into JSON
lines of the bundled table's columns, which the engine then reads like any other file:

- IIS W3C extended logs (``u_ex*.log``: ``#Fields:`` directives, space-separated values) and
  Apache/nginx access logs (common, combined, vhost_combined) become ``W3CIISLog`` rows; the
  column mapping is in docs/hunting-local.md.
- Defender streaming-API records (``{"records": [{"time", "category", "properties": {...}}]}``
  from an Event Hub, or one record per line from a storage account) and Log Analytics data
  export records (``{"records": [{"TimeGenerated", "Type", ...}]}``) are flattened: a record's
  ``properties`` are its row; records of other tables are skipped, with a warning. Saved API
  answers are unwrapped too: the Logs API's ``{"tables": [{"columns", "rows"}]}`` and the
  Defender / Graph advanced-hunting ``{"Schema", "Results"}`` / ``{"schema", "results"}``.

Conversion streams line by line (memory stays flat); only an Event Hub document that is not
one per line is parsed whole. A W3C log with one ``#Fields`` list and nothing odd in it is not
converted at all: DuckDB reads it in place (:func:`_w3c_in_place`).
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from .errors import InputError

#: Suffixes read as web-server logs (after stripping .gz).
WEB_LOG_SUFFIXES = (".log", ".txt")
#: The table web-server logs are read as.
WEB_LOG_TABLE = "W3CIISLog"
_JSON = (".json", ".jsonl", ".ndjson")

#: W3C extended field -> W3CIISLog column (date and time are joined into TimeGenerated).
W3C_FIELDS = {
    "s-sitename": "sSiteName", "s-computername": "Computer", "s-ip": "sIP",
    "cs-method": "csMethod", "cs-uri-stem": "csUriStem", "cs-uri-query": "csUriQuery",
    "s-port": "sPort", "cs-username": "csUserName", "c-ip": "cIP", "cs-version": "csVersion",
    "cs(user-agent)": "csUserAgent", "cs(cookie)": "csCookie", "cs(referer)": "csReferer",
    "cs-host": "csHost", "sc-status": "scStatus", "sc-substatus": "scSubStatus",
    "sc-win32-status": "scWin32Status", "sc-bytes": "scBytes", "cs-bytes": "csBytes",
    "time-taken": "TimeTaken",
}
#: W3CIISLog columns of a number type: W3C writes "-" for "no value" there.
_NUMBERS = {"sPort", "scBytes", "csBytes", "TimeTaken"}

#: Apache/nginx: [vhost:port] host ident user [time] "request" status bytes ["referer" "agent"]
#: and whatever a custom format appends (nginx's "$http_x_forwarded_for", request times).
_ACCESS = re.compile(
    r'^(?:(?P<vhost>\S+:\d+) )?(?P<host>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<request>.*?)" (?P<status>\d{3}|-) (?P<bytes>\d+|-)'
    r'(?: "(?P<referer>[^"\\]*(?:\\.[^"\\]*)*)" "(?P<agent>[^"\\]*(?:\\.[^"\\]*)*)"?)?'
    r'(?: .*)?\s*$')
_ACCESS_TIME = re.compile(
    r"^(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$")
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
#: How many unreadable lines are named in a warning.
_SHOWN = 3


@dataclass
class Converted:
    """A file turned into JSON lines of *table*'s columns (*path*), or read in place by
    DuckDB through *sql*, and what was noticed on the way."""

    path: Path | None = None
    rows: int = 0
    warnings: list[str] = field(default_factory=list)
    sql: str | None = None
    #: The keys of the JSON lines, in first-seen order (so DuckDB need not scan for them).
    columns: list[str] = field(default_factory=list)


def is_web_log(path: Path) -> bool:
    return file_suffix(path) in WEB_LOG_SUFFIXES


def file_suffix(path: Path) -> str:
    """The suffix that says the format: ``.csv`` for ``x.csv.gz``, in lower case."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _open(path: Path) -> IO[str]:
    """Text split at LF only: a bare CR inside a logged header must not split its record."""
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="\n")
    return path.open(encoding="utf-8-sig", errors="replace", newline="\n")


def convert(path: Path, table: str, folder: Path) -> Converted | None:
    """*path* as JSON lines under *folder* when it needs converting; None when it does not."""
    suffix = file_suffix(path)
    if suffix in WEB_LOG_SUFFIXES:
        sql = _w3c_in_place(path)
        if sql is not None:
            return Converted(sql=sql)
        return _write(path, folder, _web_log_rows(path))
    if suffix in _JSON and _is_records(path):
        skipped: Counter[str] = Counter()
        converted = _write(path, folder, _record_rows(path, table, skipped))
        if skipped:
            others = ", ".join(f"{t} ({n})" for t, n in sorted(skipped.items()))
            converted.warnings.append(f"{path}: skipped records of other tables: {others}; "
                                      f"only {table} records are read from this file")
        return converted
    return None


def _write(path: Path, folder: Path, rows: Iterator[dict[str, Any] | str]) -> Converted:
    target = folder / f"{len(list(folder.iterdir()))}-{path.name}.jsonl"
    converted = Converted(target)
    keys: dict[str, None] = {}
    bad: list[str] = []
    skipped = 0
    with target.open("w", encoding="utf-8") as out:
        for row in rows:
            if isinstance(row, str):
                skipped += 1
                if len(bad) < _SHOWN:
                    bad.append(row)
                continue
            keys.update(dict.fromkeys(row))
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            converted.rows += 1
    converted.columns = list(keys)
    if skipped:
        shown = "; ".join(bad) + ("; ..." if skipped > len(bad) else "")
        converted.warnings.append(f"{path}: {skipped} line(s) skipped, not in the file's "
                                  f"format: {shown}")
    return converted


# --- web-server logs ----------------------------------------------------------------------------


def _web_log_rows(path: Path) -> Iterator[dict[str, Any] | str]:
    """W3CIISLog rows of an IIS W3C or Apache/nginx log; a str names a line that is neither."""
    with _open(path) as handle:
        first = ""
        for first in handle:
            if first.strip():
                break
        if not first.strip():
            return
        if first.startswith("#"):
            yield from _w3c_rows(path, first, handle)
        elif _ACCESS.match(first.rstrip("\r\n")):
            yield from _access_rows(path, first, handle)
        else:
            raise InputError(
                f"{path}: neither an IIS W3C extended log (it starts with #Software/#Fields "
                "directives) nor an Apache/nginx access log (host ident user [time] "
                f'"request" status bytes): {_excerpt(first)}; for IIS, log in W3C format '
                "(the default), for Apache use LogFormat combined")


def _excerpt(line: str) -> str:
    text = re.sub(r"\s+", " ", line.strip())
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def _w3c_in_place(path: Path) -> str | None:
    """SQL reading a W3C log in place, when that is safe; None to convert it line by line.

    DuckDB's CSV reader takes a 50 MB log in about a second where the Python pass takes tens.
    It is used only when the file has one #Fields list with date and time, and every record
    is valid UTF-8 with exactly that many values and no CR or NUL inside: lines DuckDB would
    reject are skipped by ``ignore_errors`` (meant for the directive lines), and an attacker
    must not be able to hide a request that way.
    """
    fields: list[str] | None = None
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for raw in handle:
                line = raw.removesuffix(b"\n").removesuffix(b"\r")
                if line.startswith(b"#"):
                    name, _, value = line[1:].partition(b":")
                    if name.strip().lower() == b"fields":
                        found = value.decode("utf-8", "replace").split()
                        if fields is not None and found != fields:
                            return None
                        fields = found
                    continue
                if not line.strip():
                    continue
                if (fields is None or line.count(b" ") != len(fields) - 1
                        or b"\r" in line or b"\0" in line):
                    return None
                line.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError):
        return None
    if fields is None or not {"date", "time"} <= {f.lower() for f in fields}:
        return None
    positions = {f.lower(): f"c{i}" for i, f in enumerate(fields)}
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(fields)))
    selects = [f"{positions['date']} || 'T' || {positions['time']} || 'Z' AS TimeGenerated"]
    for w3c, column in W3C_FIELDS.items():
        if w3c in positions:
            source = positions[w3c]
            selects.append(f"NULLIF({source}, '-') AS {column}" if column in _NUMBERS
                           else f"{source} AS {column}")
    quoted = "'" + str(path).replace("'", "''") + "'"
    return (f"SELECT {', '.join(selects)} FROM read_csv({quoted}, delim = ' ', header = false, "
            f"quote = '', escape = '', columns = {{{columns}}}, auto_detect = false, "
            "ignore_errors = true) WHERE NOT starts_with(c0, '#')")


def _w3c_rows(path: Path, first: str, rest: IO[str]) -> Iterator[dict[str, Any] | str]:
    fields: list[str] | None = None
    day: str | None = None
    for number, line in enumerate(_chain(first, rest), 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.startswith("#"):
            name, _, value = line[1:].partition(":")
            if name.strip().lower() == "fields":
                fields = value.split()
            elif name.strip().lower() == "date":
                day = value.strip().split(" ")[0] or None
            continue
        if fields is None:
            raise InputError(f"{path}: line {number}: a record before any #Fields: directive; "
                             "is it an IIS W3C extended log?")
        values = line.split(" ")
        if len(values) != len(fields):
            yield f"line {number}: {len(values)} values for {len(fields)} #Fields"
            continue
        yield _w3c_row(dict(zip((f.lower() for f in fields), values, strict=True)), day)


def _chain(first: str, rest: IO[str]) -> Iterator[str]:
    yield first
    yield from rest


def _w3c_row(record: dict[str, str], day: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, value in record.items():
        column = W3C_FIELDS.get(name)
        if column is not None:
            row[column] = None if value == "-" and column in _NUMBERS else value
    date = record.get("date") or day
    if date and "time" in record:
        # W3C extended logs are written in UTC, whatever the server's time zone.
        row["TimeGenerated"] = f"{date}T{record['time']}Z"
    return row


def _access_rows(path: Path, first: str, rest: IO[str]) -> Iterator[dict[str, Any] | str]:
    for number, line in enumerate(_chain(first, rest), 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        match = _ACCESS.match(line)
        moment = _access_time(match["time"]) if match else None
        if match is None or moment is None:
            yield f"line {number}: {_excerpt(line)}"
            continue
        yield _access_row(match, moment)


@lru_cache(maxsize=4096)  # a busy log repeats each second many times
def _access_time(text: str) -> str | None:
    """``13/Jan/2016:19:31:16 +0200`` as ISO 8601 with its offset (the engine makes it UTC)."""
    parts = _ACCESS_TIME.match(text)
    if parts is None or parts[2].lower() not in _MONTHS:
        return None
    day, _, year, hh, mm, ss, sign, oh, om = parts.groups()
    month = _MONTHS[parts[2].lower()]
    return f"{year}-{month:02d}-{int(day):02d}T{hh}:{mm}:{ss}{sign}{oh}:{om}"


def _access_row(match: re.Match[str], moment: str) -> dict[str, Any]:
    request = match["request"]
    method, _, rest = request.partition(" ")
    target, _, version = rest.rpartition(" ") if rest.count(" ") else (rest, "", "")
    stem, question, query = target.partition("?")
    row: dict[str, Any] = {
        "TimeGenerated": moment, "cIP": match["host"], "csUserName": match["user"],
        "csMethod": method, "csUriStem": stem,
        # IIS writes "-" for no query: the same text the rules see on W3CIISLog.
        "csUriQuery": query if question else "-",
        "csVersion": version or None, "scStatus": match["status"],
        "scBytes": None if match["bytes"] == "-" else match["bytes"],
    }
    if match["referer"] is not None:
        row["csReferer"] = _unescape(match["referer"])
        row["csUserAgent"] = _unescape(match["agent"] or "")
    if match["vhost"]:
        host, _, port = match["vhost"].rpartition(":")
        row["csHost"], row["sPort"] = host, port
    return row


def _unescape(text: str) -> str:
    """Apache escapes ``"`` and ``\\`` in logged headers with a backslash."""
    return _ESCAPED.sub(r"\1", text) if "\\" in text else text


_ESCAPED = re.compile(r"\\(.)")


# --- Event Hub / streaming records ------------------------------------------------------------


def _head(path: Path, size: int = 65536) -> str:
    try:
        with _open(path) as handle:
            return handle.read(size)
    except (OSError, EOFError):
        return ""  # the engine reports the unreadable file in its own words


#: Documents whose rows are inside: Event Hub messages ("records"), a saved Logs API answer
#: ("tables": columns and rows), a saved Defender or Graph advanced-hunting answer
#: ("Schema"/"Results", "schema"/"results", after "Stats" or "@odata.context").
_RECORDS = re.compile(
    r'^\s*(\[\s*)?\{\s*"(records|tables|Stats|Schema|Results|schema|results|@odata\.context)"\s*:')


def _is_records(path: Path) -> bool:
    """Whether *path* holds Event Hub documents or streaming records (not plain rows)."""
    head = _head(path)
    if _RECORDS.match(head):
        return True
    line = head.lstrip().split("\n", 1)[0]
    try:
        first = json.loads(line)
    except ValueError:
        return False
    return (isinstance(first, dict) and isinstance(first.get("properties"), dict)
            and isinstance(first.get("category"), str))


def _documents(path: Path) -> Iterator[Any]:
    """The JSON values in *path*: one per line, or one or more concatenated documents."""
    with _open(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                if number > 1:
                    raise InputError(f"{path}: line {number} is not JSON") from None
                break
        else:
            return
    with _open(path) as handle:
        text = handle.read()
    decoder, at = json.JSONDecoder(), 0
    while at < len(text):
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            break
        try:
            value, at = decoder.raw_decode(text, at)
        except ValueError as exc:
            raise InputError(f"{path}: cannot read as json: {exc}") from None
        yield value


def _records(path: Path) -> Iterator[dict[str, Any]]:
    for document in _documents(path):
        for item in document if isinstance(document, list) else [document]:
            if not isinstance(item, dict):
                continue
            rows = item.get("records", item.get("Results", item.get("results")))
            if isinstance(rows, list):
                yield from (r for r in rows if isinstance(r, dict))
            elif isinstance(item.get("tables"), list):
                yield from _table_rows(path, item["tables"])
            else:
                yield item


def _table_rows(path: Path, tables: list[Any]) -> Iterator[dict[str, Any]]:
    """The rows of a Logs API answer: ``{"tables": [{"columns": [{"name"}], "rows": [[...]]}]}``."""
    for table in tables:
        if not isinstance(table, dict) or not isinstance(table.get("columns", []), list) \
                or not isinstance(table.get("rows", []), list):
            raise InputError(f"{path}: 'tables' holds something other than tables of columns "
                             "and rows; is it a complete Logs API answer?")
        columns = [str(c.get("name")) for c in table.get("columns", []) if isinstance(c, dict)]
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise InputError(f"{path}: the answer names a column more than once: "
                             + ", ".join(map(repr, repeated)))
        for row in table.get("rows", []):
            if not isinstance(row, list) or len(row) != len(columns):
                size = f"{len(row)} values" if isinstance(row, list) else "no list"
                raise InputError(f"{path}: a row of {size} for {len(columns)} columns; is it "
                                 "a complete Logs API answer?")
            yield dict(zip(columns, row, strict=True))


def _record_rows(path: Path, table: str, skipped: Counter[str]
                 ) -> Iterator[dict[str, Any] | str]:
    for record in _records(path):
        category = str(record.get("category") or "")
        named = (category.removeprefix("AdvancedHunting-") if category.startswith(
            "AdvancedHunting-") else str(record.get("Type") or "")) or table
        if named.lower() != table.lower():
            skipped[named] += 1
            continue
        properties = record.get("properties")
        row = dict(properties) if isinstance(properties, dict) else {
            k: v for k, v in record.items() if k not in ("Type",)}
        if isinstance(properties, dict) and "TimeGenerated" not in row and record.get("time"):
            row["TimeGenerated"] = record["time"]  # when Defender received the event
        yield {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
