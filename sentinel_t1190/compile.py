"""The KQL that actually runs: a rule's query as deployed, and its hunting query.

One code path for every consumer (deploy, export, status, local and live hunts), so what is
hunted, tested and deployed is the same text. Exclusions (tuning) are compiled in here.
"""

from __future__ import annotations

from .rules import Rule


def deployed_query(rule: Rule) -> str:
    """The query text sent to Sentinel (and exported) for *rule*."""
    return rule.query


def hunting_query(rule: Rule) -> str | None:
    """The hunting query text (with ``{{StartTimeISO}}``/``{{EndTimeISO}}``), or None."""
    return rule.hunting.query if rule.hunting is not None else None
