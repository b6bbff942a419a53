"""``datetime.strptime`` for the fixed-width numeric dates every council extract uses.

``strptime`` is a regular-expression engine written in Python: about 20 us a
call, and the connector makes two or more per row (the event's time, the date
of birth and its repair readings). Extracts almost always write dates at full
width (``05/06/1980``, ``2026-03-01``, ``2026-03-01 09:30:00``), and for those
the answer is plain arithmetic.

``strptime(value, fmt)`` returns exactly what ``datetime.strptime`` returns,
or raises ``ValueError`` exactly when it does. It computes the answer itself
only when ``fmt`` uses ``%d %m %Y %y %H %M %S`` (each at most once, with day,
month and one year), no ``%%`` and no whitespace other than spaces, and
``value`` has every field at full width in ASCII digits and every other
character equal to the format's. For such a value ``strptime``'s own regular
expression can only match with every field at full width (any shorter field
leaves characters unconverted), so the result is the fields' numbers, or
``ValueError`` for a number out of its directive's range or an impossible date.
Any other value or format goes to ``datetime.strptime`` itself.
``tests/connectors/test_fast_strptime.py`` compares the two on many inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

__all__ = ["strptime"]

_WIDTH = {"d": 2, "m": 2, "Y": 4, "y": 2, "H": 2, "M": 2, "S": 2}
#: Inclusive ranges strptime's patterns accept for a full-width field.
_RANGE = {"d": (1, 31), "m": (1, 12), "y": (0, 99), "H": (0, 23), "M": (0, 59), "S": (0, 61)}
_FORMATS_CACHED = 64  # a connector has a few mappings, each with a few formats
#: Recent answers kept: dates and times, a few MB at most, in the connector's
#: memory only, which holds the rows they came from anyway.
_VALUES_CACHED = 1 << 15


@dataclass(frozen=True, slots=True)
class _Layout:
    """A format compiled for full-width values: one ASCII-digit group per field."""

    pattern: re.Pattern[str]
    fields: tuple[str, ...]


@lru_cache(maxsize=_FORMATS_CACHED)
def _layout(fmt: str) -> _Layout | None:
    """The format's layout, or None when only ``datetime.strptime`` may read it."""
    parts: list[str] = []
    fields: list[str] = []
    index = 0
    while index < len(fmt):
        char = fmt[index]
        if char == "%":
            directive = fmt[index + 1 : index + 2]
            if directive not in _WIDTH or directive in fields:
                return None
            fields.append(directive)
            parts.append(f"([0-9]{{{_WIDTH[directive]}}})")
            index += 2
            continue
        if char.isspace() and char != " ":
            return None
        parts.append(re.escape(char))
        index += 1
    if "d" not in fields or "m" not in fields or ("Y" in fields) == ("y" in fields):
        return None
    return _Layout(re.compile("".join(parts)), tuple(fields))


def strptime(value: str, fmt: str) -> datetime:
    """``datetime.strptime(value, fmt)``, computed directly for full-width numeric dates.

    Values repeat (a file's event dates span weeks; a person's rows share a
    date of birth), so the last ``_VALUES_CACHED`` answers are kept; only
    answers, never failures.

    Raises:
        ValueError: exactly when ``datetime.strptime`` does.
    """
    return _strptime(value, fmt)


@lru_cache(maxsize=_VALUES_CACHED)
def _strptime(value: str, fmt: str) -> datetime:
    layout = _layout(fmt)
    found = None if layout is None else layout.pattern.fullmatch(value)
    if layout is None or found is None:
        return datetime.strptime(value, fmt)  # noqa: DTZ007 - naive, as the caller expects
    numbers = dict(zip(layout.fields, map(int, found.groups()), strict=True))
    for name, number in numbers.items():
        low, high = _RANGE.get(name, (0, 9999))
        if not low <= number <= high:
            raise ValueError("time data does not match format")
    if "y" in numbers:
        short = numbers["y"]
        year = short + (2000 if short <= 68 else 1900)  # strptime's own pivot
    else:
        year = numbers["Y"]
    return datetime(  # noqa: DTZ001 - naive, as strptime returns it
        year,
        numbers["m"],
        numbers["d"],
        numbers.get("H", 0),
        numbers.get("M", 0),
        numbers.get("S", 0),
    )
