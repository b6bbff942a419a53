"""A value typed in a code column that is not a code is left out, never published.

Attributes travel in clear (``schemas.ATTRIBUTE_VALUES``): a resident's name
in a council-tax band column must cost that value, counted, and not the row.
"""

from __future__ import annotations

from connectors import DroppedField, EventFactory, SourceRow, Tokeniser, parse_mapping
from tests.broker.test_partition import FROM, KEY, NOW, PERSON, federation

__all__ = ["federation"]

MAPPING = parse_mapping({
    "system": "rev",
    "identity": {"given_name": "f", "family_name": "s", "date_of_birth": "d", "nhs_number": "n"},
    "reference": "ref",
    "event_type": {"column": "e", "values": {"C": "council-tax-account-closed"}},
    "occurred_at": {"column": "t"},
    "attributes": {"band": "ct_band", "closure_reason": "why"},
})  # fmt: skip


def _event(federation, **values: str):
    factory = EventFactory(FROM, federation.signing_key(FROM), federation.load(NOW),
                           Tokeniser([KEY]), KEY)  # fmt: skip
    row = SourceRow("x.csv", 1, {**PERSON, "e": "C", "t": "2026-09-01", "ref": "a-1", **values})
    dropped: list[DroppedField] = []
    return factory.event(row, MAPPING, now=NOW, dropped=dropped), dropped


def test_codes_are_published_in_the_vocabularys_spelling(federation):
    event, dropped = _event(federation, ct_band=" c ", why="Moved-Out")
    assert dict(event.attributes) == {"band": "C", "closure_reason": "moved-out"}
    assert dropped == []


def test_free_text_in_a_code_column_is_dropped_and_counted_and_the_row_kept(federation):
    event, dropped = _event(federation, ct_band="Ann Example", why="moved-out")
    assert dict(event.attributes) == {"closure_reason": "moved-out"}
    assert dropped == [DroppedField("band", "value-not-allowed")]
    assert "Ann Example" not in repr(event.attributes)
