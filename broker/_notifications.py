"""Building the match notification: references, types, times, score, sealed payloads.

A notification tells an agreement's recipients that certain events concern the
same subject. It carries only what DESIGN section 1 allows the broker to pass
on: event references (id, council, source reference), types and times, the
match score and method, and the payloads the councils sealed to those
recipients under this agreement, which the broker cannot open.

Its id is a hash of the agreement id and the sorted event ids, so a replay, a
restarted worker or a second worker builds the same id and a subscriber (or the
app's dedup table) recognises it (DESIGN section 7). The broker signs it over
``schemas.canonical_bytes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import schemas
from broker._errors import BrokerError
from broker._rules import RuleHit
from consent import Agreement, sign
from schemas import MatchedEvent, MatchNotification, SealedPayload

__all__ = ["build_notification", "notification_id", "sign_notification"]

_ID_DIGITS = 32


def notification_id(agreement_id: str, event_ids: Iterable[str]) -> str:
    """Deterministic id of the notification of these events under this agreement."""
    digest = hashlib.sha256()
    for part in (agreement_id, *sorted(set(event_ids))):
        digest.update(part.encode("utf-8") + b"\x00")
    return "ntf-" + digest.hexdigest()[:_ID_DIGITS]


def build_notification(
    agreement: Agreement,
    hit: RuleHit,
    recipients: Sequence[str],
    *,
    created_at: datetime,
) -> MatchNotification:
    """The unsigned notification of ``hit`` to the recipients whose decisions allowed it.

    Args:
        agreement: the agreement the hit falls under.
        hit: the events that satisfied the rule (``evaluate_rule``).
        recipients: the allowed recipients (each decided by ``consent.decide``).
        created_at: when the broker built it; not part of the id.

    Only payloads sealed under this agreement to one of ``recipients`` are
    carried; every other payload of the events stays behind.
    """
    wanted = set(recipients)
    sealed: list[SealedPayload] = [
        payload
        for sighting in hit.sightings
        for payload in sighting.sealed
        if payload.agreement_id == agreement.agreement_id and payload.recipient in wanted
    ]
    return MatchNotification(
        notification_id=notification_id(agreement.agreement_id, hit.event_ids),
        agreement_id=agreement.agreement_id,
        purpose=agreement.purpose,
        recipients=tuple(sorted(wanted)),
        created_at=created_at,
        events=tuple(
            MatchedEvent(s.event_id, s.source_council, s.source_ref, s.event_type, s.occurred_at)
            for s in hit.sightings
        ),
        score=hit.score,
        method=hit.method,
        sealed=tuple(sealed),
    )


def sign_notification(
    notification: MatchNotification, private_key: Ed25519PrivateKey
) -> MatchNotification:
    """The notification with the broker's Ed25519 signature over its canonical bytes.

    Raises:
        BrokerError: ``schemas.canonical_bytes`` is not available.
    """
    canonical = getattr(schemas, "canonical_bytes", None)
    if canonical is None:
        raise BrokerError("schemas.canonical_bytes is not available", reason="no-canonical-bytes")
    unsigned = replace(notification, signature=b"")
    data = canonical(unsigned)
    assert isinstance(data, bytes)
    return replace(notification, signature=sign(private_key, data))
