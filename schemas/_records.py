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
    "DEFAULT_ENCODING",
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
    "SignedEnvelope",
]

TOKEN_BYTES = 32
#: The fuzzy encoding's parameter set when an event names none (CitizenEvent v3's default).
DEFAULT_ENCODING = "clk-v1"
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
    """One fact about a person or property, as a council's connector publishes it.

    Signed in a ``SignedEnvelope`` (it carries no signature of its own);
    ``encoding`` names the parameter set of ``fuzzy``.
    """

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
    encoding: str = DEFAULT_ENCODING


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
    """A purpose-limited disclosure to one service, signed by the broker in an envelope.

    One per recipient, on that recipient's own topic (DESIGN section 3), so no
    service learns what was disclosed to another.
    """

    SCHEMA_NAME: ClassVar[str] = "uk.gov.fedbroker.MatchNotification"

    notification_id: str
    agreement_id: str
    purpose: str
    recipient: str
    created_at: datetime
    events: tuple[MatchedEvent, ...]
    score: float
    method: str
    sealed: tuple[SealedPayload, ...] = ()


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
class SignedEnvelope:
    """A record's exact encoded bytes and the signature over them (DESIGN section 10).

    The signature covers ``domain``, ``writer_fingerprint`` and ``body``
    (``schemas.signing_input``), so a verifier checks it on the bytes as they
    arrived, before decoding, and never re-encodes a record.
    """

    SCHEMA_NAME: ClassVar[str] = "uk.gov.fedbroker.SignedEnvelope"

    domain: str
    signer: str
    writer_fingerprint: int
    body: bytes
    signature: bytes


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
