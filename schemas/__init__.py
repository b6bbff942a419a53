"""The contract every fedbroker part shares: records, event types, Avro codec, errors.

``schemas`` imports no other fedbroker package; connectors, consent and the
broker agree only through what is exported here (DESIGN sections 3, 4 and 9).
"""

from __future__ import annotations

from schemas._attributes import ATTRIBUTE_VALUES, canonical_attribute
from schemas._catalogue import EVENT_CATALOGUE, EventType, EventTypeSpec
from schemas._codec import (
    CONFLUENT_MAGIC,
    DEFAULT_MAX_MESSAGE_BYTES,
    SINGLE_OBJECT_MARKER,
    Codec,
)
from schemas._compatibility import (
    RECORDED_BREAKS,
    CompatibilityProblem,
    check_compatibility,
    sample_datum,
)
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
from schemas._ids import citizen_event_id, event_id_bound, event_id_for
from schemas._records import (
    DEFAULT_ENCODING,
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
    SignedEnvelope,
)
from schemas._registry import (
    AVRO_DIR,
    MAJOR_MARK,
    SchemaVersion,
    crc64_avro,
    current_line,
    load_versions,
    major_lines,
)
from schemas._signing import DOMAIN_RECORDS, NOT_AVRO, SignatureDomain, signing_input

__all__ = [
    "ATTRIBUTE_VALUES",
    "AVRO_DIR",
    "CONFLUENT_MAGIC",
    "DEFAULT_ENCODING",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DOMAIN_RECORDS",
    "EVENT_CATALOGUE",
    "MAJOR_MARK",
    "NOT_AVRO",
    "RECORDED_BREAKS",
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
    "SignatureDomain",
    "SignedEnvelope",
    "TrailingBytes",
    "TruncatedMessage",
    "UnknownSchema",
    "WrongRecordType",
    "canonical_attribute",
    "check_compatibility",
    "citizen_event_id",
    "crc64_avro",
    "current_line",
    "event_id_bound",
    "event_id_for",
    "load_versions",
    "major_lines",
    "sample_datum",
    "signing_input",
]
