"""fielddiff: how one changed field reads (text diff, list added/removed, scalar)."""

from __future__ import annotations

from typing import Any

import pytest

from sentinel_t1190.fielddiff import describe


def test_a_change_deep_in_a_long_line_appears_in_the_text_diff() -> None:
    before = "let Sqli = @\"(?i)(union" + "x" * 200 + "|xp_cmdshel)\";\nW3CIISLog\n| take 1"
    after = before.replace("xp_cmdshel)", "xp_cmdshell)")
    diff = describe(before, after)
    assert diff["kind"] == "text"
    lines = diff["unified"].splitlines()
    assert lines[:2] == ["--- deployed", "+++ pack"]
    assert [line[0] for line in lines[3:]] == ["-", "+", " ", " "]
    assert lines[3].endswith("|xp_cmdshel)\";") and lines[4].endswith("|xp_cmdshell)\";")


@pytest.mark.parametrize(("before", "after", "expected"), [
    (["InitialAccess"], ["InitialAccess", "Persistence"],
     {"kind": "list", "added": ["Persistence"], "removed": []}),
    (["T1190", "T1059"], ["T1190"], {"kind": "list", "added": [], "removed": ["T1059"]}),
    (None, ["T1190"], {"kind": "list", "added": ["T1190"], "removed": []}),
    ([{"entityType": "Host"}], [{"entityType": "IP"}],
     {"kind": "list", "added": [{"entityType": "IP"}], "removed": [{"entityType": "Host"}]}),
    ("Low", "High", {"kind": "value"}),
    (False, True, {"kind": "value"}),
    (None, "PT1H", {"kind": "value"}),
])
def test_lists_and_scalars(before: Any, after: Any, expected: dict[str, Any]) -> None:
    assert describe(before, after) == expected


def test_text_added_where_there_was_none() -> None:
    diff = describe(None, "line one\nline two")
    assert diff["kind"] == "text"
    assert diff["unified"].splitlines()[3:] == ["+line one", "+line two"]
