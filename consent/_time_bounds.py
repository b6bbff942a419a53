"""Bounds on the times a source supplies: nothing after publication, nothing before a floor.

A council's clerk who types 2062 for 2026 must not produce a consent record
that outranks every later withdrawal, and an ``occurred_at`` of 9999-12-31 must
not reach code that adds a window to it. Both are refused here, once, by a pure
check that the connector calls before it publishes (and quarantines on) and the
broker calls again after it verifies a signature (and rejects to ``fed.rejected``
on): ``check_times``. A time may be late by at most ``skew`` against the
record's own ``published_at``, which the broker in turn bounds by its clock.

Only differences between datetimes are computed, never ``time + skew``, so no
input, however extreme, raises ``OverflowError``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consent._errors import TimeOutOfBounds

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_OCCURRED_FLOOR",
    "DEFAULT_RECORDED_FLOOR",
    "check_times",
    "time_problem",
]

DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
"""How far a source's time may run ahead of the record's ``published_at``."""

DEFAULT_OCCURRED_FLOOR = datetime(1900, 1, 1, tzinfo=UTC)
"""Earliest ``occurred_at`` accepted (a birth or tenancy can be old; not older than this)."""

DEFAULT_RECORDED_FLOOR = datetime(2020, 1, 1, tzinfo=UTC)
"""Earliest ``recorded_at`` when the directory names no federation start."""


def _problem(
    name: str, value: datetime, published_at: datetime, skew: timedelta, floor: datetime
) -> str | None:
    if value.tzinfo is None or value.utcoffset() is None:
        return "time-without-zone"
    if value - published_at > skew:
        return f"{name}-in-future"
    if value < floor:
        return f"{name}-before-floor"
    return None


def time_problem(
    *,
    published_at: datetime,
    recorded_at: datetime | None = None,
    occurred_at: datetime | None = None,
    skew: timedelta = DEFAULT_CLOCK_SKEW,
    recorded_floor: datetime = DEFAULT_RECORDED_FLOOR,
    occurred_floor: datetime = DEFAULT_OCCURRED_FLOOR,
) -> str | None:
    """The reason code of the first time out of bounds, or None when all are within.

    Same arguments as ``check_times``; for callers that want a value, not an exception.
    """
    if published_at.tzinfo is None or published_at.utcoffset() is None:
        return "time-without-zone"
    if recorded_at is not None:
        found = _problem("recorded", recorded_at, published_at, skew, recorded_floor)
        if found is not None:
            return found
    if occurred_at is not None:
        return _problem("occurred", occurred_at, published_at, skew, occurred_floor)
    return None


def check_times(
    *,
    published_at: datetime,
    recorded_at: datetime | None = None,
    occurred_at: datetime | None = None,
    skew: timedelta = DEFAULT_CLOCK_SKEW,
    recorded_floor: datetime = DEFAULT_RECORDED_FLOOR,
    occurred_floor: datetime = DEFAULT_OCCURRED_FLOOR,
) -> None:
    """Refuse a consent record's ``recorded_at`` or an event's ``occurred_at`` out of bounds.

    Call it at the connector before publishing (quarantine on refusal) and at the
    broker after the signature check (reject on refusal). Pass
    ``recorded_floor=directory.federation_start`` where the directory names one.

    Args:
        published_at: the record's publication time (timezone-aware).
        recorded_at: a consent record's ``recorded_at`` (default None: not checked).
        occurred_at: an event's ``occurred_at`` (default None: not checked).
        skew: allowed lead over ``published_at`` (default 5 minutes).
        recorded_floor: earliest ``recorded_at`` (default 2020-01-01 UTC).
        occurred_floor: earliest ``occurred_at`` (default 1900-01-01 UTC).

    Raises:
        TimeOutOfBounds: reason ``recorded-in-future``, ``recorded-before-floor``,
            ``occurred-in-future``, ``occurred-before-floor`` or ``time-without-zone``.
    """
    reason = time_problem(
        published_at=published_at,
        recorded_at=recorded_at,
        occurred_at=occurred_at,
        skew=skew,
        recorded_floor=recorded_floor,
        occurred_floor=occurred_floor,
    )
    if reason is not None:
        field = reason.split("-", 1)[0]
        raise TimeOutOfBounds(f"{field} time out of bounds ({reason})", reason=reason)
