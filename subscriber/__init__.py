"""The service side: what a combined-authority service embeds to receive its notifications.

A ``Subscriber`` reads the service's own topic (``<prefix>.notify.<service>``)
in its own consumer group, verifies the broker's signature against the signed
directory, opens only the fields sealed to this service and checks them against
the agreement, drops notifications it has already handed over, hands each one
to a sink (a callback, a JSON Lines file or a webhook), and only then commits.
A notification that fails any check goes to a local dead-letter file with its
reason code and is never handed over (DESIGN section 10; docs/subscriber.md).

It imports only ``schemas`` and ``consent``: a service runs none of the code
that tokenises people (connectors) or matches them (broker).
"""

from __future__ import annotations

from subscriber._deadletter import DeadLetter, DeadLetterFile
from subscriber._delivery import Delivery, Outcome, Place, Retry
from subscriber._errors import (
    AgreementMismatch,
    DeliveryStoreDamaged,
    DeliveryStoreError,
    FieldNotGranted,
    FieldsMismatch,
    HandoverFailed,
    HandoverRefused,
    KafkaUnavailable,
    NotAddressed,
    NotificationExpired,
    NotificationRefused,
    SubscriberError,
    UnknownAgreement,
)
from subscriber._metrics import SubscriberMetrics
from subscriber._open import OpenedNotification, open_notification, read_notification
from subscriber._settings import (
    DEFAULT_MAX_UNEXPECTED_ATTEMPTS,
    DEFAULT_PREFIX,
    DEFAULT_RETRY_BACKOFF,
    SubscriberSettings,
    default_group,
)
from subscriber._sinks import CallbackSink, JsonLinesSink, Sink
from subscriber._store import DEFAULT_RETENTION_SECONDS, DeliveryState, DeliveryStore
from subscriber._subscriber import Subscriber
from subscriber._webhook import DEFAULT_BACKOFF, DEFAULT_WEBHOOK_TIMEOUT, Backoff, WebhookSink

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MAX_UNEXPECTED_ATTEMPTS",
    "DEFAULT_PREFIX",
    "DEFAULT_RETENTION_SECONDS",
    "DEFAULT_RETRY_BACKOFF",
    "DEFAULT_WEBHOOK_TIMEOUT",
    "AgreementMismatch",
    "Backoff",
    "CallbackSink",
    "DeadLetter",
    "DeadLetterFile",
    "Delivery",
    "DeliveryState",
    "DeliveryStore",
    "DeliveryStoreDamaged",
    "DeliveryStoreError",
    "FieldNotGranted",
    "FieldsMismatch",
    "HandoverFailed",
    "HandoverRefused",
    "JsonLinesSink",
    "KafkaUnavailable",
    "NotAddressed",
    "NotificationExpired",
    "NotificationRefused",
    "OpenedNotification",
    "Outcome",
    "Place",
    "Retry",
    "Sink",
    "Subscriber",
    "SubscriberError",
    "SubscriberMetrics",
    "SubscriberSettings",
    "UnknownAgreement",
    "WebhookSink",
    "default_group",
    "open_notification",
    "read_notification",
]
