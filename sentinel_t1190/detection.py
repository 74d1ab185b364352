"""The T1190 web-server child-process detection: the one source of truth.

The parent and child lists and the ExploitEvidence arms live here and nowhere else. The KQL
in ``analytics/`` and ``hunting/`` is rendered from them (a test fails when the committed
files drift), and :func:`classify` applies the same arms in Python, so a local label and a
label computed by Sentinel cannot disagree unless the deployed rule is another version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

RULE_ID = "5b8c3f1e-7d2a-4e6b-9c41-0f3a8e2d1b77"
HUNTING_ID = "a3e9d1c4-2f6b-4d8e-b7a5-91c0e4f2d3a8"

WEB_SERVER_PARENTS: tuple[str, ...] = (
    "w3wp.exe", "httpd.exe", "nginx.exe", "apache2.exe", "java.exe", "python.exe",
    "python3.exe", "php.exe", "php-cgi.exe", "node.exe", "ruby.exe", "perl.exe",
    "tomcat9.exe", "tomcat8.exe", "ews.exe", "umworkerprocess.exe",
    "msexchangeservicehost.exe",
)

SUSPICIOUS_CHILDREN: tuple[str, ...] = (
    "cmd.exe", "powershell.exe", "pwsh.exe", "wscript.exe", "cscript.exe", "mshta.exe",
    "rundll32.exe", "regsvr32.exe", "certutil.exe", "bitsadmin.exe", "curl.exe", "wget.exe",
    "nc.exe", "ncat.exe", "net.exe", "net1.exe", "whoami.exe", "ipconfig.exe",
    "systeminfo.exe", "nltest.exe", "ping.exe", "nslookup.exe", "tasklist.exe", "quser.exe",
    "schtasks.exe", "at.exe", "sc.exe", "reg.exe",
)


@dataclass(frozen=True)
class EvidenceArm:
    """One arm of the ``case()``: children whose name gives this label."""

    label: str
    children: tuple[str, ...]


#: In order: the first matching arm wins, as in KQL's ``case()``.
EVIDENCE_ARMS: tuple[EvidenceArm, ...] = (
    EvidenceArm("Shell Spawned", (
        "cmd.exe", "powershell.exe", "pwsh.exe", "wscript.exe", "cscript.exe", "mshta.exe")),
    EvidenceArm("Download/C2 Tool", (
        "certutil.exe", "bitsadmin.exe", "curl.exe", "wget.exe", "nc.exe", "ncat.exe")),
    EvidenceArm("Reconnaissance", (
        "whoami.exe", "ipconfig.exe", "systeminfo.exe", "nltest.exe", "net.exe", "net1.exe",
        "tasklist.exe", "quser.exe")),
    EvidenceArm("Persistence Attempt", ("schtasks.exe", "at.exe", "sc.exe", "reg.exe")),
)
#: The ``case()`` default: children in the list that no arm names (rundll32, regsvr32, ...).
FALLBACK_LABEL = "Suspicious Child"
LABELS: tuple[str, ...] = (*(arm.label for arm in EVIDENCE_ARMS), FALLBACK_LABEL)

PROJECTED_COLUMNS: tuple[str, ...] = (
    "Timestamp", "DeviceName", "AccountName", "FileName", "ProcessCommandLine",
    "InitiatingProcessFileName", "InitiatingProcessCommandLine",
    "InitiatingProcessParentFileName", "ExploitEvidence", "SHA256",
)
TIME_COLUMN = "Timestamp"
TABLE = "DeviceProcessEvents"


def _fold(name: str | None) -> str | None:
    # KQL's in~ is whole-string, case-insensitive equality: no trimming, no wildcards.
    return None if name is None else name.lower()


_PARENTS = frozenset(n.lower() for n in WEB_SERVER_PARENTS)
_CHILDREN = frozenset(n.lower() for n in SUSPICIOUS_CHILDREN)
_ARMS = tuple((frozenset(c.lower() for c in arm.children), arm.label) for arm in EVIDENCE_ARMS)


def is_match(parent: str | None, child: str | None) -> bool:
    """Whether the rule's two ``in~`` filters keep this parent/child pair."""
    return _fold(parent) in _PARENTS and _fold(child) in _CHILDREN


def evidence(child: str | None) -> str:
    """The ExploitEvidence label the KQL ``case()`` gives a child image name."""
    folded = _fold(child)
    for names, label in _ARMS:
        if folded in names:
            return label
    return FALLBACK_LABEL


def classify(parent: str | None, child: str | None) -> str | None:
    """The label the rule gives a process event, or None when the rule does not match it."""
    return evidence(child) if is_match(parent, child) else None


# --- KQL rendering -------------------------------------------------------------------------


def kql_list(names: Iterable[str], indent: str = "        ", per_line: int = 6) -> str:
    """*names* as KQL string literals, *per_line* to a line (the lists of an ``in~ (...)``)."""
    items = [repr_kql(n) for n in names]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join(indent + line for line in lines)


def process_rule_body(time_filter: str, parent_filter: str, children: Iterable[str],
                      arms: Iterable[EvidenceArm]) -> str:
    """A process-tree rule over DeviceProcessEvents: parent filter, child list, labels.

    Shared by the seed rule and its Linux sibling (:mod:`linux_detection`), so both label
    and project their findings the same way.
    """
    case_arms = "\n".join(
        f"    FileName in~ ({', '.join(repr_kql(c) for c in arm.children)}), "
        f"{repr_kql(arm.label)},"
        for arm in arms
    )
    # The lists are written inline rather than as `let … = dynamic([...])`: the same
    # semantics, and duckdb-kql turns an inline `in~ (...)` into a plain SQL IN list, which
    # makes offline hunts over millions of rows markedly faster (benchmarks/).
    return (
        f"{TABLE}\n"
        + f"| where {time_filter}\n"
        + f"| where {parent_filter}\n"
        + "| where FileName in~ (\n"
        + kql_list(children)
        + ")\n| extend ExploitEvidence = case(\n"
        + case_arms
        + f"\n    {repr_kql(FALLBACK_LABEL)})\n"
        + "| project " + ", ".join(PROJECTED_COLUMNS) + "\n"
        + f"| sort by {TIME_COLUMN} desc\n"
    )


def _body(time_filter: str) -> str:
    parents = "InitiatingProcessFileName in~ (\n" + kql_list(WEB_SERVER_PARENTS) + ")"
    return process_rule_body(time_filter, parents, SUSPICIOUS_CHILDREN, EVIDENCE_ARMS)


def repr_kql(value: str) -> str:
    """A KQL string literal for *value*; quotes, backslashes and newlines cannot escape it."""
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def rule_query() -> str:
    """The scheduled rule's query: the source document's KQL, with its 24 h lookback.

    The trailing column only feeds the FileHash entity mapping, which needs an Algorithm
    column; the source document's ten columns keep their order in front of it.
    """
    return _body(f"{TIME_COLUMN} > ago(24h)") + '| extend FileHashAlgorithm = "SHA256"\n'



def hunting_query() -> str:
    """The hunting query: the same logic over a caller-chosen window (start, end].

    ``{{StartTimeISO}}``/``{{EndTimeISO}}`` are the Sentinel hunting placeholders; the
    start is exclusive like ``> ago()`` and the end inclusive like ``now()``, so windows
    that share a boundary never return the same row twice.
    """
    return (
        "let starttime = todatetime('{{StartTimeISO}}');\n"
        "let endtime = todatetime('{{EndTimeISO}}');\n"
        + _body(f"{TIME_COLUMN} > starttime and {TIME_COLUMN} <= endtime")
    )
