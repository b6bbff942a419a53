"""Source times, parsed and bounded before anything orders or stores by them.

A time a source supplies decides consent order and retention downstream, so it
is checked here, at the row: a clerk's 2062 for 2026 would otherwise make a
consent record outrank every later withdrawal, and 9999-12-31 or
``0001-01-01T00:00:00+01:00`` overflow date arithmetic further on (an
``OverflowError`` that once failed a whole file). Each is a per-row refusal with
a reason code. The bounds themselves are ``consent.time_problem``, the check
the broker repeats after verifying a signature, so the connector's quarantine
and ``fed.rejected`` give the same reason codes.

A time without an offset is wall-clock time where the source system runs (the
mapping's ``timezone``, default Europe/London), not UTC: read as UTC, a summer
"09:00" became 10:00 BST, an hour late, and moved events across a window's
edge. Around a clock change one rule holds, Python's ``fold=0``: a local time
is read with the offset in force *before* the change. So in the repeated
autumn hour (01:00-02:00 happens twice) the first, BST, occurrence is taken;
in the skipped spring hour (01:00-02:00 never happens) the time is read as GMT,
which is what a clock not yet put forward would show. Neither is refused: the
row is real, and the hour's doubt is smaller than any window or retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from connectors._errors import InvalidIdentifier
from connectors._fast_strptime import strptime
from connectors._mapping import DEFAULT_TIMEZONE, ColumnOrFixed
from consent import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_OCCURRED_FLOOR,
    DEFAULT_RECORDED_FLOOR,
    time_problem,
)

__all__ = [
    "DEFAULT_MAX_SKEW",
    "DEFAULT_OCCURRED_AT_FLOOR",
    "DEFAULT_RECORDED_AT_FLOOR",
    "TimeBounds",
    "TimeKind",
    "parse_timestamp",
    "time_bound_reason",
]

TimeKind = Literal["occurred", "recorded"]

#: Clocks of a council's systems and its connector may disagree by this much.
DEFAULT_MAX_SKEW = DEFAULT_CLOCK_SKEW
#: Nothing a council records about a living resident happened before this.
DEFAULT_OCCURRED_AT_FLOOR = DEFAULT_OCCURRED_FLOOR
#: The federation's start: no consent under its agreements can be older
#: (consent's default; a federation sets its own in the connector config).
DEFAULT_RECORDED_AT_FLOOR = DEFAULT_RECORDED_FLOOR
_ISO = "iso"
#: Longer than any timestamp format; bounds the parser's work on a poisoned cell.
_MAX_TIMESTAMP_CHARS = 64


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """How far a source time may lie from the time the record is published.

    Args:
        max_skew: how far after publication a time may lie (default 5 minutes).
        occurred_at_floor: the earliest event time (default 1900-01-01 UTC).
        recorded_at_floor: the earliest consent time (default the federation's
            start, ``consent.DEFAULT_RECORDED_FLOOR`` unless configured).
    """

    max_skew: timedelta = DEFAULT_MAX_SKEW
    occurred_at_floor: datetime = DEFAULT_OCCURRED_AT_FLOOR
    recorded_at_floor: datetime = DEFAULT_RECORDED_AT_FLOOR


def time_bound_reason(
    kind: TimeKind, at: datetime, published_at: datetime, bounds: TimeBounds
) -> str | None:
    """The reason code a time is refused for, or None when it is in bounds.

    ``<kind>-in-future`` when ``at`` lies more than the skew after
    ``published_at``; ``<kind>-before-floor`` when it lies before the floor.
    """
    return time_problem(
        published_at=published_at,
        recorded_at=at if kind == "recorded" else None,
        occurred_at=at if kind == "occurred" else None,
        skew=bounds.max_skew,
        recorded_floor=bounds.recorded_at_floor,
        occurred_floor=bounds.occurred_at_floor,
    )


def parse_timestamp(
    value: str | None,
    spec: ColumnOrFixed,
    field: str,
    *,
    published_at: datetime | None = None,
    bounds: TimeBounds | None = None,
    zone: ZoneInfo = DEFAULT_TIMEZONE,
) -> datetime:
    """A source time as aware UTC, within bounds; a naive time is local to ``zone``.

    Args:
        value: the source text (None: missing).
        spec: the mapping entry, whose ``format`` is ``iso`` or a strptime format.
        field: ``occurred_at`` or ``recorded_at``, which names the error.
        published_at: when the record is published; with ``bounds``, the time
            must lie within them (default None: only parsed).
        bounds: see ``TimeBounds`` (default None: not checked).
        zone: where a time without an offset was written (default
            Europe/London; the mapping's ``timezone``). See the module doc for
            the repeated and the skipped hour.

    Raises:
        InvalidIdentifier: ``missing``, ``bad-format``, ``out-of-range`` (no
            datetime can hold it in UTC), or a ``time_bound_reason`` code.
    """
    if value is None:
        raise InvalidIdentifier(field, "missing")
    if len(value) > _MAX_TIMESTAMP_CHARS:
        raise InvalidIdentifier(field, "bad-format")
    # Each refusal is raised after its ``except``: raised inside it, the parser's error
    # (whose text quotes the value) would be chained to it as ``__context__``.
    fmt = spec.format or _ISO
    try:
        parsed: datetime | None = (
            datetime.fromisoformat(value) if fmt == _ISO else strptime(value, fmt)
        )
    except ValueError:
        parsed = None
    if parsed is None:
        raise InvalidIdentifier(field, "bad-format")
    try:
        local = parsed.replace(tzinfo=zone, fold=0) if parsed.tzinfo is None else parsed
        at = local.astimezone(UTC)
        # Downstream adds windows and retention to it: keep a margin from the end of time.
        at + timedelta(days=366 * 200)  # noqa: B018 - the overflow is the check
        in_range = True
    except OverflowError:
        in_range = False
    if not in_range:
        raise InvalidIdentifier(field, "out-of-range")
    if published_at is not None and bounds is not None:
        kind: TimeKind = "recorded" if field == "recorded_at" else "occurred"
        reason = time_bound_reason(kind, at, published_at, bounds)
        if reason is not None:
            raise InvalidIdentifier(field, reason)
    return at
