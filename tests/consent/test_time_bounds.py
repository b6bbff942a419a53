"""Source-supplied times are bounded: not after publication (plus skew), not before a floor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import (
    DEFAULT_CLOCK_SKEW,
    ConsentError,
    TimeOutOfBounds,
    check_times,
    time_problem,
)

PUBLISHED = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def reason(**kwargs):
    with pytest.raises(TimeOutOfBounds) as caught:
        check_times(published_at=PUBLISHED, **kwargs)
    assert isinstance(caught.value, ConsentError)
    assert time_problem(published_at=PUBLISHED, **kwargs) == caught.value.reason
    return caught.value.reason


def test_times_within_bounds_pass():
    check_times(published_at=PUBLISHED)
    check_times(
        published_at=PUBLISHED,
        recorded_at=PUBLISHED + DEFAULT_CLOCK_SKEW,  # exactly the allowed skew
        occurred_at=datetime(1901, 1, 1, tzinfo=UTC),
    )
    assert time_problem(published_at=PUBLISHED, recorded_at=PUBLISHED) is None


def test_the_clerk_who_typed_2062_is_refused_with_a_reason():
    assert reason(recorded_at=datetime(2062, 6, 1, tzinfo=UTC)) == "recorded-in-future"
    assert reason(occurred_at=datetime(9999, 12, 31, 23, 59, tzinfo=UTC)) == "occurred-in-future"
    assert reason(recorded_at=PUBLISHED + DEFAULT_CLOCK_SKEW + timedelta(seconds=1)) == (
        "recorded-in-future"
    )


def test_times_before_their_floors_are_refused():
    assert reason(recorded_at=datetime(2019, 12, 31, tzinfo=UTC)) == "recorded-before-floor"
    assert reason(occurred_at=datetime(1899, 12, 31, tzinfo=UTC)) == "occurred-before-floor"
    start = datetime(2026, 4, 1, tzinfo=UTC)
    assert reason(recorded_at=datetime(2026, 3, 31, tzinfo=UTC), recorded_floor=start) == (
        "recorded-before-floor"
    )
    check_times(published_at=PUBLISHED, recorded_at=start, recorded_floor=start)


def test_extreme_and_naive_times_raise_only_the_typed_error():
    # datetime.min with a +01:00 offset is the connector's old OverflowError case
    plus_one = timezone(timedelta(hours=1))
    assert reason(occurred_at=datetime(1, 1, 1, tzinfo=plus_one)) == "occurred-before-floor"
    assert reason(occurred_at=datetime.max.replace(tzinfo=UTC)) == "occurred-in-future"
    assert reason(recorded_at=datetime(2026, 6, 1)) == "time-without-zone"
    with pytest.raises(TimeOutOfBounds) as caught:
        check_times(published_at=datetime(2026, 6, 1))
    assert caught.value.reason == "time-without-zone"
    assert "2026" not in str(caught.value)  # messages name the field, never the value


def test_the_skew_is_configurable():
    late = PUBLISHED + timedelta(minutes=30)
    assert reason(recorded_at=late) == "recorded-in-future"
    check_times(published_at=PUBLISHED, recorded_at=late, skew=timedelta(hours=1))


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(timezones=st.timezones() | st.just(UTC)),
    st.datetimes(timezones=st.just(UTC)),
)
def test_any_times_give_a_reason_code_or_none_never_another_exception(value, published):
    found = time_problem(published_at=published, recorded_at=value, occurred_at=value)
    assert found is None or found in {
        "recorded-in-future",
        "recorded-before-floor",
        "occurred-in-future",
        "occurred-before-floor",
        "time-without-zone",
    }
