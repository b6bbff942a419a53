"""Attacks on single values: lookalike letters from other scripts in a name.

Each test failed on the code before its fix.
"""

from __future__ import annotations

import pytest

from connectors import InvalidIdentifier, normalise_name
from connectors._normalise import DroppedField, normalise_fields


@pytest.mark.parametrize(
    "name",
    [
        "J\u043ehn",  # a Cyrillic o: was "j hn"
        "M\u0430ry-\u0410nne",  # Cyrillic a and A: was "m ry nne"
        "\u0391nna",  # a Greek capital alpha: was "nna"
        "\u0418\u0432\u0430\u043d\u043e\u0432",  # all Cyrillic: was "no-letters"
        "\u0259li",  # a Latin schwa no English-language system writes: was "li"
    ],
)
def test_a_letter_outside_a_to_z_refuses_the_name_instead_of_vanishing(name):
    """A letter the folding cannot bring to a-z was dropped from the name as if it were
    punctuation: "Jоhn" with a Cyrillic о became "j hn", a guessed, different name that
    was tokenised and linked on."""
    with pytest.raises(InvalidIdentifier) as caught:
        normalise_name(name, "given_name")
    assert (caught.value.field, caught.value.code) == ("given_name", "unsupported-letters")


def test_a_name_with_a_lookalike_costs_that_name_only():
    identity, dropped = normalise_fields({"given_name": "J\u043ehn", "family_name": "Smith"})
    assert identity.family_name == "smith" and identity.given_name is None
    assert dropped == (DroppedField("given_name", "unsupported-letters"),)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Zo\u00eb", "zoe"),
        ("Stra\u00dfe", "strasse"),
        ("Nguy\u1ec5n", "nguyen"),
        ("\u0141ukasz", "lukasz"),
        ("\uff33\uff4d\uff49\uff54\uff48", "smith"),  # full-width
        ("O\u02bcBrien", "obrien"),  # a modifier-letter apostrophe, as the apostrophe
        ("Ka\u02bbiulani", "kaiulani"),  # an okina
        ("Jo\U0001f600hn", "jo hn"),  # a symbol is a separator, as punctuation is
    ],
)
def test_latin_letters_marks_and_symbols_fold_as_before(raw, expected):
    assert normalise_name(raw, "given_name") == expected
