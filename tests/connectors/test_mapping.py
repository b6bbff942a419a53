"""Mapping files: a good one compiles; a bad one is refused naming the key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors import (
    EventFactory,
    LinkageKey,
    MappingInvalid,
    SourceRow,
    Tokeniser,
    load_mapping,
    parse_mapping,
)
from consent import build_dev_federation
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


def test_the_source_timezone_defaults_to_london_and_can_be_stated():
    assert parse_mapping(GOOD).timezone == ZoneInfo("Europe/London")
    assert parse_mapping({**GOOD, "timezone": "UTC"}).timezone == ZoneInfo("UTC")


def test_a_naive_source_time_becomes_an_event_at_the_london_instant(tmp_path):
    """End to end through the event factory: the mapping's zone reaches the signed event."""
    council, key, now = "E08000001", LinkageKey(1, b"k" * 32), datetime(2026, 9, 10, tzinfo=UTC)
    federation = build_dev_federation(tmp_path, councils=[council], now=now)
    factory = EventFactory(council, federation.signing_key(council), federation.load(now),
                           Tokeniser([key]), key)  # fmt: skip
    doc = {
        "system": "rev", "identity": {"nhs_number": "n"}, "reference": "ref",
        "event_type": "address-change", "occurred_at": {"column": "t"},
    }  # fmt: skip
    row = SourceRow("x.csv", 1, {"n": "9434765919", "t": "2026-07-01", "ref": "r1"})
    summer = factory.event(row, parse_mapping(doc), now=now)
    utc = factory.event(row, parse_mapping({**doc, "timezone": "UTC"}), now=now)
    assert summer.occurred_at == datetime(2026, 6, 30, 23, 0, tzinfo=UTC)
    assert utc.occurred_at == datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
    assert summer.event_id != utc.event_id


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
        ({"timezone": "Europe/Lndon"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": 1}, "timezone"),
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
