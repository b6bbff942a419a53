"""Notifications: deterministic ids, only references and the recipients' sealed payloads."""

from __future__ import annotations

from datetime import timedelta

import pytest

from broker import (
    EXACT,
    Match,
    build_notification,
    evaluate_rule,
    notification_id,
    seal_notification,
)
from consent import SignatureInvalid, generate_signing_key, open_envelope
from schemas import (
    Codec,
    EventType,
    MatchedEvent,
    MatchNotification,
    SealedPayload,
    SignatureDomain,
)
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


def test_id_depends_only_on_agreement_recipient_and_the_set_of_events():
    assert notification_id("a", "s", ["x", "y"]) == notification_id("a", "s", ["y", "x", "x"])
    assert notification_id("a", "s", ["x", "y"]) != notification_id("b", "s", ["x", "y"])
    assert notification_id("a", "s", ["x", "y"]) != notification_id("a", "s", ["x", "z"])
    assert notification_id("a", "s", ["x", "y"]) != notification_id("a", "t", ["x", "y"])
    assert notification_id("a", "s", ["x"]).startswith("ntf-")


def test_notification_carries_references_and_only_addressed_payloads(agreement_factory, hit):
    agreement = agreement_factory()
    built = build_notification(agreement, hit, "E08000009.revenues", created_at=T0)
    assert built.notification_id == notification_id(
        "test-agreement", "E08000009.revenues", ["new", "old"]
    )
    assert built.recipient == "E08000009.revenues"
    assert built.purpose == "testing" and (built.score, built.method) == (1.0, "exact")
    assert built.events == (
        MatchedEvent("old", "E08000006", "ref-old", EventType.COUNCIL_TAX_ACCOUNT_CLOSED, T0),
        MatchedEvent(
            "new", "E08000009", "ref-new", EventType.ADDRESS_CHANGE, T0 + timedelta(days=1)
        ),
    )
    assert built.sealed == (MINE,)
    other = build_notification(agreement, hit, "E08000006.revenues", created_at=T0)
    assert other.sealed == (OTHER_RECIPIENT,)  # no service carries another's payloads
    assert other.notification_id != built.notification_id
    again = build_notification(agreement, hit, "E08000009.revenues", created_at=T0 + timedelta(1))
    assert again.notification_id == built.notification_id  # a replay is recognisable


def test_notification_is_sealed_in_a_broker_signed_envelope(agreement_factory, hit):
    key, codec = generate_signing_key(), Codec()
    unsigned = build_notification(agreement_factory(), hit, "E08000009.revenues", created_at=T0)
    data = seal_notification(unsigned, key, "gmca.broker", codec)

    def broker_only(signer: str):  # type: ignore[no-untyped-def]
        return key.public_key() if signer == "gmca.broker" else None

    opened, envelope = open_envelope(data, SignatureDomain.NOTIFICATION, broker_only, codec=codec)
    assert isinstance(opened, MatchNotification) and opened == unsigned
    assert envelope.signer == "gmca.broker" and len(envelope.signature) == 64
    with pytest.raises(SignatureInvalid):
        open_envelope(data, SignatureDomain.EVENT, broker_only, codec=codec)
