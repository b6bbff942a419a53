"""A Faust producer that writes each record once, and lets a commit wait only for its own.

Idempotence. Faust asks aiokafka for an idempotent producer only inside a
transaction (``processing_guarantee="exactly_once"``), which the broker does
not use. A send whose partition leader dies after it wrote the record, but
before it answered, is retried by aiokafka (``NotLeaderForPartitionError``)
and lands twice. The three-node fault test of issue 13 saw exactly that on
``fed.audit``: one audit record twice, and ``audit verify`` failed. With
idempotence Kafka drops the retried copy by its producer id and sequence
number; ``acks=all`` is what idempotence requires and what the broker already
asks for.

The commit's flush. Before committing offsets Faust flushes its producer
buffer (where table changelog records wait), and its flush returns only when
the buffer is empty, or as soon as 0.1 s passes with nothing sent. Under a
backlog the agents keep the buffer filled, so a commit waited for records
produced after it began: one took 180 s in a 60,000-event backfill, and for
all that time no offset was committed, so a crash would have redone minutes
of work (issue 15). And when a send waits on a full aiokafka accumulator for
more than 0.1 s, the flush returned with records still in the buffer and the
offsets were committed before them. ``CommitFlushBuffer.flush`` waits until
every record queued before the call has been handed to aiokafka, however long
that takes, and no longer; the producer's flush then waits for aiokafka to
deliver them.

Record batches. ``send_records`` hands aiokafka a list of records for one
partition as whole record batches (``TableWrites.commit`` writes a routed
batch's token states so), skipping Faust's buffer; aiokafka's flush, which the
commit awaits, covers them too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer
from faust.types import TransportT

__all__ = ["CommitFlushBuffer", "IdempotentProducer"]

#: How often a waiting flush looks again whether the buffer is still running.
_POLL_S = 0.1


class CommitFlushBuffer(ProducerBuffer):
    """Faust's producer buffer whose ``flush`` waits for what was queued before it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.queued = 0  # records put, ever
        self.handed = 0  # records handed to aiokafka, ever (in order: one task sends them)

    def put(self, fut: Any) -> None:
        super().put(fut)
        self.queued += 1

    async def _send_pending(self, fut: Any) -> None:
        await super()._send_pending(fut)
        self.handed += 1

    async def flush(self) -> None:
        """Return once every record queued before the call is handed to aiokafka.

        Stopping (the sending task ends), Faust's own flush is used, as before.
        """
        target = self.queued
        while self.handed < target:
            if self.should_stop or self.app is None or self.app.conf.producer_threaded:
                await super().flush()
                return
            if self.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")
            self.message_sent.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.message_sent.wait(), timeout=_POLL_S)


class IdempotentProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer with ``enable_idempotence`` on and a ``CommitFlushBuffer``."""

    def __init__(self, transport: TransportT, loop: asyncio.AbstractEventLoop | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(transport, loop=loop, **kwargs)
        buffer = CommitFlushBuffer(loop=self.loop, beacon=self.beacon)
        buffer.app = self.app
        self.buffer = buffer  # Faust's is not started yet: ``on_start`` starts this one

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    async def send_records(
        self, topic: str, partition: int, records: Sequence[tuple[bytes, bytes | None]]
    ) -> list[tuple[asyncio.Future[Any], int]]:
        """Queue ``records`` (key, value) for one partition, in order, as whole record batches.

        Not through Faust's buffer, which stops every stream once it holds
        2,000 records (why: ``broker._table``). Returns each batch's future
        (its first record's metadata) and how many records it holds; the
        commit's flush waits for them like any other (aiokafka's ``flush``).
        """
        producer = self._ensure_producer()
        sent: list[tuple[asyncio.Future[Any], int]] = []
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                sent.append((await producer.send_batch(batch, topic, partition=partition),
                             batch.record_count()))  # fmt: skip
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)  # a first always fits
        if batch.record_count():
            sent.append((await producer.send_batch(batch, topic, partition=partition),
                         batch.record_count()))  # fmt: skip
        return sent
