"""Source times are bounded where they are parsed (issue 11, items 1 and 3).

A future-dated consent record must not outrank later withdrawals, and a time
no datetime can hold must be a per-row refusal, never an OverflowError.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import InvalidIdentifier, TimeBounds, parse_timestamp, time_bound_reason
from connectors._mapping import ColumnOrFixed

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ISO = ColumnOrFixed(column="at")
BOUNDS = TimeBounds()


def _refusal(value: str, field: str = "occurred_at", spec: ColumnOrFixed = ISO) -> str:
    with pytest.raises(InvalidIdentifier) as caught:
        parse_timestamp(value, spec, field, published_at=NOW, bounds=BOUNDS)
    assert caught.value.field == field
    assert value not in str(caught.value)
    return caught.value.code


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("0001-01-01T00:00:00+01:00", "out-of-range"),  # was an OverflowError failing the file
        ("9999-12-31", "out-of-range"),
        ("9999-12-31T23:59:59-05:00", "out-of-range"),
        ("2062-09-01T10:00:00", "occurred-in-future"),
        ("1899-12-31", "occurred-before-floor"),
        ("next Tuesday", "bad-format"),
        ("2" * 10_000, "bad-format"),
    ],
)
def test_out_of_bounds_event_times_are_refused(value, code):
    assert _refusal(value) == code


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("2062-09-01T10:00:00", "recorded-in-future"),  # a clerk's 2062 for 2026
        ("2026-11-23T12:05:01", "recorded-in-future"),  # one second past the skew
        ("2001-01-01", "recorded-before-floor"),  # before the federation's start
    ],
)
def test_out_of_bounds_consent_times_are_refused(value, code):
    assert _refusal(value, "recorded_at") == code


def test_times_within_the_skew_and_above_the_floors_pass():
    assert parse_timestamp(
        "2026-11-23T12:05:00", ISO, "recorded_at", published_at=NOW, bounds=BOUNDS
    ) == NOW + timedelta(minutes=5)
    assert parse_timestamp("1900-01-01", ISO, "occurred_at", published_at=NOW, bounds=BOUNDS)
    assert (
        parse_timestamp(
            "2026-11-23T13:00:00+01:00", ISO, "occurred_at", published_at=NOW, bounds=BOUNDS
        )
        == NOW
    )


def test_the_bounds_are_configurable():
    tight = TimeBounds(
        max_skew=timedelta(0),
        occurred_at_floor=datetime(2020, 1, 1, tzinfo=UTC),
        recorded_at_floor=datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert time_bound_reason("occurred", NOW + timedelta(seconds=1), NOW, tight) == (
        "occurred-in-future"
    )
    assert time_bound_reason("occurred", datetime(2019, 1, 1, tzinfo=UTC), NOW, tight) == (
        "occurred-before-floor"
    )
    assert time_bound_reason("recorded", datetime(2024, 12, 31, tzinfo=UTC), NOW, tight) == (
        "recorded-before-floor"
    )
    assert time_bound_reason("recorded", NOW, NOW, tight) is None


def test_a_strptime_format_is_bounded_too():
    spec = ColumnOrFixed(column="at", format="%d/%m/%Y")
    assert _refusal("31/12/9999", spec=spec) == "out-of-range"
    assert parse_timestamp("01/11/2026", spec, "occurred_at", published_at=NOW, bounds=BOUNDS)


@given(st.text(max_size=40))
@settings(max_examples=300)
def test_no_text_raises_anything_but_a_refusal(text):
    try:
        parse_timestamp(text, ISO, "occurred_at", published_at=NOW, bounds=BOUNDS)
    except InvalidIdentifier:
        pass
