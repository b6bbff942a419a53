"""Unicode tricks in identifiers: refused by field and reason, never a crash or a stray token.

Every test here failed on the code before its fix.
"""

from __future__ import annotations

import pytest

from connectors import (
    InvalidIdentifier,
    LinkageKey,
    load_mapping,
    normalise_free_text,
    normalise_name,
    normalise_nhs_number,
    normalise_uprn,
)
from connectors._normalise import DroppedField, normalise_fields
from connectors._sources import SourceRow
from fedbroker._link_rows import RowEncoder

NHS = "9434765919"
#: Characters ``str.isdigit`` accepts that are not 0-9: superscripts (which ``int``
#: refuses), full-width, Arabic-Indic and Devanagari digits (which it reads).
LOOKALIKES = {
    "superscript": NHS[:9] + "\u2079",
    "full-width": "".join(chr(0xFF10 + int(d)) for d in NHS),
    "arabic-indic": "".join(chr(0x0660 + int(d)) for d in NHS),
    "devanagari": NHS[:5] + "".join(chr(0x0966 + int(d)) for d in NHS[5:]),
}


@pytest.mark.parametrize("value", LOOKALIKES.values(), ids=LOOKALIKES.keys())
def test_an_nhs_number_in_other_digits_is_refused_by_reason(value):
    """A superscript digit raised a bare ValueError quoting it; the others made a token
    that the same number in ASCII (every other council's form) never meets."""
    with pytest.raises(InvalidIdentifier) as caught:
        normalise_nhs_number(value)
    assert (caught.value.field, caught.value.code) == ("nhs_number", "bad-format")
    assert value not in str(caught.value)


@pytest.mark.parametrize("value", ["\u00b9\u00b2\u00b3", "\uff11\uff12\uff13", "\u0660\u0661"])
def test_a_uprn_in_other_digits_is_refused_by_reason(value):
    with pytest.raises(InvalidIdentifier) as caught:
        normalise_uprn(value)
    assert (caught.value.field, caught.value.code) == ("uprn", "bad-format")


def test_a_row_with_a_superscript_in_its_nhs_number_loses_that_value_only():
    """It crashed ``normalise_fields``, hence ``fedbroker link`` (traceback with the value)."""
    identity, dropped = normalise_fields(
        {"given_name": "Ann", "family_name": "Lee", "nhs_number": LOOKALIKES["superscript"]}
    )
    assert dropped == (DroppedField("nhs_number", "bad-format"),)
    assert identity.nhs_number is None
    assert identity.family_name == "lee"


MAPPING = """
system: s
identity: {given_name: first, family_name: last, date_of_birth: dob, nhs_number: nhs}
reference: ref
event_type: {fixed: address-change}
occurred_at: {fixed: "2026-01-01"}
"""


def test_the_dry_run_encodes_a_file_holding_such_a_row(tmp_path):
    (tmp_path / "m.yaml").write_text(MAPPING)
    mapping = load_mapping(tmp_path / "m.yaml")
    encoder = RowEncoder.of(mapping, (LinkageKey(1, bytes(range(32))),))
    rows = [
        SourceRow(
            "x.csv",
            1,
            {"ref": "r1", "first": "Ann", "last": "Lee", "dob": "1971-03-01", "nhs": NHS},
        ),
        SourceRow(
            "x.csv",
            2,
            {
                "ref": "r2",
                "first": "Ann",
                "last": "Lee",
                "dob": "1971-03-01",
                "nhs": LOOKALIKES["superscript"],
            },
        ),  # fmt: skip
    ]
    dropped: list = []
    made = encoder.sightings(rows, side="left", dropped=dropped)
    assert [getattr(s, "source_ref", None) for s in made] == ["r1", "r2"]
    assert [(d.row, d.reason, d.code) for d in dropped] == [(2, "invalid-nhs_number", "bad-format")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Sa\u200brah", "sarah"),  # zero-width space
        ("Mc\u00adDonald", "mcdonald"),  # soft hyphen
        ("Ann\u2060e", "anne"),  # word joiner
        ("Jo\u200dhn", "john"),  # zero-width joiner
        ("\u202eSarah\u202c", "sarah"),  # right-to-left override and pop
        ("Ali\u200fce", "alice"),  # right-to-left mark
        ("\ufeffAnn", "ann"),  # byte-order mark
        ("Łukasz Wałęsa", "lukasz walesa"),
        ("Bjørn", "bjorn"),
        ("Ærø", "aero"),
        ("Đorđe", "dorde"),
        ("Þóra", "thora"),
    ],
)
def test_invisible_characters_and_undecomposed_letters_do_not_change_a_name(raw, expected):
    """Each split or shortened the name ("sa rah", "ukasz wa esa"), so the same person
    written with and without them got different tokens and Bloom q-grams."""
    assert normalise_name(raw) == expected
    assert normalise_free_text(raw) == expected


def test_free_text_loses_invisible_characters_too():
    assert normalise_free_text("1 High\u200b St\u00ad") == "1 high st"
