"""Mapping files: a good one compiles; a bad one is refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import MappingInvalid, load_mapping, parse_mapping
from schemas import EventType

GOOD = {
    "system": "revenues",
    "identity": {
        "given_name": "forename",
        "family_name": "surname",
        "date_of_birth": "dob",
        "postcode": "postcode",
        "extra": {"street": "address_1"},
    },
    "date_of_birth_format": "%d/%m/%Y",
    "reference": "account_ref",
    "event_type": {"column": "event", "values": {"SPD": "single-person-discount-awarded"}},
    "occurred_at": {"column": "event_date", "format": "%Y-%m-%d"},
    "attributes": {"band": "ct_band"},
    "payload": {"account_reference": "account_ref"},
}


def test_good_mapping_compiles():
    mapping = parse_mapping(GOOD)
    assert mapping.record == "event"
    assert mapping.event_type is not None
    assert mapping.event_type.read({"event": "SPD"}) == EventType.SINGLE_PERSON_DISCOUNT_AWARDED
    assert mapping.columns >= {"forename", "surname", "dob", "address_1", "ct_band", "event_date"}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"identity": {"shoe_size": "x"}}, "identity.shoe_size"),
        ({"event_type": "not-a-type"}, "event_type"),
        ({"attributes": {"favourite_colour": "c"}}, "attributes.favourite_colour"),
        ({"payload": {"nhs_diagnosis": "d"}}, "payload.nhs_diagnosis"),
        ({"reference": ""}, "reference"),
        ({"occurred_at": {"column": "a", "fixed": "b"}}, "occurred_at"),
        ({"colour": "blue"}, "colour"),
        ({"free_text": ["nino"]}, "free_text.nino"),
        ({"event_type": {"column": "event"}}, "event_type.values"),
    ],
)
def test_bad_mapping_is_refused_naming_the_key(change, key):
    with pytest.raises(MappingInvalid) as caught:
        parse_mapping({**GOOD, **change}, origin="m.yaml")
    assert f"m.yaml: {key}:" in str(caught.value)
    assert caught.value.reason == "mapping-invalid"


def test_consent_mapping_checks_states(tmp_path: Path):
    doc = {
        "system": "consent-register",
        "record": "consent",
        "identity": {"nhs_number": "nhs"},
        "reference": "ref",
        "occurred_at": {"column": "recorded"},
        "scope": {"column": "agreement"},
        "state": {"column": "choice", "values": {"Y": "granted", "N": "withdrawn", "X": "maybe"}},
    }
    with pytest.raises(MappingInvalid, match="state: 'maybe' is not a consent state"):
        parse_mapping(doc)
    path = tmp_path / "consent.yaml"
    path.write_text("record: consent\n: : bad yaml")
    with pytest.raises(MappingInvalid, match="cannot read mapping"):
        load_mapping(path)
