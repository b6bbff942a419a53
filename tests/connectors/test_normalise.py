"""Identifier normalisation: canonical forms, and invalid values refused by field and reason."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import (
    InvalidIdentifier,
    nhs_number,
    ni_number,
    normalise_date_of_birth,
    normalise_free_text,
    normalise_identity,
    normalise_name,
    normalise_nhs_number,
    normalise_nino,
    normalise_postcode,
    normalise_uprn,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Dr Siân O'Brien-Smyth", "sian obrien smyth"),
        ("  MR   john  ", "john"),
        ("van der Berg", "van der berg"),
        ("Zoë", "zoe"),
        ("Smith-Jones", "smith jones"),
        ("Mrs. Mary-Ann", "mary ann"),
    ],
)
def test_names(raw, expected):
    assert normalise_name(raw) == expected


def test_a_name_without_letters_is_refused():
    with pytest.raises(InvalidIdentifier) as caught:
        normalise_name("123 --", "family_name")
    assert (caught.value.field, caught.value.code) == ("family_name", "no-letters")


def test_dates_of_birth():
    assert normalise_date_of_birth("31/12/1980", "%d/%m/%Y") == date(1980, 12, 31)
    for bad, code in [("31/02/1980", "bad-format"), ("01/01/2999", "in-future"),
                      ("01/01/1850", "too-early"), ("1980-12-31", "bad-format")]:  # fmt: skip
        with pytest.raises(InvalidIdentifier) as caught:
            normalise_date_of_birth(bad, "%d/%m/%Y", today=date(2026, 11, 23))
        assert caught.value.code == code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("m11ae", "M1 1AE"), ("SW1A 1AA", "SW1A 1AA"), (" ec1a  1bb ", "EC1A 1BB"),
     ("W1A0AX", "W1A 0AX"), ("B33 8TH", "B33 8TH")],
)  # fmt: skip
def test_postcodes(raw, expected):
    assert normalise_postcode(raw) == expected


@pytest.mark.parametrize("raw", ["75008", "M1 1CE", "ABC 123", "M1", ""])
def test_bad_postcodes(raw):
    with pytest.raises(InvalidIdentifier, match="postcode: bad-format"):
        normalise_postcode(raw)


def test_uprn():
    assert normalise_uprn("000100023336956") == "100023336956"
    for bad in ("0", "1234567890123", "12a", "-5"):
        with pytest.raises(InvalidIdentifier):
            normalise_uprn(bad)


def test_nhs_number_check_digit():
    assert normalise_nhs_number("943 476 5919") == "9434765919"
    with pytest.raises(InvalidIdentifier, match="bad-check-digit"):
        normalise_nhs_number("9434765918")
    with pytest.raises(InvalidIdentifier, match="bad-format"):
        normalise_nhs_number("94347659")


@given(st.integers(min_value=0, max_value=2**32))
@settings(max_examples=200)
def test_generated_nhs_numbers_validate(seed):
    import random

    number = nhs_number(random.Random(seed))
    assert normalise_nhs_number(number) == number
    wrong = number[:9] + str((int(number[9]) + 1) % 10)
    with pytest.raises(InvalidIdentifier):
        normalise_nhs_number(wrong)


@pytest.mark.parametrize("good", ["AB123456C", "ab 12 34 56 c", "JG103759A"])
def test_good_nino(good):
    assert normalise_nino(good) == good.replace(" ", "").upper()


@pytest.mark.parametrize("bad", ["DA123456A", "AO123456A", "GB123456A", "AB123456E", "AB12345C"])
def test_bad_nino(bad):
    with pytest.raises(InvalidIdentifier, match="nino: bad-format"):
        normalise_nino(bad)


@given(st.integers(min_value=0, max_value=2**32))
@settings(max_examples=200)
def test_generated_ninos_validate(seed):
    import random

    assert normalise_nino(ni_number(random.Random(seed)))


def test_identity_free_text_and_first_error():
    identity = normalise_identity(
        {"given_name": "Ana", "family_name": "Lopez", "postcode": "75008 Paris", "street": "Rue X"},
        free_text=frozenset({"postcode"}),
    )
    assert identity.postcode == "75008 paris"
    assert identity.extra == {"street": "rue x"}
    assert normalise_free_text("  A  b ") == "a b"
    with pytest.raises(InvalidIdentifier) as caught:
        normalise_identity({"date_of_birth": "31st Smarch", "nhs_number": "1", "given_name": "A"})
    assert caught.value.field == "date_of_birth"  # fields are checked in a fixed order
    assert "Smarch" not in str(caught.value)
