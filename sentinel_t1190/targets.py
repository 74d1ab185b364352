"""Target inventories: the workspaces a rollout or a fleet status acts on.

A targets file is YAML (a list of mappings, or a mapping with a ``targets`` list) or CSV
(a header row), with ``subscription_id``, ``resource_group``, ``workspace`` and an optional
``tenant_id`` per target. camelCase headers (``subscriptionId``, ``resourceGroup``,
``workspaceName``, ``tenantId``, as ``az`` and Resource Graph print them) are accepted, other
columns are ignored. Every problem is collected with its line and reported at once.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ._yaml import YamlSyntaxError, load_with_lines
from .deploy import Target
from .errors import InputError
from .rules import GUID

__all__ = ["Target", "dedupe", "label", "load_targets", "parse_targets", "target_key"]

#: Azure's rules: resource groups 1-90 of letters, digits, ``._-()``, not ending in ``.``;
#: workspaces 4-63 of letters, digits and ``-``, starting and ending alphanumeric.
_RESOURCE_GROUP = re.compile(r"^[\w.()-]{1,90}$")
_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{2,61}[A-Za-z0-9]$")

_FIELDS = ("subscription_id", "resource_group", "workspace", "tenant_id")
_ALIASES = {
    "subscriptionid": "subscription_id", "subscription": "subscription_id",
    "resourcegroup": "resource_group", "resourcegroupname": "resource_group",
    "workspace": "workspace", "workspacename": "workspace",
    "tenantid": "tenant_id", "tenant": "tenant_id",
}


def target_key(target: Target) -> tuple[str, str, str]:
    """The identity of a workspace (ARM names are case-insensitive)."""
    return (target.subscription_id.lower(), target.resource_group.lower(),
            target.workspace.lower())


def label(target: Target) -> str:
    """``subscription/resource-group/workspace`` for messages and tables."""
    return f"{target.subscription_id}/{target.resource_group}/{target.workspace}"


def _field(name: str) -> str | None:
    folded = name.strip().lower().replace("_", "").replace("-", "").replace(" ", "")
    return _ALIASES.get(folded)


def _problems(values: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    for name in ("subscription_id", "resource_group", "workspace"):
        if not values.get(name):
            problems.append(f"{name} is missing")
    sub, group, ws, tenant = (values.get(f, "") for f in _FIELDS)
    if sub and not GUID.fullmatch(sub):
        problems.append(f"subscription_id {sub!r} is not a GUID")
    if group and (not _RESOURCE_GROUP.match(group) or group.endswith(".")):
        problems.append(f"resource_group {group!r} is not a valid resource group name")
    if ws and not _WORKSPACE.match(ws):
        problems.append(f"workspace {ws!r} is not a valid workspace name (4-63 letters, "
                        "digits or '-', starting and ending with a letter or digit)")
    if tenant and not GUID.fullmatch(tenant):
        problems.append(f"tenant_id {tenant!r} is not a GUID")
    return problems


def _rows_csv(text: str) -> Iterable[tuple[int, dict[str, str], list[str]]]:
    header: list[str | None] | None = None
    for number, cells in _csv_records(text):
        if isinstance(cells, str):  # not CSV from here on
            yield number, {}, [cells]
            return
        if header is None:
            header = [_field(h) for h in cells]
            named = [(h, f) for h, f in zip(cells, header, strict=True) if f is not None]
            twice = sorted({f for _, f in named if header.count(f) > 1})
            if twice:
                yield number, {}, ["the header names " + ", ".join(
                    f"{f} more than once ({', '.join(repr(h) for h, g in named if g == f)})"
                    for f in twice)]
                return
            missing = [f for f in _FIELDS[:3] if f not in header]
            if missing:
                yield number, {}, [f"the header has no {', '.join(missing)} column "
                                   f"(columns: {', '.join(_FIELDS)})"]
                return
            continue
        if any("\n" in cell or "\r" in cell for cell in cells):
            yield number, {}, ["a quoted cell spans several lines (a target is one line)"]
            continue
        yield number, {name: cell.strip() for name, cell in zip(header, cells, strict=False)
                       if name is not None}, []


def _csv_records(text: str) -> Iterable[tuple[int, list[str] | str]]:
    """(first line, cells) of each CSV record, blank and ``#`` comment lines skipped; a
    record that is not CSV ends the file with (its line, the problem)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells) and not cells[0].lstrip().startswith("#"):
                yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:
        yield start, f"not valid CSV: {exc}"


def _rows_yaml(text: str) -> Iterable[tuple[int, dict[str, str], list[str]]]:
    try:
        data, lines = load_with_lines(text)
    except YamlSyntaxError as exc:
        yield exc.line or 1, {}, [str(exc)]
        return
    prefix: tuple[str | int, ...] = ()
    if isinstance(data, Mapping) and "targets" in data:
        data, prefix = data["targets"], ("targets",)
    if data is None:
        return
    if not isinstance(data, list):
        yield 1, {}, ["expected a list of targets (or a mapping with a 'targets' list)"]
        return
    for index, item in enumerate(data):
        number = lines.get((*prefix, index), 1)
        if not isinstance(item, Mapping):
            yield number, {}, ["a target must be a mapping of subscription_id, "
                               "resource_group, workspace[, tenant_id]"]
            continue
        values: dict[str, str] = {}
        keys: dict[str, list[str]] = {}
        for key, value in item.items():
            name = _field(str(key))
            if name is not None:
                keys.setdefault(name, []).append(str(key))
                if value is not None:
                    values[name] = str(value).strip()
        twice = [f"{name} is given more than once ({', '.join(map(repr, given))})"
                 for name, given in keys.items() if len(given) > 1]
        yield number, ({} if twice else values), twice


def parse_targets(text: str, *, fmt: str, source: str = "<targets>") -> list[Target]:
    """Parse a targets document (*fmt* ``yaml`` or ``csv``); de-duplicated, in file order.

    Raises :class:`InputError` listing every bad line (``source:line: problem``).
    """
    rows = _rows_csv(text) if fmt == "csv" else _rows_yaml(text)
    errors: list[str] = []
    targets: list[Target] = []
    seen: dict[tuple[str, str, str], tuple[int, Target]] = {}
    for number, values, problems in rows:
        problems = problems or _problems(values)
        if problems:
            errors.extend(f"{source}:{number}: {p}" for p in problems)
            continue
        target = Target(values["subscription_id"].lower(), values["resource_group"],
                        values["workspace"], (values.get("tenant_id") or "").lower() or None)
        key = target_key(target)
        if key in seen:
            first_line, first = seen[key]
            if (first.tenant_id or None) != (target.tenant_id or None):
                errors.append(f"{source}:{number}: {label(target)} is listed on line "
                              f"{first_line} with another tenant_id")
            continue
        seen[key] = (number, target)
        targets.append(target)
    if errors:
        raise InputError(f"{len(errors)} problem(s) in the targets file:\n  "
                         + "\n  ".join(errors))
    if not targets:
        raise InputError(f"{source}: no targets")
    return targets


def load_targets(path: Path) -> list[Target]:
    """Read a YAML (``.yaml``/``.yml``) or CSV (``.csv``, or anything else) targets file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read targets file {path}: {exc}") from exc
    fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "csv"
    return parse_targets(text, fmt=fmt, source=str(path))


def dedupe(targets: Sequence[Target]) -> list[Target]:
    """*targets* without repeats of the same workspace (first one kept)."""
    seen: set[tuple[str, str, str]] = set()
    unique: list[Target] = []
    for target in targets:
        if target_key(target) not in seen:
            seen.add(target_key(target))
            unique.append(target)
    return unique


