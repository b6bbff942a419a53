"""The broker's Faust table: one store read per lookup, and a changelog not yet in the
metadata is not a partition mismatch.

**One read.** ``faust.Table.get`` is ``Mapping.get`` over Faust's user dict,
whose ``__getitem__`` asks the store whether it holds the key and then reads
it: two RocksDB reads for every token state, sighting row and consent entry
the match agent looks up (the store lookups were 14% of its time draining a
backlog, half of them the membership test). ``get`` here reads once; the
store raises ``KeyError`` for a key it does not hold.

**Unknown partitions.** Before its first write from a source topic, a Faust
table checks that the source has as many partitions as its changelog topic
(``PartitionsMismatch`` otherwise). It reads both counts from aiokafka's
group-coordinator snapshot, which records a topic it has no metadata for yet
as 0 partitions. A worker that starts on a fresh cluster, as its changelog
topics are being created, therefore saw "3 partitions against 0" and refused
every routed batch it handled in its first seconds: each was retried three
times and quarantined as ``internal-error``, and its matches were lost (seen
in a CI rehearsal of ``test_app_e2e``). Here 0 means "not known yet": the
write goes on (Faust picks the changelog partition from the message, not from
the count) and the check is made again on a later write, when the snapshot
knows the topic; a real mismatch is still refused then.

**Batched writes.** ``table[key] = value`` sends its changelog record through
Faust's producer buffer, one record at a time (a pending message, a hop
through the task that drains the buffer, an aiokafka call and a callback
each), about nine records an event, and when the buffer holds 2,000 records
every stream stops until it is sent (a batch's state writes filled it: seconds of
latency at 150 events a second). ``writes(partition)`` collects a routed
batch's writes instead; ``TableWrites.commit`` hands them to aiokafka as whole
record batches, in the order made, on the partition's changelog
(``IdempotentProducer.send_records``), then applies them to the store. The records are
the ones Faust would have sent (same key and value bytes, same partition), so
Faust's recovery restores them as its own; the store's persisted offset moves
once per record batch, when Kafka has it, as Faust moves it once per record.
On RocksDB a batch's writes are applied as one write batch of those same
bytes, and its reads go to the partition's database directly, as Faust's
store would for the routed message being handled: Faust's per-key path
encoded each key again and kept an index of it (a write 9-11 us, a read
5.5-7.3 us, against 3 and 2.3 us; about 100 us an event).

**Keys.** Faust encodes table keys with its ``json`` codec, through its
serializer registry, at every store read and write and every changelog record:
about 30 times an event, 2.3-2.8 us each (about 4% of the worker draining a
backlog). ``TableKeys`` gives the same bytes in 1.0 us: a plain key (token,
row reference) is printable ASCII with nothing JSON escapes, so its encoding
is the key in quotes; any other goes to Faust's ``json`` codec. Stores and
changelogs written before read the same.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import faust
import rocksdict
from faust.serializers import codecs
from faust.stores import rocksdb
from faust.types import TP

__all__ = ["TABLE_KEYS", "BrokerTable", "TableKeys", "TableWrites"]

logger = logging.getLogger(__name__)


class TableKeys(codecs.Codec):
    """Faust's ``json`` codec for table keys, a plain key encoded without it (same bytes)."""

    _json = codecs.get_codec("json")

    def _dumps(self, key: Any) -> bytes:
        if (type(key) is str and key.isascii() and key.isprintable()
                and '"' not in key and "\\" not in key):  # fmt: skip
            return b'"' + key.encode("ascii") + b'"'
        return self._json.dumps(key)

    def _loads(self, data: bytes) -> Any:
        return self._json.loads(data)


#: The codec every broker table's keys are written with.
TABLE_KEYS = TableKeys()


class BrokerTable(faust.Table[Any, Any]):
    """``faust.Table`` reading once per lookup, checking partition counts once both are known."""

    def _serializer_from_type(self, typ: Any) -> Any:
        """``str`` (every broker table's key type) goes through ``TABLE_KEYS``: the bytes
        Faust's ``json`` would write, so a ``str`` value would read the same too."""
        return TABLE_KEYS if typ is str else super()._serializer_from_type(typ)

    def get(self, key: Any, default: Any = None) -> Any:
        self.on_key_get(key)
        try:
            return self.data[key]
        except KeyError:
            return self.default() if self.default is not None else default

    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        consumer: Any = self.app.consumer
        if not consumer.topic_partitions(self.changelog_topic_name):
            return  # not in the metadata yet: checked again on the next write
        super()._verify_source_topic_partitions(source_topic)

    def writes(self, partition: int) -> TableWrites:
        """A batch of writes to this table's ``partition``, made by ``TableWrites.commit``."""
        return TableWrites(self, partition)


