"""The KQL that actually runs: a rule's query as deployed, and its hunting query.

One code path for every consumer (deploy, export, status, local and live hunts, ``test``),
so what is hunted, tested and deployed is the same text. The rule's exclusions
(``analytics/exclusions/<stem>.yaml``, see :mod:`exclusions`) are compiled in here: active
entries become ``| where not(...)`` lines right after the table's time filter; entries past
their ``expires`` day are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime

from .rules import Rule


def _today(today: date | None) -> date:
    return today or datetime.now(UTC).date()


def deployed_query(rule: Rule, *, today: date | None = None) -> str:
    """The query text sent to Sentinel (and exported) for *rule*, exclusions included.

    *today* decides which exclusions have expired (default: the current UTC date).
    """
    from .exclusions import compile_into

    return compile_into(rule, rule.query, _today(today))


def hunting_query(rule: Rule, *, today: date | None = None,
                  fill: Mapping[str, str] | None = None) -> str | None:
    """The hunting query text (with ``{{StartTimeISO}}``/``{{EndTimeISO}}``), or None.

    *fill* replaces placeholders with values in the query as written, before the exclusions
    are compiled in: an exclusion value that happens to hold ``{{StartTimeISO}}`` stays that
    literal text.
    """
    from .exclusions import compile_into

    if rule.hunting is None:
        return None
    query = rule.hunting.query
    for placeholder, value in (fill or {}).items():
        query = query.replace(placeholder, value)
    return compile_into(rule, query, _today(today))
