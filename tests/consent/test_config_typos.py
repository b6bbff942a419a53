"""A clerk's slip in an agreement or the directory is an ``*Invalid`` with its line.

Superscript digits passed ``str.isdigit`` and then raised a bare ``ValueError``
from ``int``; a retention of a few million days raised ``OverflowError`` in the
loader, or, if it fitted a ``timedelta``, in the broker adding it to every
event's time. Every test here failed on the code before its fix.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import yaml

from consent import (
    AgreementInvalid,
    DirectoryInvalid,
    example_agreement_paths,
    parse_agreement,
    parse_directory,
    parse_duration,
)
from tests.consent.test_directory import _doc

AGREEMENT = next(iter(example_agreement_paths())).read_text()


def _agreement_with(key: str, value: str) -> str:
    changed, count = re.subn(rf"(?m)^(\s*{key}:) *\S+$", rf"\g<1> {value}", AGREEMENT)
    assert count == 1, key
    return changed


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("count_min", "\u00b3"),
        ("version", "\u00b9"),
        ("window", "'\uff19\uff10d'"),  # full-width 90d
        ("window", "99999999999999d"),
        ("retention", "3000000d"),  # fits a timedelta; occurred_at + it does not fit a datetime
        ("retention", "P9999999999W"),
    ],
)
def test_a_bad_number_in_an_agreement_is_agreement_invalid(key, value):
    with pytest.raises(AgreementInvalid) as caught:
        parse_agreement(_agreement_with(key, value))
    assert caught.value.reason == "agreement-invalid"
    assert any(key in problem for problem in caught.value.problems)


def test_the_longest_duration_still_fits_an_event_time():
    longest = parse_duration("36525d")
    assert datetime(2100, 1, 1, tzinfo=UTC) + longest < datetime.max.replace(tzinfo=UTC)
    with pytest.raises(ValueError, match="longer than"):
        parse_duration("36526d")


@pytest.mark.parametrize(
    "change",
    [{"serial": "\u00b2"}, {"key_epoch": "\u00b2"}, {"accepted_epochs": [1, "\u00b9"]}],
    ids=["serial", "key_epoch", "accepted_epochs"],
)
def test_a_superscript_number_in_the_directory_is_directory_invalid(federation, change):
    doc = _doc(federation)
    doc.update(change)
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(doc, sort_keys=False))
    assert caught.value.reason == "directory-invalid"
