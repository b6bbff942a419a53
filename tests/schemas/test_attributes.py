"""Each attribute travels in clear, so each takes only the codes of its vocabulary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas import ATTRIBUTE_VALUES, EVENT_CATALOGUE, canonical_attribute

DOC = Path(__file__).resolve().parents[2] / "docs" / "concepts" / "mapping.md"


def test_every_catalogue_attribute_has_a_vocabulary_and_no_other_has_one():
    carried = {name for spec in EVENT_CATALOGUE.values() for name in spec.attributes}
    assert set(ATTRIBUTE_VALUES) == carried


def test_every_code_is_a_short_code_not_free_text():
    for name, codes in ATTRIBUTE_VALUES.items():
        assert codes, name
        for code in codes:
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,23}", code), (name, code)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("band", "C", "C"),
        ("band", " c ", "C"),
        ("tenure", "Council", "council"),
        ("year_group", "r", "R"),
        ("band", "Ann Example", None),
        ("band", "", None),
        ("band", "CC", None),
        ("tenure", "C", None),
        ("no-such-attribute", "C", None),
    ],
)
def test_a_value_is_read_as_its_code_ignoring_case_and_blanks_or_not_at_all(name, value, expected):
    assert canonical_attribute(name, value) == expected


def test_the_mapping_guide_lists_every_vocabulary_as_the_code_has_it():
    rows = re.findall(r"^\| `([a-z_]+)` \| (.+) \|$", DOC.read_text(), flags=re.MULTILINE)
    documented = {name: set(re.findall(r"`([^`]+)`", codes)) for name, codes in rows}
    assert documented == {name: set(codes) for name, codes in ATTRIBUTE_VALUES.items()}
