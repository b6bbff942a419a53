"""Typed records for every message on fedbroker's topics.

These frozen dataclasses are the in-memory form of the Avro schemas in
``schemas/avro/``; the codec turns one into the other. Every package speaks in
these types, so a field renamed here is a contract change (DESIGN section 4).
Times are timezone-aware UTC datetimes; tokens are raw 32-byte HMAC values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar

from schemas._catalogue import EventType

__all__ = [
    "AuditKind",
    "AuditRecord",
    "CitizenEvent",
    "ConsentRecord",
    "ConsentState",
    "LinkageToken",
    "MatchNotification",
    "MatchedEvent",
    "Outcome",
    "RejectedRecord",
    "SealedPayload",
]

TOKEN_BYTES = 32
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LinkageToken:
    """A keyed pseudonym of one normalised identifier (or blocking key).

    ``domain`` says what was tokenised (``nhs``, ``nino``, ``uprn``, ``name+dob``,
    or a blocking key such as ``soundex+yob``) so that tokens from different
    domains never collide; ``epoch`` is the linkage-key version used.
    """

    domain: str
    epoch: int
    value: bytes

    def key(self) -> str:
        """The Kafka message key and table key: stable, printable, no personal data."""
        return f"{self.domain}:{self.epoch}:{self.value.hex()}"


@dataclass(frozen=True, slots=True)
class SealedPayload:
    """Fields sealed to one recipient's X25519 key; the broker cannot open it.

    ``enc`` is the sender's ephemeral public key (HPKE's encapsulated key).
    """

    recipient: str
    agreement_id: str
    enc: bytes
    ciphertext: bytes
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CitizenEvent:
    """One fact about a person or property, as a council's connector publishes it."""

    SCHEMA_NAME: ClassVar[str] = "uk.gov.fedbroker.CitizenEvent"

    event_id: str
    source_council: str
    source_system: str
    event_type: EventType
    occurred_at: datetime
    published_at: datetime
    key_epoch: int
    source_ref: str
    tokens: tuple[LinkageToken, ...] = ()
    blocking_tokens: tuple[LinkageToken, ...] = ()
    fuzzy: bytes | None = None
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    sealed: tuple[SealedPayload, ...] = ()
    signature: bytes = b""


class ConsentState(StrEnum):
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"
    OBJECTED = "objected"
    ERASURE_REQUESTED = "erasure-requested"


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A resident's choice about one agreement (or a whole purpose), as recorded.

    ``scope`` is an agreement id, or ``purpose:<name>`` for every agreement
    serving that purpose, or ``*`` for all of them (used by erasure requests).
    """

    SCHEMA_NAME: ClassVar[str] = "uk.gov.fedbroker.ConsentRecord"

    record_id: str
    council: str
    tokens: tuple[LinkageToken, ...]
    scope: str
    state: ConsentState
    recorded_at: datetime
    published_at: datetime
    key_epoch: int
    signature: bytes = b""
    blocking_tokens: tuple[LinkageToken, ...] = ()


@dataclass(frozen=True, slots=True)
class MatchedEvent:
    """The reference to one event in a notification: no tokens, no clear data."""

    event_id: str
    source_council: str
    source_ref: str
    event_type: EventType
    occurred_at: datetime


class Outcome(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class MatchNotification:
    """A purpose-limited disclosure to an agreement's recipients, signed by the broker."""

    SCHEMA_NAME: ClassVar[str] = "uk.gov.fedbroker.MatchNotification"

    notification_id: str
    agreement_id: str
    purpose: str
    recipients: tuple[str, ...]
    created_at: datetime
    events: tuple[MatchedEvent, ...]
    score: float
    method: str
    sealed: tuple[SealedPayload, ...] = ()
    signature: bytes = b""


class AuditKind(StrEnum):
    DECISION = "decision"
    CHECKPOINT = "checkpoint"
    ERASURE = "erasure"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One link of an audit hash chain (one chain per ``fed.audit`` partition).

    ``record_hash`` is SHA-256 over the record's canonical bytes with
    ``record_hash`` and ``signature`` empty; ``prev_hash`` links to the previous
    record of the same chain. A checkpoint carries the chain's count and head
    hash in ``seq``/``prev_hash`` and is signed by the broker.
    """

    SCHEMA_NAME: ClassVar[str] = "uk.gov.fedbroker.AuditRecord"

    decision_id: str
    chain: str
    seq: int
    kind: AuditKind
    decided_at: datetime
    agreement_id: str
    outcome: Outcome | None
    reasons: tuple[str, ...]
    subject_tokens: tuple[str, ...]
    event_ids: tuple[str, ...]
    recipients: tuple[str, ...]
    notification_id: str | None
    prev_hash: bytes
    record_hash: bytes = b""
    signature: bytes = b""


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """Why a message was refused. Holds coordinates and a reason, never content."""

    SCHEMA_NAME: ClassVar[str] = "uk.gov.fedbroker.RejectedRecord"

    rejected_id: str
    topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    rejected_at: datetime
    event_id: str | None = None
    source_council: str | None = None
