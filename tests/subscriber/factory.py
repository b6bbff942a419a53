"""Notifications as the broker would send them, signed with a dev federation's broker key.

Every way a test makes a notification goes through ``notification_bytes``, so
the tests follow the wire format from one place. Also imported by the crashing
subscriber script (a separate process), so it holds no pytest fixtures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent import DevFederation, seal, seal_envelope, sealing_context
from schemas import (
    Codec,
    EventType,
    MatchedEvent,
    MatchNotification,
    SealedPayload,
    SignatureDomain,
    SignedEnvelope,
)

AGREEMENT = "gm-cross-boundary-move"
FROM, TO = "E08000003", "E08000006"
SERVICE = f"{TO}.revenues"
OTHER_SERVICE = f"{TO}.electoral-registration"
# Clear values a test looks for in places they must never be (dead letters, logs).
SECRET_NAME = "Zebedee-Quorn"
CLOSED = {"given_name": "Alice", "family_name": SECRET_NAME, "end_date": "2026-11-01"}
MOVED = {"given_name": "Alice", "family_name": SECRET_NAME, "postcode": "M32 0AA"}


@dataclass(frozen=True)
class Sealed:
    """One payload to seal: to whom (label and key holder may differ), for which event."""

    event: int
    fields: Mapping[str, str]
    recipient: str = SERVICE
    key_of: str | None = None  # seal to this member's key instead of the recipient's
    agreement: str = AGREEMENT
    declared: Sequence[str] | None = None  # field names the payload claims


def events(n: int) -> tuple[MatchedEvent, ...]:
    at = datetime.now(UTC) - timedelta(days=2)
    return (
        MatchedEvent(f"evt-{n}-a", FROM, f"A-{n}", EventType.COUNCIL_TAX_ACCOUNT_CLOSED, at),
        MatchedEvent(f"evt-{n}-b", TO, f"B-{n}", EventType.ADDRESS_CHANGE, at),
    )


def _seal(federation: DevFederation, spec: Sealed, event: MatchedEvent) -> SealedPayload:
    directory = federation.load()
    key = directory.sealing_key(spec.key_of or spec.recipient)
    declared = tuple(sorted(spec.fields)) if spec.declared is None else tuple(spec.declared)
    # Sealed under the declared names, as an honest (or a lying) sealer would bind them.
    context = sealing_context(event_id=event.event_id, agreement_id=spec.agreement,
                              recipient=spec.recipient, fields=declared)  # fmt: skip
    body = json.dumps(dict(spec.fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    enc, ciphertext = seal(key, body.encode("utf-8"), aad=context)
    return SealedPayload(spec.recipient, spec.agreement, enc, ciphertext, declared)


def notification_bytes(
    federation: DevFederation,
    n: int,
    *,
    sealed: Sequence[Sealed] | None = None,
    recipient: str = SERVICE,
    agreement: str = AGREEMENT,
    signer: Ed25519PrivateKey | None = None,
    signer_id: str | None = None,
    tamper: bool = False,
    created_at: datetime | None = None,
) -> tuple[str, bytes]:
    """(notification id, framed message) of notification number ``n``.

    Args:
        sealed: payloads (default: the closure's and the move's fields, to SERVICE).
        signer: sign with this key instead of the broker's (a forgery).
        signer_id: the member id the envelope names (default: the dev broker's).
        tamper: change the notification after signing.
        created_at: when the broker made it (default: now).
    """
    matched = events(n)
    specs = sealed if sealed is not None else (Sealed(0, CLOSED), Sealed(1, MOVED))
    nid = "ntf-" + hashlib.sha256(f"{agreement}/{n}".encode()).hexdigest()[:32]
    notification = MatchNotification(
        notification_id=nid,
        agreement_id=agreement,
        purpose="council-tax-and-electoral-registration-accuracy",
        recipient=recipient,
        created_at=(created_at or datetime.now(UTC)).replace(microsecond=0),
        events=matched,
        score=1.0,
        method="exact",
        sealed=tuple(_seal(federation, s, matched[s.event]) for s in specs),
    )
    key = signer or federation.signing_key(federation.broker)
    codec = Codec()
    value = seal_envelope(SignatureDomain.NOTIFICATION, notification, key,
                          signer_id or federation.broker, codec=codec)  # fmt: skip
    if tamper:
        envelope = codec.decode_as(value, SignedEnvelope)
        body = codec.encode_body(replace(notification, score=0.5))[1]
        value = codec.encode(replace(envelope, body=body))
    return nid, value
