"""The subscriber's exception tree: refusals of a notification, and hand-over failures.

Tree (mirrored in docs/errors.md)::

    FedbrokerError
    └── SubscriberError                "subscriber"
        ├── NotificationRefused        "notification-refused"  never handed over
        │   ├── NotAddressed           "not-addressed"      not for this service
        │   ├── UnknownAgreement       "unknown-agreement"  not in the signed directory
        │   ├── AgreementMismatch      "agreement-mismatch" a payload of another agreement
        │   ├── FieldsMismatch         "fields-mismatch"    opened fields differ from declared
        │   ├── FieldNotGranted        "field-not-granted"  the agreement does not grant it
        │   └── NotificationExpired    "expired"            older than ids are remembered;
        │                                                   also "future-dated"
        ├── HandoverFailed             "handover-failed"    transient: retried, never lost;
        │                                                    also "webhook-redirected",
        │                                                    "webhook-misconfigured", "interrupted"
        │   └── HandoverRefused        "handover-refused"   the service said no for good;
        │                                                    also "bad-url", "webhook-not-https"
        ├── DeliveryStoreError         "store-failed"       the delivered-id store is unusable;
        │   │                                                also "store-in-use"
        │   └── DeliveryStoreDamaged   "store-damaged"      truncated, emptied or corrupt: refused,
        │                                                    never taken for a new store
        └── KafkaUnavailable           "kafka-unavailable"  the Kafka client failed

A refused notification is dead-lettered under its ``reason`` (consent's
``signature-invalid`` and ``sealing-failed`` and schemas' decode reasons are
used as they are). Messages name notification, agreement, service and field
names only: never a field's value, a ciphertext or a key.
"""

from __future__ import annotations

from schemas import FedbrokerError

__all__ = [
    "AgreementMismatch",
    "DeliveryStoreDamaged",
    "DeliveryStoreError",
    "FieldNotGranted",
    "FieldsMismatch",
    "HandoverFailed",
    "HandoverRefused",
    "KafkaUnavailable",
    "NotAddressed",
    "NotificationExpired",
    "NotificationRefused",
    "SubscriberError",
    "UnknownAgreement",
]


class SubscriberError(FedbrokerError):
    """Base of every error raised by ``subscriber``."""

    reason = "subscriber"


class NotificationRefused(SubscriberError):
    """The notification must not reach the service; it goes to the dead-letter file."""

    reason = "notification-refused"


class NotAddressed(NotificationRefused):
    reason = "not-addressed"


class UnknownAgreement(NotificationRefused):
    reason = "unknown-agreement"


class AgreementMismatch(NotificationRefused):
    reason = "agreement-mismatch"


class FieldsMismatch(NotificationRefused):
    reason = "fields-mismatch"


class FieldNotGranted(NotificationRefused):
    reason = "field-not-granted"


class NotificationExpired(NotificationRefused):
    """Made before the oldest id the store still remembers (or so far ahead of this
    clock that it would be): handing it over could repeat one handed over long ago."""

    reason = "expired"


class HandoverFailed(SubscriberError):
    """The service could not take it now (webhook down, 5xx): retry later, keep the offset."""

    reason = "handover-failed"


class HandoverRefused(HandoverFailed):
    """The service refused this notification for good (a 4xx about it, such as 400
    or 422, not about the endpoint): dead-lettered."""

    reason = "handover-refused"


class DeliveryStoreError(SubscriberError):
    """The delivered-id store cannot be read or written; nothing is handed over."""

    reason = "store-failed"


class DeliveryStoreDamaged(DeliveryStoreError):
    """The store's file is there but is not a whole store: cut to 0 bytes or short by a
    crash or a full disk, its tables gone, or corrupt. Opening it as new would hand
    every notification still on the topic over again, so the subscriber refuses to
    start until an operator decides (docs/subscriber.md, "A damaged store")."""

    reason = "store-damaged"


class KafkaUnavailable(SubscriberError):
    """A Kafka client call failed (translated at the edge, ``from`` the client's error)."""

    reason = "kafka-unavailable"
