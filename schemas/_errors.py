"""The root of every fedbroker exception, and the schema errors.

Tree (mirrored in docs/errors.md)::

    FedbrokerError
    └── SchemaError                    reason codes below are also metric labels
        ├── DecodeError                 bytes are not a valid message
        │   ├── TruncatedMessage        "truncated"
        │   ├── BadMarker               "bad-marker"
        │   ├── InvalidUtf8             "invalid-utf8"
        │   ├── BadLength               "bad-length"
        │   ├── TrailingBytes           "trailing-bytes"
        │   ├── MessageTooLarge         "too-large"
        │   └── WrongRecordType         "wrong-record-type"  decode_as got another type
        ├── UnknownSchema               "unknown-schema"
        ├── EncodeError                 "encode-failed"
        └── IncompatibleSchema          "incompatible-schema"

The root lives here because every package may import ``schemas``. Exceptions
carry identifiers and reason codes only, never field values.
"""

from __future__ import annotations

__all__ = [
    "BadLength",
    "BadMarker",
    "DecodeError",
    "EncodeError",
    "FedbrokerError",
    "IncompatibleSchema",
    "InvalidUtf8",
    "MessageTooLarge",
    "SchemaError",
    "TrailingBytes",
    "TruncatedMessage",
    "UnknownSchema",
    "WrongRecordType",
]


class FedbrokerError(Exception):
    """Root of every fedbroker error; ``reason`` is the stable code used in metrics."""

    reason: str = "error"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        if reason is not None:
            self.reason = reason


class SchemaError(FedbrokerError):
    """Base of the schema and codec errors."""

    reason = "schema-error"


class DecodeError(SchemaError):
    """The bytes are not a valid message."""

    reason = "decode-failed"


class TruncatedMessage(DecodeError):
    reason = "truncated"


class BadMarker(DecodeError):
    reason = "bad-marker"


class InvalidUtf8(DecodeError):
    reason = "invalid-utf8"


class BadLength(DecodeError):
    reason = "bad-length"


class TrailingBytes(DecodeError):
    reason = "trailing-bytes"


class MessageTooLarge(DecodeError):
    reason = "too-large"


class WrongRecordType(DecodeError):
    reason = "wrong-record-type"


class UnknownSchema(SchemaError):
    reason = "unknown-schema"


class EncodeError(SchemaError):
    reason = "encode-failed"


class IncompatibleSchema(SchemaError):
    reason = "incompatible-schema"
