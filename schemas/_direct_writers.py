"""Avro writers spelled out for the two records a connector writes per source row.

A connector encodes every row twice: the ``CitizenEvent`` body, then the
``SignedEnvelope`` around it. fastavro's generic writer first needs the record
as a dict (``to_datum``) and then walks the schema per field; for an event with
its tokens and sealed payloads that came to about 50 us a row, a tenth of the
connector's CPU (issue 12). These writers walk the record itself, in the
schema's field order, and write the same bytes.

They are exact only for the schema versions they were written for, so each is
pinned to its writer schema's fingerprint (the Parsing Canonical Form, which
fixes field order, types and enum symbols: everything that decides the bytes).
The codec uses a writer only while the latest schema has that fingerprint. A
writer handles only values of the exact types the records declare, in range;
for anything else it returns None and the codec's generic path encodes the
record, or raises the typed error it always raised.
``tests/schemas/test_direct_writers.py`` checks the bytes against fastavro.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from schemas._records import CitizenEvent, LinkageToken, SealedPayload, SignedEnvelope

__all__ = [
    "CITIZEN_EVENT_FINGERPRINT",
    "SIGNED_ENVELOPE_FINGERPRINT",
    "write_citizen_event",
    "write_signed_envelope",
]

#: CitizenEvent v3, the schema ``write_citizen_event`` writes.
CITIZEN_EVENT_FINGERPRINT = 0x34C5AB8255BDD1D5
#: SignedEnvelope v1, the schema ``write_signed_envelope`` writes.
SIGNED_ENVELOPE_FINGERPRINT = 0xEEAB303848FA7A2F

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_TOKEN_BYTES = 32  # Token32 is a fixed of 32 bytes
_FINGERPRINT_BYTES = 8  # Crc64Avro is a fixed of 8 bytes
_UNION_BYTES = b"\x02"  # branch 1 of ["null", "bytes"], zigzag-encoded


def _unsupported() -> ValueError:
    """What a writer raises for a value it leaves to the generic path (never escapes it)."""
    return ValueError("left to the generic writer")


def _long(value: int, out: bytearray) -> None:
    """Avro ``int``/``long``: zigzag, then base-128 varint, least significant group first."""
    if 0 <= value < 64:  # lengths and small counts: one byte
        out.append(value << 1)
        return
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise _unsupported()
    n = (value << 1) ^ (value >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _int(value: object, out: bytearray) -> None:
    if type(value) is not int or not _INT_MIN <= value <= _INT_MAX:
        raise _unsupported()
    _long(value, out)


def _string(value: object, out: bytearray) -> None:
    if type(value) is not str:
        raise _unsupported()
    data = value.encode("utf-8")  # a lone surrogate raises: the generic path reports it
    size = len(data)
    if size < 64:  # ``_long`` inlined: most strings are short
        out.append(size << 1)
    else:
        _long(size, out)
    out += data


def _bytes(value: object, out: bytearray) -> None:
    if type(value) is not bytes:
        raise _unsupported()
    size = len(value)
    if size < 64:
        out.append(size << 1)
    else:
        _long(size, out)
    out += value


def _fixed(value: object, size: int, out: bytearray) -> None:
    if type(value) is not bytes or len(value) != size:
        raise _unsupported()
    out += value


def _timestamp_micros(value: object, out: bytearray) -> None:
    """An aware datetime as microseconds since the epoch, as fastavro computes it."""
    if type(value) is not datetime or value.tzinfo is None:
        raise _unsupported()
    delta = value - _EPOCH
    _long((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds, out)


def _tokens(tokens: object, out: bytearray) -> None:
    if type(tokens) is not tuple:
        raise _unsupported()
    if tokens:
        _long(len(tokens), out)
        for token in tokens:
            if type(token) is not LinkageToken:
                raise _unsupported()
            _string(token.domain, out)
            _int(token.epoch, out)
            _fixed(token.value, _TOKEN_BYTES, out)
    out.append(0)


def _attributes(attributes: object, out: bytearray) -> None:
    if type(attributes) is not dict and not isinstance(attributes, Mapping):
        raise _unsupported()
    if attributes:
        items = sorted(attributes.items())  # as ``to_datum`` orders them
        _long(len(items), out)
        for key, value in items:
            _string(key, out)
            _string(value, out)
    out.append(0)


def _sealed(payloads: object, out: bytearray) -> None:
    if type(payloads) is not tuple:
        raise _unsupported()
    if payloads:
        _long(len(payloads), out)
        for payload in payloads:
            if type(payload) is not SealedPayload or type(payload.fields) is not tuple:
                raise _unsupported()
            _string(payload.recipient, out)
            _string(payload.agreement_id, out)
            _bytes(payload.enc, out)
            _bytes(payload.ciphertext, out)
            if payload.fields:
                _long(len(payload.fields), out)
                for name in payload.fields:
                    _string(name, out)
            out.append(0)
    out.append(0)


def write_citizen_event(event: CitizenEvent, symbols: Mapping[str, int]) -> bytes | None:
    """The schemaless Avro bytes of ``event`` under ``CITIZEN_EVENT_FINGERPRINT``, or None.

    Args:
        event: the event (exactly a ``CitizenEvent``).
        symbols: the schema's ``EventType`` symbols, each to its index.

    Returns:
        The bytes fastavro writes for ``to_datum(event)``, or None when a value
        is not of its declared type or out of range (the generic path decides).
    """
    out = bytearray()
    try:
        _string(event.event_id, out)
        _string(event.source_council, out)
        _string(event.source_system, out)
        _long(symbols[event.event_type.name], out)
        _timestamp_micros(event.occurred_at, out)
        _timestamp_micros(event.published_at, out)
        _int(event.key_epoch, out)
        _string(event.source_ref, out)
        _tokens(event.tokens, out)
        _tokens(event.blocking_tokens, out)
        if event.fuzzy is None:
            out.append(0)
        else:
            out += _UNION_BYTES
            _bytes(event.fuzzy, out)
        _attributes(event.attributes, out)
        _sealed(event.sealed, out)
        _string(event.encoding, out)
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
        return None
    return bytes(out)


def write_signed_envelope(envelope: SignedEnvelope) -> bytes | None:
    """The schemaless Avro bytes of ``envelope`` under ``SIGNED_ENVELOPE_FINGERPRINT``, or None.

    None as for ``write_citizen_event``.
    """
    out = bytearray()
    try:
        _string(envelope.domain, out)
        _string(envelope.signer, out)
        fingerprint = envelope.writer_fingerprint
        if type(fingerprint) is not int or not 0 <= fingerprint < 2**64:
            return None
        _fixed(fingerprint.to_bytes(_FINGERPRINT_BYTES, "little"), _FINGERPRINT_BYTES, out)
        _bytes(envelope.body, out)
        _bytes(envelope.signature, out)
    except ValueError:  # a lone surrogate (UnicodeEncodeError) or ``_unsupported``
        return None
    return bytes(out)
