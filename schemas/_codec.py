"""The wire codec: Avro single-object encoding by default, Confluent framing on request.

Every message names its writer schema (DESIGN section 4), so a reader decodes
old and new versions alike through Avro schema resolution. Decoding treats its
input as hostile: whatever the bytes, it returns a record or raises one of the
typed ``DecodeError`` leaves, and never reads past the message or its size limit.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any, TypeVar

from fastavro import schemaless_reader, schemaless_writer

from schemas._convert import Record, from_datum, to_datum
from schemas._direct_writers import (
    CITIZEN_EVENT_FINGERPRINT,
    SIGNED_ENVELOPE_FINGERPRINT,
    write_citizen_event,
    write_signed_envelope,
)
from schemas._errors import (
    BadLength,
    BadMarker,
    DecodeError,
    EncodeError,
    InvalidUtf8,
    MessageTooLarge,
    TrailingBytes,
    TruncatedMessage,
    UnknownSchema,
    WrongRecordType,
)
from schemas._records import CitizenEvent, ConsentRecord, RejectedRecord, SignedEnvelope
from schemas._registry import AVRO_DIR, SchemaVersion, current_line, load_versions
from schemas._scan import diagnose

__all__ = [
    "CONFLUENT_MAGIC",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "SINGLE_OBJECT_MARKER",
    "Codec",
]

SINGLE_OBJECT_MARKER = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
_T = TypeVar("_T")


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _check_ints(record: Record) -> None:
    """Avro ``int`` fields hold 32 bits; fastavro would write a larger value silently.

    Readers in other languages (Java) would then fail on the message, so the
    writer refuses it. Only the fields the schemas declare ``int`` are checked.
    """
    if isinstance(record, CitizenEvent):
        values = [record.key_epoch, *(t.epoch for t in record.tokens)]
        values.extend(t.epoch for t in record.blocking_tokens)
    elif isinstance(record, ConsentRecord):
        values = [record.key_epoch, *(t.epoch for t in record.tokens)]
    elif isinstance(record, RejectedRecord):
        values = [record.partition]
    else:
        return
    for value in values:
        if not isinstance(value, int) or not _INT_MIN <= value <= _INT_MAX:
            raise EncodeError(f"{type(record).__name__}: an int field is outside 32 bits")


def _classify(
    writer: SchemaVersion, data: bytes, start: int, limit: int, exc: Exception
) -> DecodeError:
    """The typed error for bytes fastavro could not read (error path only: no hot-path cost).

    The bounds-checked walk in ``_scan`` names the first fault (a negative or
    too-long length is ``bad-length``, not the ``EOFError`` fastavro reports);
    fastavro's own exception decides only when the walk finds nothing.
    """
    found = diagnose(writer.inlined, data, start, limit)
    if found is not None:
        return type(found)(f"{writer.name}: {found}")
    if isinstance(exc, UnicodeDecodeError):
        return InvalidUtf8(f"{writer.name}: a string is not valid UTF-8")
    if isinstance(exc, EOFError | StopIteration | struct.error):
        return TruncatedMessage(f"{writer.name}: message is truncated")
    if isinstance(exc, MemoryError | OverflowError):
        return BadLength(f"{writer.name}: a length prefix is out of range")
    return BadLength(f"{writer.name}: corrupt data ({type(exc).__name__})")


def _event_type_symbols(schema: Mapping[str, Any]) -> list[str]:
    (field,) = [f for f in schema["fields"] if f["name"] == "event_type"]
    return list(field["type"]["symbols"])


class Codec:
    """Encodes records with their schema's identity and decodes any released version.

    Args:
        registry_ids: schema name -> Confluent Schema Registry id of its latest
            version; when given, messages use the Confluent framing (default None:
            Avro single-object encoding).
        max_message_bytes: messages larger than this are refused (default 1 MiB).
    """

    def __init__(
        self,
        *,
        registry_ids: Mapping[str, int] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        versions = load_versions(AVRO_DIR)
        self._latest = {name: v[-1] for name, v in versions.items()}
        # Only the current major line: an older line's bytes are refused by name
        # (``unknown-schema``) rather than half-resolved into today's records.
        self._by_fingerprint = {
            sv.fingerprint: sv for v in versions.values() for sv in current_line(v)
        }
        self._headers = {
            name: SINGLE_OBJECT_MARKER + struct.pack("<Q", sv.fingerprint)
            for name, sv in self._latest.items()
        }
        self._registry_ids = dict(registry_ids or {})
        self._by_registry_id = {
            i: self._latest[name] for name, i in self._registry_ids.items() if name in self._latest
        }
        if registry_ids is not None:
            self._headers = {
                name: CONFLUENT_MAGIC + struct.pack(">I", i)
                for name, i in self._registry_ids.items()
            }
        self.max_message_bytes = max_message_bytes
        # The connector's two records per row skip fastavro while the latest
        # schemas are the ones their direct writers were written for.
        event = self._latest.get("CitizenEvent")
        self._event_symbols: dict[str, int] | None = None
        if event is not None and event.fingerprint == CITIZEN_EVENT_FINGERPRINT:
            symbols = _event_type_symbols(event.inlined)
            self._event_symbols = {name: index for index, name in enumerate(symbols)}
        envelope = self._latest.get("SignedEnvelope")
        self._direct_envelope = (
            envelope is not None and envelope.fingerprint == SIGNED_ENVELOPE_FINGERPRINT
        )

    def _datum(self, record: Record) -> tuple[str, Any]:
        try:
            name, datum = to_datum(record)
        except (KeyError, AttributeError, OverflowError, ValueError) as exc:
            raise EncodeError(f"cannot encode a {type(record).__name__}") from exc
        _check_ints(record)
        return name, datum

    def _write(self, name: str, datum: Any, out: io.BytesIO) -> bytes:
        try:
            schemaless_writer(out, self._latest[name].parsed, datum)
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise EncodeError(f"cannot encode {name}: {type(exc).__name__}") from exc
        return self._sized(name, out.getvalue())

    def _sized(self, name: str, data: bytes) -> bytes:
        if len(data) > self.max_message_bytes:
            raise MessageTooLarge(f"{name} message of {len(data)} bytes exceeds the limit")
        return data

    def _direct(self, record: Record) -> bytes | None:
        """The schemaless bytes from a direct writer, or None where the generic path writes."""
        if type(record) is CitizenEvent and self._event_symbols is not None:
            return write_citizen_event(record, self._event_symbols)
        if type(record) is SignedEnvelope and self._direct_envelope:
            return write_signed_envelope(record)
        return None

    def encode(self, record: Record) -> bytes:
        """The framed Avro bytes of a record."""
        direct = self._direct(record)
        name = type(record).__name__
        if direct is not None and name in self._headers:
            return self._sized(name, self._headers[name] + direct)
        name, datum = self._datum(record)
        header = self._headers.get(name)
        if header is None:
            raise EncodeError(f"cannot encode {name}: no framing header for it")
        out = io.BytesIO()
        out.write(header)
        return self._write(name, datum, out)

    def encode_body(self, record: Record) -> tuple[int, bytes]:
        """``(writer fingerprint, schemaless bytes)``: what a ``SignedEnvelope`` carries.

        Written once, by the signer; every verifier checks the signature on these
        exact bytes and decodes them, and nobody encodes the record again.
        """
        direct = self._direct(record)
        if direct is not None:
            name = type(record).__name__
            return self._latest[name].fingerprint, self._sized(name, direct)
        name, datum = self._datum(record)
        return self._latest[name].fingerprint, self._write(name, datum, io.BytesIO())

    def decode_body(self, fingerprint: int, body: bytes, kind: type[_T]) -> _T:
        """The record of an envelope's body, written under the schema ``fingerprint`` names.

        Call it only after the envelope's signature verified: decoding is the
        expensive step, and the fingerprint is trusted because it was signed.

        Raises:
            DecodeError: one of its leaves (``wrong-record-type`` when the
                fingerprint names another record than ``kind``).
            UnknownSchema: no schema of the current major line has that fingerprint.
        """
        if len(body) > self.max_message_bytes:
            raise MessageTooLarge(f"body of {len(body)} bytes exceeds the limit")
        writer = self._by_fingerprint.get(fingerprint)
        if writer is None:
            raise UnknownSchema(f"no released schema has fingerprint {fingerprint:016x}")
        if writer.name != kind.__name__:
            raise WrongRecordType(f"expected {kind.__name__}, the body is a {writer.name}")
        record = self._read(writer, body, 0)
        assert isinstance(record, kind)
        return record

    def _writer(self, data: bytes) -> tuple[SchemaVersion, int]:
        if data[:2] == SINGLE_OBJECT_MARKER:
            if len(data) < 10:
                raise TruncatedMessage("message ends inside the single-object header")
            (fingerprint,) = struct.unpack_from("<Q", data, 2)
            writer = self._by_fingerprint.get(fingerprint)
            if writer is None:
                raise UnknownSchema(f"no released schema has fingerprint {fingerprint:016x}")
            return writer, 10
        if data[:1] == CONFLUENT_MAGIC and self._registry_ids:
            if len(data) < 5:
                raise TruncatedMessage("message ends inside the registry header")
            (schema_id,) = struct.unpack_from(">I", data, 1)
            writer = self._by_registry_id.get(schema_id)
            if writer is None:
                raise UnknownSchema(f"no schema is registered with id {schema_id}")
            return writer, 5
        if not data:
            raise TruncatedMessage("empty message")
        raise BadMarker("message does not start with a known framing marker")

    def decode(self, data: bytes) -> Record:
        """The record in a message, read with the latest schema of its kind.

        Raises:
            DecodeError: one of its leaves, with a ``reason`` code; nothing else.
        """
        if len(data) > self.max_message_bytes:
            raise MessageTooLarge(f"message of {len(data)} bytes exceeds the limit")
        writer, start = self._writer(data)
        return self._read(writer, data, start)

    def _read(self, writer: SchemaVersion, data: bytes, start: int) -> Record:
        reader = self._latest[writer.name]
        stream = io.BytesIO(data)
        stream.seek(start)
        try:
            datum: Any = schemaless_reader(stream, writer.parsed, reader.parsed)
        except Exception as exc:  # noqa: BLE001 - fastavro raises many kinds on corrupt input
            raise _classify(writer, data, start, self.max_message_bytes, exc) from exc
        if stream.tell() != len(data):
            raise TrailingBytes(
                f"{writer.name}: {len(data) - stream.tell()} bytes after the record"
            )
        try:
            return from_datum(writer.name, datum)
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"{writer.name}: datum does not form a record") from exc

    def decode_as(self, data: bytes, kind: type[_T]) -> _T:
        """Decode and insist on one record type (a consent topic carries consent records)."""
        record = self.decode(data)
        if not isinstance(record, kind):
            raise WrongRecordType(f"expected {kind.__name__}, got {type(record).__name__}")
        return record
