"""Checking a notification and opening the fields sealed to this service: pure functions.

One code path for every reader of notifications (the subscriber, the demo, an
auditor's tools), so a check added here holds everywhere. The order matters:
nothing is opened before the broker's signature verifies, and nothing opened
leaves this module unless every payload passed every check, so a refused
notification never exposes a single opened value (DESIGN sections 2 and 10).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from consent import Directory, SealingFailed, open_envelope, open_fields
from schemas import Codec, MatchedEvent, MatchNotification, SealedPayload, SignatureDomain
from subscriber._errors import (
    AgreementMismatch,
    FieldNotGranted,
    FieldsMismatch,
    NotAddressed,
    UnknownAgreement,
)

__all__ = ["OpenedNotification", "open_notification", "read_notification"]

_EMPTY: Mapping[str, Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class OpenedNotification:
    """A verified notification with the fields sealed to this service, opened and checked.

    ``fields`` maps an event id to the fields of that event the agreement grants
    this service (events with nothing sealed to it are absent).
    """

    notification_id: str
    agreement_id: str
    purpose: str
    service: str
    created_at: datetime
    score: float
    method: str
    events: tuple[MatchedEvent, ...]
    # Out of repr: a service that logs or raises with the notification in an
    # f-string must not write opened personal data into its logs.
    fields: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _EMPTY, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The JSON object handed to a JSON Lines file or a webhook."""
        return {
            "notification_id": self.notification_id,
            "agreement": self.agreement_id,
            "purpose": self.purpose,
            "service": self.service,
            "created_at": self.created_at.isoformat(),
            "score": self.score,
            "method": self.method,
            "events": [
                {
                    "event_id": e.event_id,
                    "council": e.source_council,
                    "source_ref": e.source_ref,
                    "type": e.event_type.value,
                    "occurred_at": e.occurred_at.isoformat(),
                }
                for e in self.events
            ],
            "fields": {event: dict(values) for event, values in self.fields.items()},
        }


def read_notification(value: bytes, *, directory: Directory, codec: Codec) -> MatchNotification:
    """Decode a message and verify the broker's signature on it.

    The broker is whichever member the signed directory lists as the broker:
    no member id is assumed here.

    Raises:
        schemas.DecodeError: the bytes are not a notification (reason per leaf).
        consent.SignatureInvalid: not signed by the directory's broker.
    """
    broker = directory.broker
    broker_key = broker.signing_key
    if broker_key is None:  # the directory parser requires one; kept for the type checker
        raise UnknownAgreement("the directory's broker has no signing key", reason="no-key")
    notification, _ = open_envelope(
        value,
        SignatureDomain.NOTIFICATION,
        lambda signer: broker_key if signer == broker.member_id else None,
        codec=codec,
    )
    assert isinstance(notification, MatchNotification)
    return notification


def _open_payload(
    key: X25519PrivateKey, payload: SealedPayload, events: tuple[MatchedEvent, ...]
) -> tuple[MatchedEvent, dict[str, str]]:
    """The event a payload was sealed for, and its fields (its id is bound in the sealing)."""
    for event in events:
        try:
            return event, open_fields(key, payload, event_id=event.event_id)
        except SealingFailed as exc:
            if exc.reason != SealingFailed.reason:  # it opened, but holds undeclared fields
                raise FieldsMismatch(
                    f"a payload of event {event.event_id} holds other fields than it declares"
                ) from exc
            continue
    raise SealingFailed("a payload addressed to this service does not open")


def open_notification(
    notification: MatchNotification,
    *,
    service: str,
    key: X25519PrivateKey,
    directory: Directory,
) -> OpenedNotification:
    """Open the payloads sealed to ``service`` and check each against the agreement.

    Call only on a notification from ``read_notification`` (signature verified).
    Payloads addressed to other services are left sealed.

    Raises:
        NotAddressed: ``service`` is not a recipient of the notification or of its
            agreement (reason ``not-addressed`` or ``not-a-recipient``).
        UnknownAgreement: the agreement is not in the signed directory.
        AgreementMismatch: a payload names another agreement.
        consent.SealingFailed: a payload addressed to this service does not open.
        FieldsMismatch: the opened fields are not the ones the payload declares.
        FieldNotGranted: an opened field is not granted for that event type.
    """
    if notification.recipient != service:
        raise NotAddressed(f"notification {notification.notification_id} is not for {service}")
    agreement = directory.agreement(notification.agreement_id)
    if agreement is None:
        raise UnknownAgreement(f"agreement {notification.agreement_id} is not in the directory")
    if service not in agreement.recipients:
        raise NotAddressed(
            f"{service} is not a recipient of {agreement.agreement_id}", reason="not-a-recipient"
        )
    opened: dict[str, dict[str, str]] = {}
    for payload in notification.sealed:
        if payload.recipient != service:
            continue
        if payload.agreement_id != notification.agreement_id:
            raise AgreementMismatch(
                f"notification {notification.notification_id} carries a payload of "
                f"agreement {payload.agreement_id}"
            )
        event, values = _open_payload(key, payload, notification.events)
        names = frozenset(values)
        if names != frozenset(payload.fields):
            raise FieldsMismatch(
                f"a payload of event {event.event_id} holds other fields than it declares"
            )
        extra = sorted(names - agreement.allowed_fields(event.event_type))
        if extra:
            raise FieldNotGranted(
                f"{agreement.agreement_id} does not grant {extra} of {event.event_type.value}"
            )
        opened.setdefault(event.event_id, {}).update(values)
    return OpenedNotification(
        notification_id=notification.notification_id,
        agreement_id=notification.agreement_id,
        purpose=notification.purpose,
        service=service,
        created_at=notification.created_at,
        score=notification.score,
        method=notification.method,
        events=notification.events,
        fields=MappingProxyType({k: MappingProxyType(v) for k, v in opened.items()}),
    )
