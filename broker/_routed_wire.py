"""The routed batch's Avro schema and the binary encoding the verify stage writes by hand.

``broker._routed`` sends each item in several partitions' messages; encoding
each item once and joining the bytes (Avro's binary encoding of an array is a
count, the items, then zero) is what lets a batch be cut to size without
encoding anything twice. These helpers write exactly what fastavro would for
``ROUTED_SCHEMA``, and fastavro reads it back (a test compares them).

An item's sighting travels as ``bytes`` holding a ``RoutedSighting`` record
(version 2): an event reaches three or four partitions, each reading the same
bytes, and a worker decodes them once (``sighting_from_bytes`` keeps the
recent ones). Decoding the record in every partition's copy, objects and all,
took 57 us per item, half of it building the objects.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import fastavro

from broker._sightings import Sighting
from schemas import EventType, SealedPayload

__all__ = [
    "PARSED_ROUTED",
    "ROUTED_SCHEMA",
    "ROUTED_VERSION",
    "avro_long",
    "avro_string",
    "avro_strings",
    "micros",
    "sighting_bytes",
    "sighting_from_bytes",
]

ROUTED_VERSION = 2
#: Decoded sightings kept by their bytes: one verify batch's events, each read
#: again by every partition it reaches (a few hundred events, a few partitions).
_DECODED_SIGHTINGS = 8192
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_BYTE = 64  # zig-zag 0..63 fits one varint byte
_SMALL = tuple(bytes((n << 1,)) for n in range(_ONE_BYTE))

_SIGHTING: dict[str, Any] = {
    "type": "record",
    "name": "RoutedSighting",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "source_council", "type": "string"},
        {"name": "source_ref", "type": "string"},
        {"name": "event_type", "type": "string"},
        {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "key_epoch", "type": "int"},
        {"name": "tokens", "type": {"type": "array", "items": "string"}},
        {"name": "blocking", "type": {"type": "array", "items": "string"}},
        {"name": "fuzzy", "type": ["null", "bytes"]},
        {"name": "attributes", "type": {"type": "map", "values": "string"}},
        {
            "name": "sealed",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "RoutedSealed",
                    "fields": [
                        {"name": "recipient", "type": "string"},
                        {"name": "agreement_id", "type": "string"},
                        {"name": "enc", "type": "bytes"},
                        {"name": "ciphertext", "type": "bytes"},
                        {"name": "fields", "type": {"type": "array", "items": "string"}},
                    ],
                },
            },
        },
        {
            "name": "expires_at",
            "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
        },
        {"name": "encoding", "type": "string"},
    ],
}

#: The routed batch (namespace ``fedbroker.internal``; never read outside the broker).
ROUTED_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "RoutedBatch",
    "namespace": "fedbroker.internal",
    "fields": [
        {"name": "version", "type": "int"},
        {
            "name": "items",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "RoutedItem",
                    "fields": [
                        {
                            "name": "kind",
                            "type": {
                                "type": "enum",
                                "name": "RoutedKind",
                                "symbols": ["event", "consent", "cascade", "tick"],
                            },
                        },
                        {"name": "tokens", "type": {"type": "array", "items": "string"}},
                        {"name": "origin", "type": "string"},
                        {
                            "name": "published_at",
                            "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
                        },
                        # a RoutedSighting (_SIGHTING) in Avro binary, decoded once per worker
                        {"name": "sighting", "type": ["null", "bytes"]},
                        {"name": "record", "type": ["null", "bytes"]},
                        {"name": "forget", "type": {"type": "array", "items": "string"}},
                    ],
                },
            },
        },
    ],
}
PARSED_ROUTED = fastavro.parse_schema(ROUTED_SCHEMA)
_PARSED_SIGHTING = fastavro.parse_schema(_SIGHTING)


def avro_long(value: int) -> bytes:
    """Avro ``long``: zig-zag, then base-128 varint."""
    if 0 <= value < _ONE_BYTE:
        return _SMALL[value]
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(text: str) -> bytes:
    data = text.encode()
    return avro_long(len(data)) + data


def avro_strings(texts: Sequence[str]) -> bytes:
    if not texts:
        return b"\x00"
    return avro_long(len(texts)) + b"".join(avro_string(t) for t in texts) + b"\x00"


def micros(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


def sighting_bytes(sighting: Sighting) -> bytes:
    """One sighting as the ``RoutedSighting`` record, in Avro's binary encoding."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _PARSED_SIGHTING, _sighting_datum(sighting))
    return out.getvalue()


def _sighting_datum(s: Sighting) -> dict[str, Any]:
    return {
        "event_id": s.event_id,
        "source_council": s.source_council,
        "source_ref": s.source_ref,
        "event_type": s.event_type.value,
        "occurred_at": s.occurred_at,
        "key_epoch": s.key_epoch,
        "tokens": list(s.tokens),
        "blocking": list(s.blocking),
        "fuzzy": s.fuzzy,
        "attributes": dict(s.attributes),
        "sealed": [
            {
                "recipient": p.recipient,
                "agreement_id": p.agreement_id,
                "enc": p.enc,
                "ciphertext": p.ciphertext,
                "fields": list(p.fields),
            }
            for p in s.sealed
        ],  # fmt: skip
        "expires_at": s.expires_at,
        "encoding": s.encoding,
    }


@functools.lru_cache(maxsize=_DECODED_SIGHTINGS)
def sighting_from_bytes(data: bytes) -> Sighting:
    """Inverse of ``sighting_bytes``; the same bytes give the same (immutable) sighting.

    Raises:
        ValueError, TypeError, KeyError, EOFError, IndexError, StopIteration:
            the bytes are not a ``RoutedSighting`` (the caller translates them).
    """
    datum = fastavro.schemaless_reader(io.BytesIO(data), _PARSED_SIGHTING, None)
    if not isinstance(datum, dict):
        raise ValueError("not a RoutedSighting record")
    return _sighting_from_datum(datum)


def _sighting_from_datum(d: Mapping[str, Any]) -> Sighting:
    attributes = d["attributes"]
    return Sighting(
        event_id=d["event_id"],
        source_council=d["source_council"],
        source_ref=d["source_ref"],
        event_type=EventType(d["event_type"]),
        occurred_at=d["occurred_at"],
        key_epoch=d["key_epoch"],
        tokens=tuple(d["tokens"]),
        blocking=tuple(d["blocking"]),
        fuzzy=d["fuzzy"],
        attributes=MappingProxyType(dict(attributes)) if attributes else MappingProxyType({}),
        sealed=tuple(
            SealedPayload(
                p["recipient"], p["agreement_id"], p["enc"], p["ciphertext"], tuple(p["fields"])
            )
            for p in d["sealed"]
        ),  # fmt: skip
        expires_at=d["expires_at"],
        encoding=d["encoding"],
    )
