"""How one changed field of a rule reads: a unified diff for text, added/removed for lists,
before/after for anything else. Pure: the renderer and the JSON ``changes`` both use it."""

from __future__ import annotations

import difflib
import json
from typing import Any

#: A single-line string longer than this is diffed as text too (a long one-line query).
LONG_TEXT = 80
#: Lines of context around each changed line, as ``diff -U2``.
CONTEXT = 2


def _is_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)


def unified(before: str, after: str) -> str:
    """``before`` (deployed) → ``after`` (the pack) as a unified diff, headers included."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), "deployed", "pack",
                                 n=CONTEXT, lineterm="")
    return "\n".join(lines)


def describe(before: Any, after: Any) -> dict[str, Any]:
    """The ``diff`` object of one change (deployed value *before*, the pack's *after*).

    - ``{"kind": "text", "unified": "--- deployed\\n+++ pack\\n@@ …"}`` for multi-line or
      long strings (queries, descriptions);
    - ``{"kind": "list", "added": [...], "removed": [...]}`` for lists (tactics, techniques);
    - ``{"kind": "value"}`` otherwise: ``from`` and ``to`` say it all.
    """
    if _is_text(before) and _is_text(after) and (before or after):
        texts = (before or "", after or "")
        if any("\n" in t or len(t) > LONG_TEXT for t in texts):
            return {"kind": "text", "unified": unified(*texts)}
    if isinstance(before, list | type(None)) and isinstance(after, list | type(None)) and (
            before is not None or after is not None):
        old = {_key(v) for v in before or []}
        new = {_key(v) for v in after or []}
        return {"kind": "list", "added": [v for v in after or [] if _key(v) not in old],
                "removed": [v for v in before or [] if _key(v) not in new]}
    return {"kind": "value"}
