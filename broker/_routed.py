"""The routed batch: what the verify stage sends to one match partition, in Avro.

Everything sharing a token must meet in one partition in source order, so the
verify stage routes each accepted record to the partition of each token it
carries. Sending one Kafka message per token (eight per event, each a JSON
copy of the whole sighting) cost more than the matching; instead the verify
stage groups a batch of source messages by target partition and sends one
message per (batch, partition) holding, in source order, one item per record
bound there: the sighting stored once, with the list of its tokens that live in
that partition. The partition is ``partition_for(token)``, a hash of the app's
own, stable across processes and library versions (Python's ``hash`` is salted
per process, and a client's key partitioner is the client's choice, not ours).

Consent is broadcast: a consent item goes to every partition, so each
partition's copy of consent holds it before any event routed after it (DESIGN
section 6); its ``tokens`` are the record's tokens that live in that partition.
The format is internal (no service reads it) and encoded with fastavro against
``ROUTED_SCHEMA``; a message that does not decode raises ``StateInvalid``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import fastavro

from broker._errors import StateInvalid
from broker._sightings import Sighting
from schemas import EventType, SealedPayload

__all__ = [
    "BATCH_KEY",
    "MAX_ROUTED_BYTES",
    "ROUTED_SCHEMA",
    "TICK_KEY",
    "ItemKind",
    "RoutedItem",
    "decode_batch",
    "encode_batches",
    "group_by_partition",
    "partition_for",
]

#: Routed message keys; not token keys (tokens are "domain:epoch:hex").
BATCH_KEY = b"\x00batch"
TICK_KEY = b"\x00tick"
#: A routed message stays below Kafka's default 1 MiB message size, with room to spare.
MAX_ROUTED_BYTES = 512 * 1024

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
                        {"name": "sighting", "type": ["null", _SIGHTING]},
                        {"name": "record", "type": ["null", "bytes"]},
                        {"name": "forget", "type": {"type": "array", "items": "string"}},
                    ],
                },
            },
        },
    ],
}
_PARSED = fastavro.parse_schema(ROUTED_SCHEMA)
_PARSED_SIGHTING = fastavro.parse_schema(_SIGHTING)
_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_BYTE = 64  # zig-zag 0..63 fits one varint byte
_SMALL = tuple(bytes((n << 1,)) for n in range(_ONE_BYTE))


class ItemKind(StrEnum):
    """What a routed item asks its partition to do."""

    EVENT = "event"  # match the sighting under each of ``tokens``
    CONSENT = "consent"  # apply to this partition's consent copy, then under ``tokens``
    CASCADE = "cascade"  # an erasure's second step: forget ``forget`` under ``tokens``
    TICK = "tick"  # let the partition's audit chain sign a checkpoint if one is due


_KINDS = {kind: index for index, kind in enumerate(ItemKind)}


@dataclass(frozen=True, slots=True)
class RoutedItem:
    """One record bound for one partition, with the tokens it is matched under there.

    ``origin`` is where the record was read (``topic/partition/offset``), empty
    for a tick; ``record`` is a consent record's Avro bytes (the codec's own).
    """

    kind: ItemKind
    tokens: tuple[str, ...] = ()
    origin: str = ""
    published_at: datetime | None = None
    sighting: Sighting | None = None
    record: bytes | None = None
    forget: tuple[str, ...] = ()


def partition_for(token: str, partitions: int) -> int:
    """The routed partition that holds ``token``'s state: the same in every process."""
    digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def group_by_partition(items: Iterable[RoutedItem], partitions: int) -> dict[int, list[RoutedItem]]:
    """Split each item by the partitions of its tokens, keeping source order in each.

    A consent item goes to every partition (with no tokens where it has none):
    the broadcast that keeps each partition's copy of consent current. An event
    goes only where one of its tokens lives; a tick is addressed by the caller.
    """
    grouped: dict[int, list[RoutedItem]] = {}
    for item in items:
        by_partition: dict[int, list[str]] = {}
        for token in item.tokens:
            by_partition.setdefault(partition_for(token, partitions), []).append(token)
        targets = range(partitions) if item.kind is ItemKind.CONSENT else sorted(by_partition)
        for partition in targets:
            tokens = tuple(by_partition.get(partition, ()))
            grouped.setdefault(partition, []).append(_with_tokens(item, tokens))
    return grouped


