"""Dates of birth as councils' systems really write them.

A clerk's extract carries the date in the format the mapping states, but also
the corruptions every linkage tool meets: the separators lost (``12051980``),
the year cut to two digits (``12/05/80``), day and month swapped by a system
that writes dates the American way (``05/25/1980``). Each is repaired only
when the repair is unambiguous: a swapped reading is tried only when the stated
reading is not a real date, so ``05/06/1980`` stays the 5th of June. Anything
else is refused with a reason code, never guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

from connectors._errors import InvalidIdentifier
from connectors._fast_strptime import strptime

__all__ = ["EARLIEST_BIRTH_YEAR", "normalise_date_of_birth"]

EARLIEST_BIRTH_YEAR = 1900
_DIRECTIVE = re.compile(r"%.")
#: A value this long is no date in any format; refusing it early bounds strptime's work.
_MAX_DATE_CHARS = 40


def _without_separators(fmt: str) -> str:
    """``%d/%m/%Y`` -> ``%d%m%Y``: the stated format with its punctuation lost."""
    return "".join(_DIRECTIVE.findall(fmt))


def _swapped(fmt: str) -> str:
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def _readings(value: str, formats: Sequence[str]) -> Iterator[tuple[str, bool]]:
    """(format, two-digit year) pairs in the order they are trusted."""
    # Without separators only fixed widths are unambiguous: strptime would read
    # 311280 as 3 January 1280, and 1251980 could be 12 May or 1 December.
    compact = len(value) if value.isdigit() else 0
    for fmt in formats:
        yield fmt, False
        if compact == 8 and _without_separators(fmt) != fmt:
            yield _without_separators(fmt), False
        if "%Y" in fmt:
            short = fmt.replace("%Y", "%y")
            yield short, True
            if compact == 6 and _without_separators(short) != short:
                yield _without_separators(short), True


def _parse(value: str, fmt: str, two_digit: bool, pivot: int) -> date | None:
    try:
        parsed = strptime(value, fmt).date()
    except ValueError:
        return None
    if not two_digit:
        return parsed
    # strptime's own pivot (69) would put a 1950s birth in 2050: use the stated one.
    short = parsed.year % 100
    return parsed.replace(year=(2000 if short <= pivot else 1900) + short)


def _first(value: str, formats: Sequence[str], pivot: int) -> date | None:
    for fmt, two_digit in _readings(value, formats):
        parsed = _parse(value, fmt, two_digit, pivot)
        if parsed is not None:
            return parsed
    return None


def normalise_date_of_birth(
    value: str,
    date_format: str | Sequence[str],
    *,
    today: date | None = None,
    two_digit_year_pivot: int | None = None,
) -> date:
    """A date of birth in one of the stated formats, or a common corruption of one.

    Args:
        value: the source text.
        date_format: one ``strptime`` format or a list, tried in order.
        today: the day a birth cannot be after (default None: today, UTC).
        two_digit_year_pivot: a two-digit year ``yy`` is 20yy when ``yy`` is at
            most this, else 19yy (default None: the current year's last two
            digits, so no birth lands in the future).

    Raises:
        InvalidIdentifier: ``bad-format`` (no reading is a real date),
            ``in-future`` or ``too-early`` (before 1900).
    """
    today = today or datetime.now(UTC).date()
    formats = (date_format,) if isinstance(date_format, str) else tuple(date_format)
    pivot = today.year % 100 if two_digit_year_pivot is None else two_digit_year_pivot
    text = value.strip()
    if len(text) > _MAX_DATE_CHARS:
        raise InvalidIdentifier("date_of_birth", "bad-format")
    parsed = _first(text, formats, pivot)
    if parsed is None:  # only when no stated reading is a real date: day and month swapped
        parsed = _first(text, [_swapped(f) for f in formats if "%d" in f and "%m" in f], pivot)
    if parsed is None:
        raise InvalidIdentifier("date_of_birth", "bad-format")
    if parsed > today:
        raise InvalidIdentifier("date_of_birth", "in-future")
    if parsed.year < EARLIEST_BIRTH_YEAR:
        raise InvalidIdentifier("date_of_birth", "too-early")
    return parsed
