"""The fast strptime gives datetime.strptime's answer, or its ValueError, for every input.

Written as a reviewer hunting for the one input where they differ: valid
dates, near misses (out-of-range fields, impossible days, short fields,
other digits, other separators, letters in other case), and formats the fast
path must leave alone.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors._fast_strptime import _layout, strptime

FORMATS = [
    "%d/%m/%Y", "%Y-%m-%d", "%d%m%Y", "%d/%m/%y", "%d%m%y", "%m/%d/%Y", "%d.%m.%Y",
    "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M", "%Y%m%d%H%M%S", "%d/%m/%Y  %H", "%y-%m-%d",
    "%d-%b-%Y", "%d/%m", "%d/%m/%Y%%", "%d/%m/%Y\t%H", "%d/%d/%Y", "%j/%Y", "%d/%m/%Y %z",
    "%Y-%m-%dt%H", "%d %m %Y", "[%d](%m)%Y",
]  # fmt: skip
_CHARS = "0123456789/-.:T t\t%\u0661\u0966[]()Jan"


def _outcome(function, value: str, fmt: str) -> object:  # type: ignore[no-untyped-def]
    try:
        return function(value, fmt)
    except Exception as exc:  # noqa: BLE001 - the kind of failure is what is compared
        return type(exc)


def _same(value: str, fmt: str) -> None:
    expected = _outcome(datetime.strptime, value, fmt)
    got = _outcome(strptime, value, fmt)
    assert got == expected, (value, fmt)
    assert type(got) is type(expected)


@given(
    when=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    fmt=st.sampled_from(FORMATS),
)
@settings(max_examples=300)
def test_formatted_dates_read_back_alike(when: datetime, fmt: str) -> None:
    try:
        value = when.strftime(fmt)
    except ValueError:
        return
    _same(value, fmt)


@given(
    fields=st.lists(st.integers(0, 9999), min_size=6, max_size=6),
    fmt=st.sampled_from(FORMATS),
)
@settings(max_examples=300)
def test_full_width_fields_out_of_range_fail_alike(fields: list[int], fmt: str) -> None:
    day, month, year, hour, minute, second = fields
    value = (
        fmt.replace("%d", f"{day % 100:02d}").replace("%m", f"{month % 100:02d}")
        .replace("%Y", f"{year:04d}").replace("%y", f"{year % 100:02d}")
        .replace("%H", f"{hour % 100:02d}").replace("%M", f"{minute % 100:02d}")
        .replace("%S", f"{second % 100:02d}")
    )  # fmt: skip
    _same(value, fmt)


@given(value=st.text(alphabet=_CHARS, max_size=22), fmt=st.sampled_from(FORMATS))
@settings(max_examples=800)
def test_arbitrary_text_reads_alike(value: str, fmt: str) -> None:
    _same(value, fmt)


@given(
    when=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    fmt=st.sampled_from(FORMATS),
    data=st.data(),
)
@settings(max_examples=400)
def test_one_character_changed_reads_alike(when: datetime, fmt: str, data: st.DataObject) -> None:
    try:
        value = when.strftime(fmt)
    except ValueError:
        return
    if not value:
        return
    index = data.draw(st.integers(0, len(value) - 1))
    replacement = data.draw(st.sampled_from(_CHARS + "Z"))
    cut = data.draw(st.booleans())
    changed = value[:index] + ("" if cut else replacement) + value[index + 1 :]
    _same(changed, fmt)


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        ("05/06/1980", "%d/%m/%Y"), ("31/02/1980", "%d/%m/%Y"), ("00/01/1980", "%d/%m/%Y"),
        ("29/02/2000", "%d/%m/%Y"), ("29/02/1900", "%d/%m/%Y"), ("01/13/1980", "%d/%m/%Y"),
        ("01/01/0000", "%d/%m/%Y"), ("12051980", "%d%m%Y"), ("32121980", "%d%m%Y"),
        ("311280", "%d%m%y"), ("010168", "%d%m%y"), ("010169", "%d%m%y"),
        ("2026-03-01T23:59:59", "%Y-%m-%dT%H:%M:%S"), ("2026-03-01t23:59:59", "%Y-%m-%dT%H:%M:%S"),
        ("2026-03-01T24:00:00", "%Y-%m-%dT%H:%M:%S"), ("2026-03-01T23:59:60", "%Y-%m-%dT%H:%M:%S"),
        ("2026-03-01T23:59:61", "%Y-%m-%dT%H:%M:%S"), ("01/02/2026 09:30", "%d/%m/%Y %H:%M"),
        ("01/02/2026  09:30", "%d/%m/%Y %H:%M"), ("1/2/2026", "%d/%m/%Y"),
        ("\u0661\u0662/05/1980", "%d/%m/%Y"), ("12/05/1980 ", "%d/%m/%Y"), ("", "%d/%m/%Y"),
        ("12/05/1980", "%d/%m/%Y%"), ("12/05/1980", "%d/%d/%Y"),
    ],
)  # fmt: skip
def test_known_edges_read_alike(value: str, fmt: str) -> None:
    _same(value, fmt)


@pytest.mark.parametrize("fmt", ["%d/%m/%Y", "%Y-%m-%d", "%d%m%y", "%Y-%m-%dT%H:%M:%S"])
def test_the_usual_formats_take_the_fast_path(fmt: str) -> None:
    layout = _layout(fmt)
    assert layout is not None
    assert layout.pattern.fullmatch(datetime(1980, 6, 5, 9, 30).strftime(fmt))


@pytest.mark.parametrize("fmt", ["%d/%m", "%d-%b-%Y", "%d/%d/%Y", "%d/%m/%Y%%", "%d/%m/%Y\t%H"])
def test_other_formats_are_left_to_strptime(fmt: str) -> None:
    assert _layout(fmt) is None