def _write_batch(db: Any, records: Sequence[tuple[bytes, bytes | None]]) -> None:
    """Apply changelog ``records`` to a partition's RocksDB as one write batch.

    As Faust's own recovery applies them (``apply_changelog_batch``): the same
    bytes, in order, in one atomic write. Put one at a time through Faust's
    store (``store[key] = value``, about nine times an event), each key was
    encoded again, entered in Faust's key index and written to RocksDB on its
    own: 9-11 us a key against 3 us, in-process. Faust's key index only
    guides reads made outside a partition's event, which the broker's
    token-state table never has.
    """
    batch = rocksdict.WriteBatch(raw_mode=True)  # the binding Faust uses (a pinned dependency)
    for key, value in records:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    db.write(batch)


class TableWrites:
    """Writes to one partition of a ``BrokerTable``, read back until made, made in order.

    Reads see the writes queued so far (``get``); ``commit`` queues them on
    the changelog and applies them to the store. ``pop`` queues a deletion and
    does not read: it returns ``None`` whatever the key held.
    """

    def __init__(self, table: BrokerTable, partition: int) -> None:
        self.table = table
        self.partition = partition
        self._pending: dict[Any, bytes | None] = {}
        self._order: list[tuple[Any, bytes | None]] = []
        # The partition's RocksDB, read and written in the changelog's own bytes
        # (the memory store keeps keys unencoded: Faust's own calls serve it).
        store = table.data
        self._db = (store._db_for_partition(partition)  # noqa: SLF001 - Faust has no batch API
                    if isinstance(store, rocksdb.Store) else None)  # fmt: skip

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self._pending:
            value = self._pending[key]
            return default if value is None else value
        if self._db is None:
            return self.table.get(key, default)
        stored = self._db.get(TABLE_KEYS.dumps(key))  # one read, 2.3 us against 5.5-7.3
        return default if stored is None else stored

    def __setitem__(self, key: Any, value: bytes) -> None:
        self._pending[key] = value
        self._order.append((key, value))

    def pop(self, key: Any, default: Any = None) -> None:
        self._pending[key] = None
        self._order.append((key, None))

    async def commit(self) -> None:
        """Hand the writes to the changelog, then apply them to the store, in order.

        The changelog first: if queuing them fails (the producer closing,
        aiokafka's queue full past its timeout), the store is untouched and a
        retry of the batch writes them all again. The other way round, the
        retry would find its effects already in the store, write nothing, and
        the changelog (what a moved partition is restored from) would lack them.
        """
        if not self._order:
            return
        table, store = self.table, self.table.data
        topic = table.changelog_topic
        records: list[tuple[bytes, bytes | None]] = []
        for key, value in self._order:
            raw_key, _ = topic.prepare_key(key, table.key_serializer)
            raw_value = None
            if value is not None:
                raw_value, _ = topic.prepare_value(value, table.value_serializer)
            records.append((raw_key, raw_value))
        name = topic.get_topic_name()
        producer: Any = table.app.producer
        for future, count in await producer.send_records(name, self.partition, records):
            future.add_done_callback(self._persisted(TP(name, self.partition), count))
        if self._db is not None:
            _write_batch(self._db, records)
        else:  # the memory store holds keys unencoded
            for key, value in self._order:
                if value is None:
                    with contextlib.suppress(KeyError):
                        del store[key]
                else:
                    store[key] = value
        self._pending.clear()
        self._order.clear()

    def _persisted(self, tp: TP, count: int) -> Callable[[Any], None]:
        """Record in the store how far the changelog holds it, once Kafka has the batch."""

        def done(future: Any) -> None:
            if future.cancelled():
                return
            error = future.exception()
            if error is not None:
                logger.error("changelog records for %s/%d were not written: %s",
                             tp.topic, tp.partition, error)  # fmt: skip
                return
            self.table.data.set_persisted_offset(tp, future.result().offset + count - 1)

        return done
