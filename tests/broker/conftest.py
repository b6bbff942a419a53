"""Factories for the broker core's tests: sightings, agreements, synthetic encodings."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker import Sighting
from consent import Agreement, ConsentModel, LawfulBasis, MatchRule
from schemas import EventType
from tests.connectors.conftest import (  # noqa: F401 - fixtures for the end-to-end tests
    council_factory,
    federation,
    linkage_keys,
    synthetic,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BLOOM_BITS = 1024
BLOOM_HASHES = 20


def bloom(grams: list[int], *, bits: int = BLOOM_BITS, hashes: int = BLOOM_HASHES) -> bytes:
    """A Bloom filter of integer 'q-grams' (a stand-in for the connector's encoder)."""
    value = 0
    for gram in grams:
        for i in range(hashes):
            # int-tuple hashes are not randomised per process: reproducible.
            value |= 1 << (hash((gram, i)) % bits)
    return value.to_bytes(bits // 8, "big")


def synthetic_blocks(seed: int, blocks: int) -> list[tuple[int, str, bytes]]:
    """(person, block token, encoding) records: people in a block look alike.

    Each block shares some 'q-grams' (a common surname and birth year); each
    record of a person is a noisy copy with 0 to 8 of its q-grams replaced.
    """
    rng = random.Random(seed)
    out: list[tuple[int, str, bytes]] = []
    person = 0
    for block in range(blocks):
        shared = [rng.randrange(10**9) for _ in range(12)]
        for _ in range(rng.randint(2, 6)):
            grams = shared + [rng.randrange(10**9) for _ in range(25)]
            for _ in range(rng.randint(1, 3)):
                copy = list(grams)
                for _ in range(rng.choice([0, 0, 1, 2, 3, 5, 8])):
                    copy[rng.randrange(len(copy))] = rng.randrange(10**9)
                out.append((person, f"soundex+yob:1:{block:06x}", bloom(copy)))
            person += 1
    return out


@pytest.fixture
def sighting_factory() -> Callable[..., Sighting]:
    """``sighting_factory(event_id, **fields)``: a sighting with sensible defaults."""

    def make(event_id: str, **fields: Any) -> Sighting:
        values: dict[str, Any] = {
            "source_council": "E08000003",
            "source_ref": f"ref-{event_id}",
            "event_type": EventType.ADDRESS_CHANGE,
            "occurred_at": T0,
            "key_epoch": 1,
        }
        values.update(fields)
        return Sighting(event_id=event_id, **values)

    return make


@pytest.fixture
def agreement_factory() -> Callable[..., Agreement]:
    """``agreement_factory(**rule_or_fields)``: an agreement; rule fields by name."""

    def make(
        *,
        event_types: tuple[EventType, ...] = (
            EventType.ADDRESS_CHANGE,
            EventType.COUNCIL_TAX_ACCOUNT_CLOSED,
        ),
        distinct_sources_min: int = 2,
        count_min: int = 2,
        window: timedelta = timedelta(days=30),
        **fields: Any,
    ) -> Agreement:
        values: dict[str, Any] = {
            "agreement_id": "test-agreement",
            "title": "Test",
            "purpose": "testing",
            "lawful_basis": LawfulBasis("6(1)(e)", "LGFA 1992"),
            "controllers": frozenset({"E08000003", "E08000006", "E08000009"}),
            "recipients": frozenset({"E08000009.revenues", "E08000006.revenues"}),
            "disclosures": {EventType.ADDRESS_CHANGE: frozenset({"postcode"})},
            "match": MatchRule(frozenset(event_types), distinct_sources_min, count_min, window),
            "consent_model": ConsentModel.NOT_REQUIRED,
            "valid_from": T0 - timedelta(days=365),
            "valid_until": None,
            "retention": timedelta(days=90),
        }
        values.update(fields)
        return Agreement(**values)

    return make
