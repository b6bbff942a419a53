"""A malformed value costs that value, not the row (issue 12), and titles that are surnames.

Dates of birth as real extracts write them (a list of formats, lost separators,
two-digit years, swapped day and month) and identifiers declared free text.
"""

from __future__ import annotations

from datetime import date

import pytest

from connectors import (
    MAX_VALUE_CHARS,
    DroppedField,
    InvalidIdentifier,
    normalise_date_of_birth,
    normalise_fields,
    normalise_identity,
    normalise_name,
)

TODAY = date(2026, 11, 23)
UK = "%d/%m/%Y"


# -- titles (issue 11, item 7) ---------------------------------------------------------


@pytest.mark.parametrize("surname", ["Lord", "Sir", "Dame", "lady", "MASTER"])
def test_a_title_word_as_the_surname_is_kept(surname):
    assert normalise_name(surname, "family_name") == surname.lower()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Lord Alan", "alan"), ("Sir John Paul", "john paul"), ("Dame", "dame"), ("Lord", "lord")],
)
def test_a_title_is_dropped_only_before_a_name(raw, expected):
    assert normalise_name(raw, "given_name") == expected


def test_a_resident_called_lord_keeps_her_row_and_her_surname():
    identity, dropped = normalise_fields(
        {"given_name": "Jane", "family_name": "Lord", "date_of_birth": "1970-01-02"}
    )
    assert (identity.given_name, identity.family_name, dropped) == ("jane", "lord", ())
    other, _ = normalise_fields(
        {"given_name": "Jane", "family_name": "Sir", "date_of_birth": "1970-01-02"}
    )
    assert other.family_name == "sir"


# -- dates of birth ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("31/12/1980", date(1980, 12, 31)),
        ("31121980", date(1980, 12, 31)),  # separators lost
        ("311280", date(1980, 12, 31)),  # separators and century lost
        ("31/12/80", date(1980, 12, 31)),  # two-digit year
        ("01/02/05", date(2005, 2, 1)),  # two-digit year at or below the pivot
        ("12/25/1980", date(1980, 12, 25)),  # day and month swapped: only one reading is real
        ("05/06/1980", date(1980, 6, 5)),  # both readings real: the stated one wins
    ],
)
def test_common_corruptions_still_normalise(raw, expected):
    assert normalise_date_of_birth(raw, UK, today=TODAY) == expected


def test_the_two_digit_year_pivot_can_be_stated():
    assert normalise_date_of_birth("01/02/25", UK, today=TODAY) == date(2025, 2, 1)
    assert normalise_date_of_birth("01/02/25", UK, today=TODAY, two_digit_year_pivot=10) == date(
        1925, 2, 1
    )


def test_a_list_of_formats_is_tried_in_order():
    formats = ["%Y-%m-%d", UK, "%d %b %Y"]
    assert normalise_date_of_birth("1980-12-31", formats, today=TODAY) == date(1980, 12, 31)
    assert normalise_date_of_birth("31/12/1980", formats, today=TODAY) == date(1980, 12, 31)
    assert normalise_date_of_birth("31 Dec 1980", formats, today=TODAY) == date(1980, 12, 31)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("31/02/1980", "bad-format"),  # neither reading is a real date
        ("1251980", "bad-format"),  # 7 digits: 12 May or 1 December?
        ("31st Smarch", "bad-format"),
        ("9" * 5000, "bad-format"),
        ("01/01/2999", "in-future"),
        ("01/01/1850", "too-early"),
    ],
)
def test_what_cannot_be_repaired_is_refused(raw, code):
    with pytest.raises(InvalidIdentifier) as caught:
        normalise_date_of_birth(raw, UK, today=TODAY)
    assert (caught.value.field, caught.value.code) == ("date_of_birth", code)


# -- one bad value, not the row ----------------------------------------------------------

PERSON = {
    "given_name": "Ann",
    "family_name": "Lee",
    "date_of_birth": "02/01/1970",
    "postcode": "M1 1AE",
    "nhs_number": "9434765919",
    "nino": "AB123456C",
    "uprn": "100023336956",
}


@pytest.mark.parametrize(
    ("field", "bad", "code"),
    [
        ("nhs_number", "9434765918", "bad-check-digit"),
        ("date_of_birth", "31/02/1970", "bad-format"),
        ("postcode", "75008", "bad-format"),
        ("nino", "XX", "bad-format"),
        ("uprn", "12a", "bad-format"),
        ("given_name", "x" * (MAX_VALUE_CHARS + 1), "too-long"),
    ],
)
def test_a_malformed_value_costs_that_value_only(field, bad, code):
    identity, dropped = normalise_fields({**PERSON, field: bad}, date_format=UK)
    assert dropped == (DroppedField(field, code),)
    assert getattr(identity, field) is None
    for other in set(PERSON) - {field}:
        assert getattr(identity, other) is not None, other
    assert bad not in repr(dropped)


def test_every_bad_value_is_reported_in_canonical_order():
    identity, dropped = normalise_fields(
        {**PERSON, "nino": "?", "date_of_birth": "??", "street": "y" * 300}, date_format=UK
    )
    assert [(d.field, d.code) for d in dropped] == [
        ("date_of_birth", "bad-format"),
        ("nino", "bad-format"),
        ("street", "too-long"),
    ]
    assert identity.nhs_number == "9434765919"


def test_the_strict_form_still_raises_the_first():
    with pytest.raises(InvalidIdentifier) as caught:
        normalise_identity({**PERSON, "nhs_number": "1"}, date_format=UK)
    assert (caught.value.field, caught.value.code) == ("nhs_number", "bad-format")


@pytest.mark.parametrize("field", sorted(PERSON))
def test_every_identifier_can_be_free_text(field):
    """Declaring ``date_of_birth`` free text used to crash: 'str' has no 'isoformat'."""
    from connectors import LinkageKey, Tokeniser

    identity, dropped = normalise_fields(
        {**PERSON, field: " Not  In UK Form "}, date_format=UK, free_text=frozenset({field})
    )
    assert dropped == ()
    tokens = Tokeniser([LinkageKey(1, b"k" * 32)]).tokenise(identity)
    assert tokens.fuzzy is not None
    if field == "date_of_birth":  # no calendar date: fuzzy only, under its own name
        assert identity.date_of_birth is None
        assert identity.extra == {"date_of_birth": "not in uk form"}
    else:
        assert getattr(identity, field) == "not in uk form"


def test_a_free_text_date_meets_a_parsed_one_written_the_same_way():
    from connectors import LinkageKey, Tokeniser

    tokeniser = Tokeniser([LinkageKey(1, b"k" * 32)])
    free, _ = normalise_fields(
        {"given_name": "Ann", "date_of_birth": "1970-01-02"},
        free_text=frozenset({"date_of_birth"}),
    )
    parsed, _ = normalise_fields({"given_name": "Ann", "date_of_birth": "1970-01-02"})
    assert tokeniser.tokenise(free).fuzzy == tokeniser.tokenise(parsed).fuzzy
