"""Durations as users and Sentinel write them: ``24h``, ``7d``, ``30m``, ``PT36H``, ``P1DT2H``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import InputError

_SHORT = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)
_ISO = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$", re.IGNORECASE
)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``24h``/``7d``/``PT36H``/``P1DT2H`` to a timedelta; InputError on anything else."""
    if not isinstance(text, str):
        raise InputError(f"not a duration: {text!r} (use e.g. 24h, 7d, PT36H)")
    try:
        short = _SHORT.match(text)
        if short:
            return timedelta(**{_UNITS[short[2].lower()]: int(short[1])})
        iso = _ISO.match(text.strip())
        if iso and text.strip().upper() not in ("P", "PT") and any(iso.groupdict().values()):
            parts = {k: int(v) for k, v in iso.groupdict().items() if v}
            return timedelta(
                days=parts.get("d", 0), hours=parts.get("h", 0),
                minutes=parts.get("m", 0), seconds=parts.get("s", 0),
            )
    except OverflowError:
        raise InputError(f"duration too long: {text!r}") from None
    raise InputError(f"not a duration: {text!r} (use e.g. 24h, 7d, PT36H)")


def to_iso(delta: timedelta) -> str:
    """A timedelta as the ISO 8601 duration Sentinel's API uses (``PT1H``, ``P1D``, ``P1DT2H``)."""
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else ("" if days else "T0S"))


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant (``2026-11-27T10:00:00Z``) as an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise InputError(f"not a date and time: {text!r} (use ISO 8601, e.g. "
                         "2026-11-27T10:00:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_seconds(moment: datetime) -> str:
    """:func:`iso_z` without a fraction when it is zero (``2026-11-27T10:00:00Z``), for messages."""
    return iso_z(moment).replace(".000000Z", "Z")


def iso_z(moment: datetime) -> str:
    """UTC with microseconds and a ``Z``: fixed width, so text order is time order."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
