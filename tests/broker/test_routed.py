"""The routed batch format and its grouping by partition (issue 15 item 1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker import Sighting, StateInvalid
from broker._routed import (
    MAX_ROUTED_BYTES,
    ItemKind,
    RoutedItem,
    decode_batch,
    encode_batches,
    group_by_partition,
    partition_for,
)
from broker._state_cache import StateCache
from schemas import CitizenEvent, EventType, LinkageToken, SealedPayload

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _sighting(n: int, *, tokens: int = 2, blocking: int = 3) -> Sighting:
    event = CitizenEvent(
        event_id=f"ev-{n}",
        source_council="E08000003",
        source_system="revs",
        event_type=EventType.ADDRESS_CHANGE,
        occurred_at=T0 + timedelta(microseconds=n),
        published_at=T0 + timedelta(minutes=1),
        key_epoch=3,
        source_ref=f"ref-{n}",
        tokens=tuple(LinkageToken("nino", 3, bytes([n % 256, i]) * 16) for i in range(tokens)),
        blocking_tokens=tuple(
            LinkageToken("soundex+yob", 3, bytes([i, n % 7]) * 16) for i in range(blocking)
        ),
        fuzzy=bytes([n % 256]) * 64,
        attributes={"tenure": "owner"},
        sealed=(SealedPayload("E08000009.revenues", "agr", b"e" * 32, b"c" * 90, ("name",)),),
    )
    return Sighting.from_event(event, retention=timedelta(days=90))


def _event_item(n: int) -> RoutedItem:
    s = _sighting(n)
    return RoutedItem(ItemKind.EVENT, s.all_tokens(), f"fed.events.X/0/{n}", T0, s)


def test_round_trip_keeps_every_field_and_order():
    items = [
        _event_item(1),
        RoutedItem(ItemKind.CONSENT, ("nino:3:ab",), "fed.consent.X/1/7", record=b"\x00avro"),
        RoutedItem(
            ItemKind.CASCADE, ("b:3:cd",), "fed.consent.X/1/7", record=b"r", forget=("ev-1", "ev-2")
        ),  # fmt: skip
        RoutedItem(ItemKind.TICK),
        _event_item(2),
    ]
    (body,) = encode_batches(items)
    assert decode_batch(body) == tuple(items)
    # a sighting decoded from the batch stores exactly as the original does
    decoded, original = decode_batch(body)[0].sighting, items[0].sighting
    assert decoded is not None and original is not None
    assert StateCache().keyed(decoded) == StateCache().keyed(original)


def test_payload_is_stored_once_per_event_not_once_per_token():
    one_token = RoutedItem(ItemKind.EVENT, ("t",), "o/0/1", T0, _sighting(1, tokens=1, blocking=0))
    many = _sighting(1, tokens=1, blocking=0)
    many_tokens = RoutedItem(ItemKind.EVENT, tuple(f"tok-{i}" for i in range(8)), "o/0/1", T0, many)
    grown = len(encode_batches([many_tokens])[0]) - len(encode_batches([one_token])[0])
    assert grown < 8 * 10  # the token names only: no copy of the 90-byte ciphertext per token


def test_binary_not_json_and_smaller_than_the_json_envelopes():
    import base64
    import json

    s = _sighting(3)
    (body,) = encode_batches([_event_item(3)])
    assert not body.lstrip().startswith(b"{")
    old = sum(len(json.dumps({"kind": "event", "sighting": s.to_dict()}).encode())
              for _ in s.all_tokens())  # fmt: skip
    assert len(body) * 4 < old
    assert base64.b64encode(s.fuzzy or b"").decode() not in body.decode("latin-1")


def test_garbage_is_a_typed_error():
    for junk in (b"", b"\xff" * 40, b"{}", encode_batches([_event_item(1)])[0][:-9]):
        with pytest.raises(StateInvalid):
            decode_batch(junk)


def test_partition_is_stable_and_spread():
    assert partition_for("nino:3:abcd", 4) == partition_for("nino:3:abcd", 4)
    # a fixed value: the hash must not depend on the process (no salted ``hash``)
    assert [partition_for(f"tok-{i}", 4) for i in range(6)] == [
        partition_for(f"tok-{i}", 4) for i in range(6)
    ]
    counts = [0] * 4
    for i in range(4000):
        counts[partition_for(f"nino:3:{i:08x}", 4)] += 1
    assert min(counts) > 800


def test_partition_does_not_depend_on_the_process():
    import subprocess
    import sys

    code = "from broker._routed import partition_for; print(partition_for('nino:3:ab', 7))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)}  # fmt: skip
    assert runs == {f"{partition_for('nino:3:ab', 7)}\n"}


def test_grouping_keeps_source_order_and_splits_tokens_by_partition():
    items = [_event_item(n) for n in range(20)]
    consent = RoutedItem(ItemKind.CONSENT, (items[0].tokens[0],), "c/0/1", record=b"r")
    items.insert(5, consent)
    grouped = group_by_partition(items, 4)
    assert set(grouped) == {0, 1, 2, 3}  # consent is broadcast to every partition
    for partition, bound in grouped.items():
        origins = [i.origin for i in bound]
        assert origins == [i.origin for i in items if i in items and i.origin in origins]
        for item in bound:
            assert all(partition_for(t, 4) == partition for t in item.tokens)
            if item.kind is ItemKind.EVENT:
                assert item.tokens  # an event goes only where it has a token
        assert sum(1 for i in bound if i.kind is ItemKind.CONSENT) == 1
    for item in items:  # every (event, token) lands exactly once
        if item.kind is ItemKind.EVENT:
            landed = [t for b in grouped.values() for i in b if i.origin == item.origin
                      for t in i.tokens]  # fmt: skip
            assert sorted(landed) == sorted(item.tokens)


def test_a_big_batch_is_split_under_the_limit_in_order():
    items = [_event_item(n) for n in range(400)]
    bodies = encode_batches(items, limit=64 * 1024)
    assert len(bodies) > 1
    assert all(len(b) <= 64 * 1024 for b in bodies)
    assert [i for b in bodies for i in decode_batch(b)] == items
    assert len(encode_batches(items[:50])) == 1 and MAX_ROUTED_BYTES >= 512 * 1024


def test_hand_written_encoding_is_what_fastavro_writes_for_the_schema():
    import io

    import fastavro

    from broker._routed_wire import _SIGHTING, ROUTED_SCHEMA

    item = _event_item(5)
    s = item.sighting
    assert s is not None
    sighting = {"event_id": s.event_id, "source_council": s.source_council,
                "source_ref": s.source_ref, "event_type": s.event_type.value,
                "occurred_at": s.occurred_at, "key_epoch": s.key_epoch,
                "tokens": list(s.tokens), "blocking": list(s.blocking), "fuzzy": s.fuzzy,
                "attributes": dict(s.attributes),
                "sealed": [{"recipient": p.recipient, "agreement_id": p.agreement_id,
                            "enc": p.enc, "ciphertext": p.ciphertext, "fields": list(p.fields)}
                           for p in s.sealed],
                "expires_at": s.expires_at, "encoding": s.encoding}  # fmt: skip
    sighting_out = io.BytesIO()
    fastavro.schemaless_writer(sighting_out, fastavro.parse_schema(_SIGHTING), sighting)
    datum = {"version": 2, "items": [
        {"kind": "event", "tokens": list(item.tokens), "origin": item.origin,
         "published_at": item.published_at, "sighting": sighting_out.getvalue(),
         "record": None, "forget": []},
        {"kind": "cascade", "tokens": ["t"], "origin": "o/1/2", "published_at": None,
         "sighting": None, "record": b"rec", "forget": ["ev-1"]},
    ]}  # fmt: skip
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(ROUTED_SCHEMA), datum)
    cascade = RoutedItem(ItemKind.CASCADE, ("t",), "o/1/2", record=b"rec", forget=("ev-1",))
    assert encode_batches([item, cascade]) == [out.getvalue()]


def test_a_sighting_bound_for_several_partitions_is_encoded_once(monkeypatch):
    import broker._routed as routed

    calls: list[str] = []
    real = routed.sighting_bytes

    def counting(sighting: Sighting) -> bytes:
        calls.append(sighting.event_id)
        return real(sighting)

    monkeypatch.setattr(routed, "sighting_bytes", counting)
    items = [_event_item(n) for n in range(1, 6)]
    grouped = group_by_partition(items, 4)
    assert sum(len(bound) for bound in grouped.values()) > len(items)  # some go to several
    shared: dict[int, bytes] = {}
    bodies = {p: encode_batches(bound, encoded=shared) for p, bound in grouped.items()}
    assert sorted(calls) == sorted(i.sighting.event_id for i in items)  # type: ignore[union-attr]
    for partition, bound in grouped.items():  # and each partition still decodes its own items
        (body,) = bodies[partition]
        assert decode_batch(body) == tuple(bound)


def test_a_sighting_read_by_several_partitions_is_decoded_once(monkeypatch):
    import broker._routed_wire as wire

    decoded: list[str] = []
    real = wire._sighting_from_datum

    def counting(datum):  # type: ignore[no-untyped-def]
        decoded.append(datum["event_id"])
        return real(datum)

    monkeypatch.setattr(wire, "_sighting_from_datum", counting)
    wire.sighting_from_bytes.cache_clear()
    items = [_event_item(n) for n in range(20, 26)]
    grouped = group_by_partition(items, 4)
    shared: dict[int, bytes] = {}
    read = [i for bound in grouped.values() for i in decode_batch(
        encode_batches(bound, encoded=shared)[0])]  # fmt: skip
    assert len(read) > len(items)  # some events reach several partitions
    assert sorted(decoded) == sorted(i.sighting.event_id for i in items)  # type: ignore[union-attr]


def test_a_batch_whose_sighting_bytes_are_garbage_is_refused_as_state_invalid():
    """A well-formed batch around a sighting that is not one: refused, never a crash."""
    from broker._routed_wire import avro_long, avro_string, avro_strings

    good = decode_batch(
        avro_long(2) + b"\x02" + avro_long(0) + avro_strings(("t",)) + avro_string("o")
        + b"\x00" + b"\x00" + b"\x00" + avro_strings(()) + b"\x00"
    )  # fmt: skip
    assert good == (RoutedItem(ItemKind.EVENT, ("t",), "o"),)  # the frame itself reads
    for garbage in (b"", b"\x02\x00", b"\xff" * 40, b"\x08abcd" + b"\x00" * 3):
        body = (avro_long(2) + b"\x02" + avro_long(0) + avro_strings(("t",)) + avro_string("o")
                + b"\x00" + b"\x02" + avro_long(len(garbage)) + garbage
                + b"\x00" + avro_strings(()) + b"\x00")  # fmt: skip
        with pytest.raises(StateInvalid):
            decode_batch(body)
