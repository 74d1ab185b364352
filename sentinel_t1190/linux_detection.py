"""The T1190 web-server child-process detection for Linux (and macOS): the one source of truth.

The seed rule (:mod:`detection`) names Windows images (``w3wp.exe``, ``cmd.exe``); on Linux
the same attack is ``java`` → ``bash -c {echo,…}|{base64,-d}|{bash,-i}`` (Log4Shell on
Tomcat) or ``php-fpm8.1`` → ``sh``, and the seed never sees it. This sibling rule keeps the
seed verbatim and covers Unix image names with the seed's ExploitEvidence labels. The lists
live here; the KQL in ``analytics/`` and ``hunting/`` is rendered from them by
``scripts/render_pack.py`` and :func:`classify` applies the same logic in Python.

macOS is covered by the same rule: Defender for Endpoint reports macOS processes in the same
table with the same bare image names (``zsh``, ``curl``, ``node``), and a device's platform
is not in ``DeviceProcessEvents``. Developer Macs running local servers are its expected
false positives (see ``analytics/exclusions/linux_web_server_child_process.yaml``).
"""

from __future__ import annotations

import re

from .detection import (
    FALLBACK_LABEL,
    EvidenceArm,
    kql_list,
    process_rule_body,
    repr_kql,
)

RULE_ID = "de708d3e-acec-4d4f-9549-1275e8105f64"
HUNTING_ID = "b8b6c3fa-7e71-45d0-a004-abebae6a3dcb"

#: Web servers and application runtimes, as Linux/macOS image names (no ``.exe``).
WEB_SERVER_PARENTS: tuple[str, ...] = (
    "java", "node", "nodejs", "nginx", "apache2", "httpd", "lighttpd", "caddy", "php",
    "php-cgi", "php-fpm", "python", "python2", "python3", "ruby", "perl", "tomcat",
    "gunicorn", "uwsgi", "dotnet", "puma", "unicorn", "deno", "bun",
)
#: Runtimes whose image carries a version on Debian/Ubuntu/RHEL (``php-fpm8.1``,
#: ``python3.11``, ``tomcat9``): the family name followed by digits and dots.
VERSIONED_PARENT_FAMILIES: tuple[str, ...] = (
    "php-fpm", "php", "python", "tomcat", "ruby", "perl", "node",
)
VERSIONED_PARENT_REGEX = "(?i)^(" + "|".join(VERSIONED_PARENT_FAMILIES) + ")[0-9][0-9.]*$"

#: In order: the first matching arm wins, as in KQL's ``case()``. Labels are the seed's.
EVIDENCE_ARMS: tuple[EvidenceArm, ...] = (
    EvidenceArm("Shell Spawned", (
        "sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "ash",
        "busybox")),
    EvidenceArm("Download/C2 Tool", (
        "curl", "wget", "nc", "ncat", "netcat", "nc.openbsd", "nc.traditional", "socat",
        "telnet", "tftp")),
    EvidenceArm("Reconnaissance", (
        "id", "whoami", "uname", "hostname", "ifconfig", "ip", "netstat", "ss", "ps",
        "groups", "w", "who", "last", "getent", "lsb_release", "hostnamectl", "arp")),
    EvidenceArm("Persistence Attempt", (
        "crontab", "at", "systemctl", "useradd", "usermod", "adduser", "passwd", "chpasswd",
        "ssh-keygen", "update-rc.d", "chkconfig")),
)
#: Children no arm names, labelled with the seed's fallback: payload staging and detaching.
UNLABELLED_CHILDREN: tuple[str, ...] = (
    "base64", "chmod", "chattr", "mkfifo", "setsid", "nohup", "xxd",
)
SUSPICIOUS_CHILDREN: tuple[str, ...] = (
    *(c for arm in EVIDENCE_ARMS for c in arm.children), *UNLABELLED_CHILDREN,
)

_PARENTS = frozenset(n.lower() for n in WEB_SERVER_PARENTS)
_VERSIONED = re.compile(VERSIONED_PARENT_REGEX)
_CHILDREN = frozenset(n.lower() for n in SUSPICIOUS_CHILDREN)
_ARMS = tuple((frozenset(c.lower() for c in arm.children), arm.label) for arm in EVIDENCE_ARMS)


def is_web_server(parent: str | None) -> bool:
    """Whether *parent* passes the rule's parent filter (``in~`` list or versioned family)."""
    if parent is None:
        return False
    # RE2's `$` is the end of the text only; Python's also matches before a final newline.
    return parent.lower() in _PARENTS or _VERSIONED.fullmatch(parent) is not None


def classify(parent: str | None, child: str | None) -> str | None:
    """The label the rule gives a process event, or None when the rule does not match it."""
    if not is_web_server(parent) or child is None or child.lower() not in _CHILDREN:
        return None
    folded = child.lower()
    return next((label for names, label in _ARMS if folded in names), FALLBACK_LABEL)


# --- KQL rendering -------------------------------------------------------------------------


def _body(time_filter: str) -> str:
    parents = (
        "InitiatingProcessFileName in~ (\n" + kql_list(WEB_SERVER_PARENTS) + ")\n"
        f"    or InitiatingProcessFileName matches regex {repr_kql(VERSIONED_PARENT_REGEX)}"
    )
    return process_rule_body(time_filter, parents, SUSPICIOUS_CHILDREN, EVIDENCE_ARMS)


def rule_query() -> str:
    """The scheduled rule's query: the last hour, matching its 1 h period."""
    return _body("Timestamp > ago(1h)") + '| extend FileHashAlgorithm = "SHA256"\n'


def hunting_query() -> str:
    """The hunting query: the same logic over a caller-chosen window (start, end]."""
    return (
        "let starttime = todatetime('{{StartTimeISO}}');\n"
        "let endtime = todatetime('{{EndTimeISO}}');\n"
        + _body("Timestamp > starttime and Timestamp <= endtime")
    )
