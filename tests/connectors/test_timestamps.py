"""Source times are bounded where they are parsed (issue 11, items 1 and 3).

A future-dated consent record must not outrank later withdrawals, and a time
no datetime can hold must be a per-row refusal, never an OverflowError.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

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


LONDON = ZoneInfo("Europe/London")


def _at(value: str, zone: ZoneInfo = LONDON, spec: ColumnOrFixed = ISO) -> datetime:
    return parse_timestamp(value, spec, "occurred_at", published_at=NOW, bounds=BOUNDS, zone=zone)


def test_a_naive_summer_time_is_london_wall_clock_not_utc():
    """Read as UTC, a clerk's 09:00 in July became 10:00 BST: an hour late."""
    assert _at("2026-07-15T09:00:00") == datetime(2026, 7, 15, 8, 0, tzinfo=UTC)
    assert _at("2026-01-15T09:00:00") == datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    # A date alone is London's midnight: in summer, 23:00 UTC the day before.
    day = ColumnOrFixed(column="at", format="%d/%m/%Y")
    assert _at("15/07/2026", spec=day) == datetime(2026, 7, 14, 23, 0, tzinfo=UTC)
    assert parse_timestamp("2026-07-15T09:00:00", ISO, "occurred_at") == datetime(
        2026, 7, 15, 8, 0, tzinfo=UTC
    ), "Europe/London is the default"


def test_a_time_with_an_offset_ignores_the_zone():
    assert _at("2026-07-15T09:00:00+00:00") == datetime(2026, 7, 15, 9, 0, tzinfo=UTC)
    assert _at("2026-07-15T09:00:00Z", zone=ZoneInfo("Asia/Tokyo")) == datetime(
        2026, 7, 15, 9, 0, tzinfo=UTC
    )


def test_the_repeated_autumn_hour_is_its_first_bst_occurrence():
    """01:30 on 25 October 2026 happens twice (BST, then GMT): the first is taken."""
    assert _at("2026-10-25T01:30:00") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert _at("2026-10-25T00:59:59") == datetime(2026, 10, 24, 23, 59, 59, tzinfo=UTC)
    assert _at("2026-10-25T02:00:00") == datetime(2026, 10, 25, 2, 0, tzinfo=UTC)


def test_the_skipped_spring_hour_is_read_as_gmt_not_refused():
    """01:30 on 29 March 2026 never happens on a London clock: read with the offset
    before the change (GMT), as a clock not yet put forward would show it."""
    assert _at("2026-03-29T01:30:00") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert _at("2026-03-29T02:30:00") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert _at("2026-03-29T00:59:00") == datetime(2026, 3, 29, 0, 59, tzinfo=UTC)


def test_the_zone_is_applied_before_the_bounds():
    """A naive time 30 minutes 'ahead' in UTC terms is 30 minutes behind in BST."""
    summer = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
    assert parse_timestamp("2026-07-15T12:30:00", ISO, "recorded_at", published_at=summer,
                           bounds=BOUNDS) == summer - timedelta(minutes=30)  # fmt: skip
    with pytest.raises(InvalidIdentifier) as caught:
        parse_timestamp("2026-07-15T13:30:00", ISO, "recorded_at", published_at=summer,
                        bounds=BOUNDS, zone=ZoneInfo("UTC"))  # fmt: skip
    assert caught.value.code == "recorded-in-future"
