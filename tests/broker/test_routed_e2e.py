"""Batched routing through real Kafka: at most one routed message per event (issue 15).

Two councils publish forty people's records before a worker starts; the worker
drains them. Every (event, token) step the per-token design sent as its own
message arrives inside routed batches, at most one routed message per event,
every one of them binary Avro that decodes, and the token-state changelog holds
fewer records than (event, token) steps: each token written once per batch.
The worker writes those records itself, as whole record batches
(``TableWrites``): what its store holds is exactly what the changelog says
(so a worker restoring the partition from it gets the same), and the store
knows how far the changelog holds it.
Each sighting, sealed payloads included, is stored once per partition its
tokens reach, and the token states hold references to it, no payload.
"""

from __future__ import annotations

from base64 import b64encode
from datetime import date, timedelta
from pathlib import Path

import pytest
import rocksdict

from broker._routed import BATCH_KEY, TICK_KEY, ItemKind, decode_batch, partition_for
from fedbroker import read_to_end
from schemas import CitizenEvent, Codec
from tests.broker.test_app_e2e import _write
from tests.broker.workers import metric, settled, start_worker, stop_worker, until
from tests.connectors.conftest import COUNCILS, read_topic, run_connector
from tests.ports import free_port
from tests.wire import body_of, is_row, read_notifications, table_key

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

A, B = COUNCILS[0], COUNCILS[1]
DAY0 = date.today() - timedelta(days=20)
PEOPLE = 40
NAMES = ["Maya", "Tom", "Aisha", "Owen", "Priya", "Liam", "Zara", "Ewan"]
SURNAMES = ["Okafor", "Hallworth", "Begum", "Price", "Shah"]


def _row(n: int, council: str, event: str, when: date) -> dict[str, str]:
    return {"ref": f"p{n}@{council}", "forename": NAMES[n % len(NAMES)],
            "surname": f"{SURNAMES[n % len(SURNAMES)]}-{n}", "dob": f"{1 + n % 28:02d}/03/1980",
            "postcode": "M1 1AE", "address_1": f"{n} Piccadilly", "uprn": "", "nhs_no": "",
            "ni_number": "", "event": event, "event_date": when.isoformat()}  # fmt: skip


#: Where Faust's RocksDB store keeps how far the changelog holds a partition.
OFFSET_KEY = b"__faust\0offset__"


def _stored(tables: Path, partition: int) -> tuple[dict[bytes, bytes], bytes | None]:
    """A stopped worker's token-state store for ``partition``: its entries and persisted offset."""
    path = tables / f"token-state-{partition}.db"
    db = rocksdict.Rdict(str(path), rocksdict.Options(raw_mode=True),
                         access_type=rocksdict.AccessType.read_only())  # fmt: skip
    try:
        entries = {k: v for k, v in db.items() if k != OFFSET_KEY}
        return entries, db.get(OFFSET_KEY)
    finally:
        db.close()


def test_at_most_one_routed_message_per_event_and_one_state_write_per_token_per_batch(
    council_factory, kafka_bootstrap, federation, topic_factory, tmp_path
):
    prefix = topic_factory("fed")
    a, b = council_factory(A, prefix=prefix), council_factory(B, prefix=prefix)
    _write(a.inbox, [_row(n, A, "CT_CLOSE", DAY0) for n in range(PEOPLE)])
    _write(b.inbox, [_row(n, B, "MOVE", DAY0 + timedelta(days=3)) for n in range(PEOPLE)])
    run_connector(a, "--once")
    run_connector(b, "--once")
    codec = Codec()
    events = [body_of(codec, v, CitizenEvent) for t in (a.events_topic, b.events_topic)
              for _, v in read_topic(kafka_bootstrap, t)]  # fmt: skip
    assert len(events) == 2 * PEOPLE
    group, port = topic_factory("broker"), free_port()
    worker = start_worker(kafka_bootstrap, federation, group=group, prefix=prefix,
                          data_dir=tmp_path / "broker", log=tmp_path / "worker.log",
                          options=["--partitions", "3", "--metrics-port", str(port)])  # fmt: skip
    try:
        settled(kafka_bootstrap, group, prefix)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        # full collections skip what survived one (broker/_gc_policy.py)
        until(lambda: (metric(port, "fedbroker_broker_gc_frozen_objects") or 0) > 0,
              "a full collection froze its survivors", timeout=60)  # fmt: skip
    finally:
        stop_worker(worker)

    routed = read_to_end(kafka_bootstrap, f"{prefix}.broker.routed")
    batches = [r for r in routed if r.key == BATCH_KEY]
    assert all(r.key in (BATCH_KEY, TICK_KEY) for r in routed)
    assert 0 < len(batches) <= len(events)
    steps = {(e.event_id, t.key()) for e in events for t in (*e.tokens, *e.blocking_tokens)}
    delivered = set()
    for record in batches:
        assert record.value is not None and not record.value.startswith(b"{")
        for item in decode_batch(record.value):
            partition = record.partition
            if item.kind is ItemKind.EVENT:
                assert item.sighting is not None
                for token in item.tokens:
                    assert partition_for(token, 3) == partition  # the app's own hash
                    delivered.add((item.sighting.event_id, token))
    assert delivered == steps  # every (event, token) step arrived, each in its partition
    records = read_to_end(kafka_bootstrap, f"{group}-token-state-changelog")
    changelog = [(r.key, r.value) for r in records if not is_row(table_key(r.key))]
    assert 0 < len(changelog) < len(steps)
    # Each sighting stored once per partition its tokens reach, never once per token;
    # token states hold references only: no sealed payload in them.
    rows = [r for r in records if r.value and is_row(table_key(r.key))]
    stored = sorted((table_key(r.key).split("/")[0], r.partition) for r in rows)
    assert stored == sorted({(event_id, partition_for(token, 3)) for event_id, token in steps})
    sealed = {b64encode(p.ciphertext) for e in events for p in e.sealed}
    assert sealed and all(any(c in (r.value or b"") for c in sealed) for r in rows)
    assert not any(c in (value or b"") for _, value in changelog for c in sealed)

    # The store holds what the changelog says, key for key, and knows up to where.
    (tables,) = (tmp_path / "broker").glob("*/v1/tables")
    for partition in range(3):
        held = [r for r in records if r.partition == partition]
        latest: dict[bytes, bytes | None] = {}
        for r in held:
            latest[r.key] = r.value
        entries, persisted = _stored(tables, partition)
        assert entries == {k: v for k, v in latest.items() if v is not None}
        assert persisted == str(max(r.offset for r in held)).encode()

    notified = read_notifications(kafka_bootstrap, prefix, federation.load())
    assert notified, "the batched path still decides and notifies"
