"""Notifications: deterministic ids, only references and the recipients' sealed payloads."""

from __future__ import annotations

from datetime import timedelta

import pytest

import schemas
from broker import (
    EXACT,
    BrokerError,
    Match,
    build_notification,
    evaluate_rule,
    notification_id,
    sign_notification,
)
from consent import generate_signing_key, verify_signature
from schemas import EventType, MatchedEvent, SealedPayload
from tests.broker.conftest import T0

MINE = SealedPayload("E08000009.revenues", "test-agreement", b"e1", b"c1")
OTHER_RECIPIENT = SealedPayload("E08000006.revenues", "test-agreement", b"e2", b"c2")
OTHER_AGREEMENT = SealedPayload("E08000009.revenues", "another", b"e3", b"c3")


@pytest.fixture
def hit(agreement_factory, sighting_factory):
    old = sighting_factory(
        "old",
        event_type=EventType.COUNCIL_TAX_ACCOUNT_CLOSED,
        source_council="E08000006",
        tokens=("nino:1:aa",),
        attributes={"band": "C"},
        sealed=(OTHER_RECIPIENT,),
    )
    new = sighting_factory(
        "new",
        source_council="E08000009",
        occurred_at=T0 + timedelta(days=1),
        tokens=("nino:1:aa",),
        fuzzy=b"\xff" * 8,
        sealed=(MINE, OTHER_AGREEMENT),
    )
    found = evaluate_rule(agreement_factory(), new, [Match(new, old, 1.0, EXACT, "nino:1:aa")])
    assert found is not None
    return found


def test_id_depends_only_on_agreement_and_the_set_of_events():
    assert notification_id("a", ["x", "y"]) == notification_id("a", ["y", "x", "x"])
    assert notification_id("a", ["x", "y"]) != notification_id("b", ["x", "y"])
    assert notification_id("a", ["x", "y"]) != notification_id("a", ["x", "z"])
    assert notification_id("a", ["x"]).startswith("ntf-")


def test_notification_carries_references_and_only_addressed_payloads(agreement_factory, hit):
    agreement = agreement_factory()
    built = build_notification(agreement, hit, ["E08000009.revenues"], created_at=T0)
    assert built.notification_id == notification_id("test-agreement", ["new", "old"])
    assert built.recipients == ("E08000009.revenues",)
    assert built.purpose == "testing" and (built.score, built.method) == (1.0, "exact")
    assert built.events == (
        MatchedEvent("old", "E08000006", "ref-old", EventType.COUNCIL_TAX_ACCOUNT_CLOSED, T0),
        MatchedEvent(
            "new", "E08000009", "ref-new", EventType.ADDRESS_CHANGE, T0 + timedelta(days=1)
        ),
    )
    assert built.sealed == (MINE,)
    assert built.signature == b""
    both = build_notification(
        agreement, hit, ["E08000009.revenues", "E08000006.revenues"], created_at=T0
    )
    assert set(both.sealed) == {MINE, OTHER_RECIPIENT}
    assert both.notification_id == built.notification_id  # a replay is recognisable


def test_notification_is_signed_over_canonical_bytes(agreement_factory, hit):
    key = generate_signing_key()
    unsigned = build_notification(agreement_factory(), hit, ["E08000009.revenues"], created_at=T0)
    if not hasattr(schemas, "canonical_bytes"):
        with pytest.raises(BrokerError) as caught:
            sign_notification(unsigned, key)
        assert caught.value.reason == "no-canonical-bytes"
        return
    signed = sign_notification(unsigned, key)
    assert len(signed.signature) == 64
    verify_signature(key.public_key(), schemas.canonical_bytes(signed), signed.signature)
