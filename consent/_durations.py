"""Durations as agreements write them: ``30d``, ``72h``, ``2w`` or ISO 8601 ``P30D``.

Windows and retention periods are legal commitments, so a typo must be refused,
not guessed: only these two forms are accepted, and zero or negative is invalid.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["format_duration", "parse_duration"]

_SHORT = re.compile(r"^([0-9]+)\s*([smhdw])$")
_ISO = re.compile(
    r"^P(?:([0-9]+)W)?(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)S)?)?$"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: The longest window or retention an agreement may state: a century, beyond any
#: retention schedule, and far enough inside ``datetime``'s range that the broker
#: can add it to an event's time without ``OverflowError``.
MAX_DURATION = timedelta(days=36525)


def parse_duration(text: str) -> timedelta:
    """Parse ``<n><s|m|h|d|w>`` or an ISO 8601 duration without years or months.

    Raises:
        ValueError: not one of the two forms (ASCII digits), not positive, or
            longer than ``MAX_DURATION``.
    """
    value = text.strip()
    short = _SHORT.match(value)
    if short:
        seconds = int(short.group(1)) * _UNIT_SECONDS[short.group(2)]
    else:
        iso = _ISO.match(value.upper())
        if not iso or value.upper() in ("P", "PT"):
            raise ValueError(f"'{text}' is not a duration like 30d, 72h, 2w or P30D")
        weeks, days, hours, minutes, secs = (int(g) if g else 0 for g in iso.groups())
        seconds = (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + secs
    if seconds <= 0:
        raise ValueError(f"duration '{text}' must be positive")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration '{text}' is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest ``<n><unit>`` form that ``parse_duration`` reads back exactly."""
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"
