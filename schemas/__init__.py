"""The contract every fedbroker part shares: records, event types, Avro codec, errors.

``schemas`` imports no other fedbroker package; connectors, consent and the
broker agree only through what is exported here (DESIGN sections 3, 4 and 9).
"""

from __future__ import annotations

from schemas._catalogue import EVENT_CATALOGUE, EventType, EventTypeSpec
from schemas._codec import (
    CONFLUENT_MAGIC,
    DEFAULT_MAX_MESSAGE_BYTES,
    SINGLE_OBJECT_MARKER,
    Codec,
    canonical_bytes,
    canonical_version,
)
from schemas._compatibility import CompatibilityProblem, check_compatibility, sample_datum
from schemas._convert import RECORD_TYPES, Record
from schemas._errors import (
    BadLength,
    BadMarker,
    DecodeError,
    EncodeError,
    FedbrokerError,
    IncompatibleSchema,
    InvalidUtf8,
    MessageTooLarge,
    SchemaError,
    TrailingBytes,
    TruncatedMessage,
    UnknownSchema,
    WrongRecordType,
)
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
from schemas._registry import AVRO_DIR, SchemaVersion, crc64_avro, load_versions

__all__ = [
    "AVRO_DIR",
    "CONFLUENT_MAGIC",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "EVENT_CATALOGUE",
    "RECORD_TYPES",
    "SINGLE_OBJECT_MARKER",
    "AuditKind",
    "AuditRecord",
    "BadLength",
    "BadMarker",
    "CitizenEvent",
    "Codec",
    "CompatibilityProblem",
    "ConsentRecord",
    "ConsentState",
    "DecodeError",
    "EncodeError",
    "EventType",
    "EventTypeSpec",
    "FedbrokerError",
    "IncompatibleSchema",
    "InvalidUtf8",
    "LinkageToken",
    "MatchNotification",
    "MatchedEvent",
    "MessageTooLarge",
    "Outcome",
    "Record",
    "RejectedRecord",
    "SchemaError",
    "SchemaVersion",
    "SealedPayload",
    "TrailingBytes",
    "TruncatedMessage",
    "UnknownSchema",
    "WrongRecordType",
    "canonical_bytes",
    "canonical_version",
    "check_compatibility",
    "crc64_avro",
    "load_versions",
    "sample_datum",
]
