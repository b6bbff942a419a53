"""Building the match notification: references, types, times, score, sealed payloads.

A notification tells one of an agreement's recipients that certain events
concern the same subject. It carries only what DESIGN section 1 allows the
broker to pass on: event references (id, council, source reference), types and
times, the match score and method, and the payloads the councils sealed to that
recipient under this agreement, which the broker cannot open. One notification
per recipient, each on that service's own topic (DESIGN section 3): no service
sees what another was told.

Its id is a hash of the agreement id, the recipient and the sorted event ids,
so a replay, a restarted worker or a second worker builds the same id and a
subscriber (or the app's dedup table) recognises it (DESIGN section 7). The
broker signs it in a ``SignedEnvelope`` (``seal_notification``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker._rules import RuleHit
from consent import Agreement, seal_envelope
from schemas import Codec, MatchedEvent, MatchNotification, SealedPayload, SignatureDomain

__all__ = ["build_notification", "notification_id", "seal_notification"]

_ID_DIGITS = 32


def notification_id(agreement_id: str, recipient: str, event_ids: Iterable[str]) -> str:
    """Deterministic id of the notification of these events under this agreement to one service."""
    digest = hashlib.sha256()
    for part in (agreement_id, recipient, *sorted(set(event_ids))):
        digest.update(part.encode("utf-8") + b"\x00")
    return "ntf-" + digest.hexdigest()[:_ID_DIGITS]


def build_notification(
    agreement: Agreement,
    hit: RuleHit,
    recipient: str,
    *,
    created_at: datetime,
) -> MatchNotification:
    """The unsigned notification of ``hit`` to one recipient whose decision allowed it.

    Args:
        agreement: the agreement the hit falls under.
        hit: the events that satisfied the rule (``evaluate_rule``).
        recipient: the allowed recipient (decided by ``consent.decide``).
        created_at: when the broker built it; not part of the id.

    Only payloads sealed under this agreement to ``recipient`` are carried;
    every other payload of the events stays behind.
    """
    sealed: list[SealedPayload] = [
        payload
        for sighting in hit.sightings
        for payload in sighting.sealed
        if payload.agreement_id == agreement.agreement_id and payload.recipient == recipient
    ]
    return MatchNotification(
        notification_id=notification_id(agreement.agreement_id, recipient, hit.event_ids),
        agreement_id=agreement.agreement_id,
        purpose=agreement.purpose,
        recipient=recipient,
        created_at=created_at,
        events=tuple(
            MatchedEvent(s.event_id, s.source_council, s.source_ref, s.event_type, s.occurred_at)
            for s in hit.sightings
        ),
        score=hit.score,
        method=hit.method,
        sealed=tuple(sealed),
    )


def seal_notification(
    notification: MatchNotification, private_key: Ed25519PrivateKey, broker_id: str, codec: Codec
) -> bytes:
    """The message a service receives: the notification in an envelope the broker signed."""
    return seal_envelope(
        SignatureDomain.NOTIFICATION, notification, private_key, broker_id, codec=codec
    )
