"""Findings tables that fit the terminal: key columns first, one line per row, long cells cut.

A rule's findings are shown through a *view*: the columns people read first, in order of
importance, each with a header and the narrowest and widest it is useful at. The view is
picked by the columns the rule outputs (so a custom rule with the same columns gets it too);
other rules get their own columns in order. As many columns as fit the width are shown, in
the view's order; one column (the command line, the decoded request, the payload, the path)
takes the room left. Cells longer than their column end with "…": JSON, NDJSON and CSV
always hold the full values. The ``rules`` and fleet tables use the same layout with views
of their own, their long column (a name, an error) wrapping instead of being cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .safe_text import one_line

if TYPE_CHECKING:
    from rich.table import Table

#: What a column separator costs in a findings table: a space and the cell's right padding.
GAP = 2
#: The flexible column grows to this width before the others grow past their narrowest.
COMFORTABLE = 40


@dataclass(frozen=True)
class Col:
    """One column of a view: its header, narrowest and widest useful width; *flex* takes the
    room the others leave (one per view)."""

    name: str
    header: str
    least: int = 8
    most: int = 24
    flex: bool = False


def _time(name: str) -> Col:
    return Col(name, "Time (UTC)", 19, 19)


_WORKSPACE = Col("WorkspaceId", "Workspace", 8, 36)

#: Views, most specific first: (the column that identifies it, its columns by importance).
VIEWS: tuple[tuple[str, tuple[Col, ...]], ...] = (
    ("Payload", (  # Log4Shell: requests and Java callbacks
        _time("Timestamp"), Col("ExploitEvidence", "Evidence", 12, 33),
        Col("SourceIP", "Source IP", 15, 39), Col("HostName", "Host", 10, 32),
        Col("Payload", "Payload (decoded)", 20, flex=True), Col("Source", "Source", 6, 19),
        Col("ProcessName", "Process", 8, 16), Col("AccountName", "Account", 8, 16),
        _WORKSPACE)),
    ("DecodedRequest", (  # SQL injection in IIS requests
        _time("TimeGenerated"), Col("ExploitEvidence", "Evidence", 12, 26),
        Col("cIP", "Source IP", 15, 39), Col("Computer", "Host", 10, 32),
        Col("scStatus", "Status", 6, 6), Col("csMethod", "Method", 6, 7),
        Col("DecodedRequest", "Request (decoded)", 20, flex=True),
        Col("sSiteName", "Site", 6, 16), Col("csUserAgent", "User-Agent", 10, 40), _WORKSPACE)),
    ("FolderPath", (  # files written into a web root
        _time("Timestamp"), Col("ExploitEvidence", "Evidence", 12, 30),
        Col("DeviceName", "Device", 10, 32),
        Col("InitiatingProcessFileName", "Written by", 8, 24),
        Col("FolderPath", "Path", 20, flex=True),
        Col("InitiatingProcessAccountName", "Account", 8, 16),
        Col("ActionType", "Action", 8, 16), _WORKSPACE)),
    ("ProcessCommandLine", (  # processes started by a web server (the seed rule, Linux)
        _time("Timestamp"), Col("ExploitEvidence", "Evidence", 12, 19),
        Col("DeviceName", "Device", 10, 32), Col("InitiatingProcessFileName", "Parent", 8, 18),
        Col("FileName", "Process", 8, 18),
        Col("ProcessCommandLine", "Command line", 20, flex=True),
        Col("AccountName", "Account", 8, 16),
        Col("InitiatingProcessParentFileName", "Grandparent", 8, 18), _WORKSPACE)),
)


def view(columns: Sequence[str]) -> list[Col]:
    """The columns to consider for a rule outputting *columns*, most important first."""
    present = set(columns)
    for key, cols in VIEWS:
        if key in present:
            return [c for c in cols if c.name in present]
    # Another rule: its own columns in order (hashes last), the last text-like one flexible.
    ordered = [c for c in columns if "SHA" not in c and "MD5" not in c] + \
        [c for c in columns if "SHA" in c or "MD5" in c]
    return [Col(c, c, min(8, len(c)), 30) for c in ordered]


def widths(cols: Sequence[Col], natural: dict[str, int], width: int) -> list[tuple[Col, int]]:
    """The columns shown, in display order (the flexible one last), with their widths.

    *natural* is each column's widest cell or header. The columns more important than the
    flexible one are taken in order while their narrowest widths fit beside its narrowest;
    then the flexible one; then the less important ones in order while they and everything
    before them fit whole (the flexible one at :data:`COMFORTABLE`). The flexible column grows
    to that width, the others to their widest useful width by importance, and the flexible
    one takes what is left. A rule with no flexible column: its widest shown one.
    """
    need = {c.name: min(natural[c.name], max(c.least, cell_width(c.header))) for c in cols}
    flex = next((c for c in cols if c.flex), None)
    cap = {c.name: min(natural[c.name], COMFORTABLE if c is flex else c.most) for c in cols}
    split = cols.index(flex) if flex is not None else len(cols)
    room = need[flex.name] + GAP if flex is not None else 0
    shown: list[Col] = []
    for c in cols[:split]:
        if shown and _width([*shown, c], need) + room > width:
            break
        shown.append(c)
    if flex is not None and (not shown or _width([*shown, flex], need) <= width):
        shown.append(flex)
        for c in cols[split + 1:]:
            if _width([*shown, c], cap) > width:
                break
            shown.append(c)
    if flex is None or flex not in shown:
        flex = max(shown, key=lambda c: natural[c.name])
    size = {c.name: need[c.name] for c in shown}
    spare = width - _width(shown, size)
    for c, most in [(flex, cap[flex.name]), *((c, cap[c.name]) for c in shown),
                    (flex, natural[flex.name])]:
        grow = max(0, min(most - size[c.name], spare))
        size[c.name] += grow
        spare -= grow
    return [(c, size[c.name]) for c in [*(c for c in shown if c is not flex), flex]]


def _width(cols: Sequence[Col], size: dict[str, int]) -> int:
    """The width of *cols* at *size*, with the gaps between them."""
    return sum(size[c.name] for c in cols) + GAP * (len(cols) - 1) if cols else -GAP


def cell_width(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def fitted_table(cols: Sequence[Col], rows: Iterable[dict[str, Any]], width: int,
                 cell: Callable[[str, Any], str] = lambda _, v: "" if v is None else str(v),
                 *, style: Callable[[str], str] | None = None, wrap: bool = False) -> Table:
    """*rows* as a one-line-per-row table of at most *width* characters (see the module).

    *cols*: the view (:func:`view` for a rule's findings); *style*: a cell's style from its
    text; *wrap*: the flexible column wraps its words instead of being cut (error messages).
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    texts = [[one_line(cell(c.name, row.get(c.name))) for c in cols] for row in rows]
    filled = [i for i, _ in enumerate(cols) if any(t[i] for t in texts)]
    if filled:  # a column empty on every row shows nothing: leave the room to the others
        cols = [cols[i] for i in filled]
        texts = [[t[i] for i in filled] for t in texts]
    natural = {c.name: max([cell_width(c.header), *(cell_width(t[i]) for t in texts)])
               for i, c in enumerate(cols)}
    layout = widths(cols, natural, width)
    flex = layout[-1][0]
    index = {c.name: i for i, c in enumerate(cols)}
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for col, w in layout:
        folds = wrap and col is flex
        table.add_column(Text(col.header), width=w, no_wrap=not folds,
                         overflow="fold" if folds else "ellipsis")
    for t in texts:
        table.add_row(*(Text(t[index[col.name]], style=style(t[index[col.name]]) if style else "")
                        for col, _ in layout))
    return table
