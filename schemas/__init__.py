"""The contract every fedbroker part shares: records, event types, Avro codec, errors.

``schemas`` imports no other fedbroker package; connectors, consent and the
broker agree only through what is exported here (DESIGN sections 3, 4 and 9).
"""

from __future__ import annotations

from schemas._catalogue import EVENT_CATALOGUE, EventType, EventTypeSpec
from schemas._errors import FedbrokerError
from schemas._records import (
    AuditKind,
    AuditRecord,
    CitizenEvent,
    ConsentRecord,
    ConsentState,
    LinkageToken,
    MatchedEvent,
    MatchNotification,
    Outcome,
    RejectedRecord,
    SealedPayload,
)

__all__ = [
    "EVENT_CATALOGUE",
    "AuditKind",
    "AuditRecord",
    "CitizenEvent",
    "ConsentRecord",
    "ConsentState",
    "EventType",
    "EventTypeSpec",
    "FedbrokerError",
    "LinkageToken",
    "MatchNotification",
    "MatchedEvent",
    "Outcome",
    "RejectedRecord",
    "SealedPayload",
]
