"""Attacker-controlled text made safe to show (DESIGN §7): telemetry, rule text, service messages.

- On a terminal: every control, format (bidi, zero-width), separator or surrogate character is
  shown as ``<U+XXXX>`` (ESC as ``<U+001B>``, RIGHT-TO-LEFT OVERRIDE as ``<U+202E>``), so no
  escape sequence reaches the terminal and no text is silently reordered or hidden; tab and
  newline are kept. Rich markup in the text is printed literally.
- In CSV: a cell that starts with ``= + - @``, tab or carriage return gets a leading ``'``,
  so a spreadsheet shows it as text instead of running it as a formula (OWASP "CSV
  injection"); ``hunt --csv-raw`` writes such cells unchanged for pipelines that parse the CSV.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

#: Unicode categories shown as ``<U+XXXX>``: controls, format characters (bidi overrides and
#: isolates, zero-width characters), line/paragraph separators and lone surrogates.
HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
#: First characters that make a spreadsheet evaluate a cell.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def visible(text: str) -> str:
    """*text* with every invisible or terminal-controlling character but tab and newline as
    ``<U+XXXX>``."""
    return _shown(text, "\t\n")


def one_line(value: Any) -> str:
    """:func:`visible` with tab and newline shown too, for one-line places (a markdown table
    cell, an HTML summary); None is ''."""
    return "" if value is None else _shown(str(value), "")


def _shown(text: str, keep: str) -> str:
    if text.isprintable():  # the common case: no control, format or separator character
        return text
    return "".join(
        f"<U+{ord(ch):04X}>" if ch not in keep and unicodedata.category(ch) in HIDDEN
        else ch for ch in text)


def literal(value: Any, style: str = "") -> Text:
    """A rich ``Text`` for a table cell or title: no markup parsed, control characters visible.

    None is an empty cell.
    """
    from rich.text import Text

    return Text("" if value is None else visible(str(value)), style=style)


def markup(value: Any) -> str:
    """*value* as a piece of a rich markup string: brackets escaped, control characters visible."""
    from rich.markup import escape

    return escape(visible(str(value)))


def csv_cell(value: Any) -> Any:
    """*value*, with a ``'`` in front when it is text a spreadsheet would run as a formula."""
    if type(value) is str and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_text(rows: Iterable[Sequence[Any]], *, raw: bool = False) -> str:
    """*rows* as CSV records, one a line, cells neutralised by :func:`csv_cell` unless *raw*.

    A cell holding a carriage return is quoted like one holding a newline: the csv module
    quotes for its line terminator ("\\n") but not for a lone "\\r", which readers also take
    as a line break, splitting the row.
    """
    import csv
    import io

    records = list(rows) if raw else [[*map(csv_cell, row)] for row in rows]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(records)
    text = buffer.getvalue()
    if "\r" not in text:
        return text
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for record in records:
        if any(isinstance(c, str) and "\r" in c for c in record):
            buffer.write(",".join(map(_csv_field, record)) + "\n")
        else:
            writer.writerow(record)
    return buffer.getvalue()


def _csv_field(value: Any) -> str:
    """One field as the csv module writes it, with a carriage return also quoted."""
    text = "" if value is None else str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
