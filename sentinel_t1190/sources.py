"""What each hunt source holds: Defender XDR advanced hunting's tables and retention."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from .errors import InputError
from .rules import Rule

#: Advanced hunting keeps 30 days of data.
DEFENDER_RETENTION = timedelta(days=30)
#: Defender XDR's own advanced hunting tables (learn.microsoft.com, advanced hunting schema
#: reference). Log Analytics tables such as W3CIISLog or CommonSecurityLog are not among them.
DEFENDER_TABLES = frozenset({
    "AlertEvidence", "AlertInfo", "BehaviorEntities", "BehaviorInfo", "CloudAppEvents",
    "CloudAuditEvents", "DeviceEvents", "DeviceFileCertificateInfo", "DeviceFileEvents",
    "DeviceImageLoadEvents", "DeviceInfo", "DeviceLogonEvents", "DeviceNetworkEvents",
    "DeviceNetworkInfo", "DeviceProcessEvents", "DeviceRegistryEvents", "EmailAttachmentInfo",
    "EmailEvents", "EmailPostDeliveryEvents", "EmailUrlInfo", "EntraIdSignInEvents",
    "EntraIdSpnSignInEvents", "ExposureGraphEdges", "ExposureGraphNodes",
    "IdentityDirectoryEvents", "IdentityInfo", "IdentityLogonEvents", "IdentityQueryEvents",
    "UrlClickEvents",
})


def defender_gaps(rule: Rule) -> list[str]:
    """The tables *rule* reads that Defender XDR advanced hunting does not have."""
    return [t for t in rule.tables if t not in DEFENDER_TABLES]


def check_defender_tables(rules: Iterable[Rule]) -> None:
    """InputError naming every chosen rule that reads a table Defender XDR lacks."""
    problems = [f"{r.id} reads {', '.join(gaps)}" for r in rules if (gaps := defender_gaps(r))]
    if problems:
        raise InputError("Defender XDR advanced hunting has no such table: "
                         + "; ".join(problems) + " (hunt those rules with --workspace-id)")