def _with_tokens(item: RoutedItem, tokens: tuple[str, ...]) -> RoutedItem:
    if tokens == item.tokens:
        return item
    return RoutedItem(item.kind, tokens, item.origin, item.published_at, item.sighting,
                      item.record, item.forget)  # fmt: skip


def encode_batches(items: Sequence[RoutedItem], limit: int = MAX_ROUTED_BYTES) -> list[bytes]:
    """The items as one routed message, or as few as keep each under ``limit`` bytes.

    Each item is encoded once (a sighting once per event, however many
    partitions it goes to, since ``group_by_partition`` shares the object) and
    the messages are cut between items in order: the first holds the earliest.
    An item larger than ``limit`` on its own travels alone.
    """
    sightings: dict[int, bytes] = {}
    messages: list[bytes] = []
    block: list[bytes] = []
    size = 0
    for item in items:
        encoded = _item_bytes(item, sightings)
        if block and size + len(encoded) > limit:
            messages.append(_batch_bytes(block))
            block, size = [], 0
        block.append(encoded)
        size += len(encoded)
    messages.append(_batch_bytes(block))
    return messages


def _batch_bytes(encoded_items: list[bytes]) -> bytes:
    """``RoutedBatch`` in Avro's binary encoding: the version, then one array block."""
    head = _long(_VERSION)
    if not encoded_items:
        return head + b"\x00"
    return head + _long(len(encoded_items)) + b"".join(encoded_items) + b"\x00"


def _item_bytes(item: RoutedItem, sightings: dict[int, bytes]) -> bytes:
    """One ``RoutedItem`` in Avro's binary encoding, field by field in schema order."""
    parts = [_long(_KINDS[item.kind]), _strings(item.tokens), _string(item.origin)]
    parts.append(
        b"\x00" if item.published_at is None else b"\x02" + _long(_micros(item.published_at))
    )
    if item.sighting is None:
        parts.append(b"\x00")
    else:
        held = sightings.get(id(item.sighting))
        if held is None:
            out = io.BytesIO()
            fastavro.schemaless_writer(out, _PARSED_SIGHTING, _sighting_datum(item.sighting))
            held = sightings[id(item.sighting)] = out.getvalue()
        parts.append(b"\x02" + held)
    parts.append(
        b"\x00" if item.record is None else b"\x02" + _long(len(item.record)) + item.record
    )
    parts.append(_strings(item.forget))
    return b"".join(parts)


def _long(value: int) -> bytes:
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


def _string(text: str) -> bytes:
    data = text.encode()
    return _long(len(data)) + data


def _strings(texts: Sequence[str]) -> bytes:
    if not texts:
        return b"\x00"
    return _long(len(texts)) + b"".join(_string(t) for t in texts) + b"\x00"


def _micros(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


def decode_batch(data: bytes) -> tuple[RoutedItem, ...]:
    """Inverse of ``encode_batches`` for one message.

    Raises:
        StateInvalid: the bytes are not a routed batch of this version.
    """
    try:
        datum = fastavro.schemaless_reader(io.BytesIO(data), _PARSED, None)
        if not isinstance(datum, dict) or datum.get("version") != _VERSION:
            raise StateInvalid("routed batch of an unknown version")
        return tuple(_item(d) for d in datum["items"])
    except StateInvalid:
        raise
    except (ValueError, TypeError, KeyError, EOFError, IndexError, StopIteration) as exc:
        raise StateInvalid(f"routed batch cannot be read ({type(exc).__name__})") from exc


def _item_datum(item: RoutedItem) -> dict[str, Any]:
    return {
        "kind": item.kind.value,
        "tokens": list(item.tokens),
        "origin": item.origin,
        "published_at": item.published_at,
        "sighting": None if item.sighting is None else _sighting_datum(item.sighting),
        "record": item.record,
        "forget": list(item.forget),
    }


def _item(datum: Mapping[str, Any]) -> RoutedItem:
    sighting = datum["sighting"]
    return RoutedItem(
        ItemKind(datum["kind"]),
        tuple(datum["tokens"]),
        datum["origin"],
        datum["published_at"],
        None if sighting is None else _sighting(sighting),
        datum["record"],
        tuple(datum["forget"]),
    )


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


def _sighting(d: Mapping[str, Any]) -> Sighting:
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
