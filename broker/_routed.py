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
The format is internal (no service reads it): Avro, ``broker._routed_wire``'s
``ROUTED_SCHEMA``; a message that does not decode raises ``StateInvalid``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import fastavro

from broker._errors import StateInvalid
from broker._routed_wire import (
    PARSED_ROUTED,
    ROUTED_VERSION,
    avro_long,
    avro_string,
    avro_strings,
    micros,
    sighting_bytes,
    sighting_from_bytes,
)
from broker._sightings import Sighting

__all__ = [
    "BATCH_KEY",
    "MAX_ROUTED_BYTES",
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


def encode_batches(
    items: Sequence[RoutedItem],
    limit: int = MAX_ROUTED_BYTES,
    encoded: dict[int, bytes] | None = None,
) -> list[bytes]:
    """The items as one routed message, or as few as keep each under ``limit`` bytes.

    Each sighting is encoded once per event, however many partitions it goes
    to: ``group_by_partition`` shares the object, and a caller encoding one
    batch for several partitions passes the same ``encoded`` dict (keyed by the
    sighting object's id, so it must not outlive the items) to every call. The
    messages are cut between items in order: the first holds the earliest. An
    item larger than ``limit`` on its own travels alone.
    """
    sightings: dict[int, bytes] = {} if encoded is None else encoded
    messages: list[bytes] = []
    block: list[bytes] = []
    size = 0
    for item in items:
        item_bytes = _item_bytes(item, sightings)
        if block and size + len(item_bytes) > limit:
            messages.append(_batch_bytes(block))
            block, size = [], 0
        block.append(item_bytes)
        size += len(item_bytes)
    messages.append(_batch_bytes(block))
    return messages


def _batch_bytes(encoded_items: list[bytes]) -> bytes:
    """``RoutedBatch`` in Avro's binary encoding: the version, then one array block."""
    head = avro_long(ROUTED_VERSION)
    if not encoded_items:
        return head + b"\x00"
    return head + avro_long(len(encoded_items)) + b"".join(encoded_items) + b"\x00"


def _item_bytes(item: RoutedItem, sightings: dict[int, bytes]) -> bytes:
    """One ``RoutedItem`` in Avro's binary encoding, field by field in schema order."""
    parts = [avro_long(_KINDS[item.kind]), avro_strings(item.tokens), avro_string(item.origin)]
    parts.append(
        b"\x00" if item.published_at is None else b"\x02" + avro_long(micros(item.published_at))
    )
    if item.sighting is None:
        parts.append(b"\x00")
    else:
        held = sightings.get(id(item.sighting))
        if held is None:
            held = sightings[id(item.sighting)] = sighting_bytes(item.sighting)
        parts.append(b"\x02" + avro_long(len(held)) + held)
    parts.append(
        b"\x00" if item.record is None else b"\x02" + avro_long(len(item.record)) + item.record
    )
    parts.append(avro_strings(item.forget))
    return b"".join(parts)


def decode_batch(data: bytes) -> tuple[RoutedItem, ...]:
    """Inverse of ``encode_batches`` for one message.

    Raises:
        StateInvalid: the bytes are not a routed batch of this version.
    """
    try:
        datum = fastavro.schemaless_reader(io.BytesIO(data), PARSED_ROUTED, None)
        if not isinstance(datum, dict) or datum.get("version") != ROUTED_VERSION:
            raise StateInvalid("routed batch of an unknown version")
        return tuple(_item(d) for d in datum["items"])
    except StateInvalid:
        raise
    except (ValueError, TypeError, KeyError, EOFError, IndexError, StopIteration) as exc:
        raise StateInvalid(f"routed batch cannot be read ({type(exc).__name__})") from exc


def _item(datum: Mapping[str, Any]) -> RoutedItem:
    sighting = datum["sighting"]
    return RoutedItem(
        ItemKind(datum["kind"]),
        tuple(datum["tokens"]),
        datum["origin"],
        datum["published_at"],
        None if sighting is None else sighting_from_bytes(sighting),
        datum["record"],
        tuple(datum["forget"]),
    )
