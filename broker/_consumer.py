"""A Faust consumer that believes only the commits Kafka accepted, and re-reads what it dropped.

A worker group started while councils publish left input partitions that were
never committed, with nothing logged (issue 15 item 3; ``bench/stall.py``
reproduces it). Two upstream faults meet in the first minute of a group's
life, when rebalances are many and no partition has a committed offset yet:

* faust-streaming#316 (fixed by PR #692, not released in 0.15.3):
  ``Consumer._commit_offsets`` records offsets as committed even when Kafka
  refused the commit (``UnknownMemberId`` while the group rebalances). A
  refused commit inside ``on_partitions_revoked`` runs after the revoked
  partitions' bookkeeping was cleared, so the false "committed" offset
  survives into the next assignment; ``ack`` then ignores every re-read
  message below it and ``_should_commit`` never commits up to it: the
  partition's committed offset stays where Kafka last accepted it.
* aio-libs/aiokafka#1003 (open in 0.14): ``seek_to_committed`` does nothing
  for a partition with no committed offset (it seeks only when the offset is
  above 0), and Faust's ``perform_seek`` leaves its own record of such a
  partition untouched. Faust drops the records a fetch returns while its flow
  is stopped for a rebalance and relies on that seek to read them again, so
  for a never-committed partition they were skipped.

``StallFreeConsumer`` records an offset only once the commit succeeded, and
after every seek to committed positions it sends a partition with no
committed offset back to its beginning (the group's ``earliest`` reset) and
forgets any offset it believed committed there. Re-reading is safe: effects
are idempotent (audit chains append a decision once, notification ids are
deterministic). ``StallFreeApp`` is a ``faust.App`` whose consumer transport
builds it. Remove both once faust-streaming and aiokafka release the fixes.

Two more faults showed under kill -9 (``broker._read_heads`` tells them):
records fetched before a seek are handed out after it, Faust then drops the
records it fetches again from the committed offset and commits over the hole;
and Faust counts a jump in offsets as records done (``_add_gap``). The consumer
keeps a ``ReadHeads``: after each seek, Faust takes the record at the sought
offset whatever its read offset says, a jump stays a hole, and a partition
whose acks do not start at its committed offset is read again from there,
never committed past.

Three more kept a second worker joining a draining one from having up to
32,000 (event, token) steps redone: a revoked partition's acks are committed
before Faust forgets them (it clears them ahead of its own last commit); the
seek after a rebalance runs with the flow stopped and no fetch under way, so
no record fetched after it is handed out just before Faust clears the streams'
queues (a hole, read again with all that followed it); and a partition read
again passes over the records this worker already acked.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Set
from typing import Any

import faust
from aiokafka.errors import IllegalStateError, KafkaError  # type: ignore[import-untyped]
from faust.transport.consumer import ensure_TP
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from faust.types.transports import TransportT

from broker._consumer_thread import BoundedStopConsumerThread
from broker._fetches import FETCH_WAIT_S, Fetches
from broker._producer import IdempotentProducer
from broker._read_heads import MAX_REREADS, ReadHeads

__all__ = ["StallFreeApp", "StallFreeConsumer", "StallFreeTransport", "uncommitted"]

logger = logging.getLogger(__name__)


def uncommitted(committed: Mapping[Any, int | None]) -> list[Any]:
    """The partitions ``seek_to_committed`` left where they were: no committed offset.

    aiokafka reports "never committed" as ``None``; an offset of 0 is
    skipped by its seek too (aio-libs/aiokafka#1003), and means the same.
    """
    return [tp for tp, offset in committed.items() if not offset]


class StallFreeConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with faust-streaming#316 and aiokafka#1003 worked around."""

    def _new_consumer_thread(self) -> BoundedStopConsumerThread:
        """Faust's consumer thread, stopped in bounded time (``broker._consumer_thread``)."""
        return BoundedStopConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def heads(self) -> ReadHeads[TP]:
        """Where each input partition must be read from next (made on first use:
        Faust builds consumers through its own constructor)."""
        heads: ReadHeads[TP] | None = self.__dict__.get("_heads")
        if heads is None:
            heads = self.__dict__["_heads"] = ReadHeads()
        return heads

    @property
    def fetches(self) -> Fetches:
        """The fetches under way (made on first use, as ``heads``)."""
        fetches: Fetches | None = self.__dict__.get("_fetches")
        if fetches is None:
            fetches = self.__dict__["_fetches"] = Fetches()
        return fetches

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        with self.fetches.one():
            return await super()._getmany(active_partitions, timeout)

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset, and the never-committed to the start.

        Upstream's version leaves a never-committed partition at the position
        its last (dropped) fetch reached, and keeps whatever offset it once
        believed committed there. Each input partition's head is then awaited
        (``ReadHeads``).

        Faust resumes the input partitions just before this seek, with the
        flow running (table recovery started it), and clears every stream's
        queue just after. A record fetched after the seek and handed out
        before that clear was lost, and read again only when the commit found
        the hole, redoing all that followed it. So the flow stops first, the
        seek waits for any fetch under way, and nothing is handed out until
        Faust resumes the flow after the clear.
        """
        self.stop_flow()
        if not await self.fetches.done(FETCH_WAIT_S):
            logger.warning("a fetch outlived %.0f s; seeking anyway", FETCH_WAIT_S)
        committed = await self.seek_to_committed()
        absent = uncommitted(committed)
        if absent:
            if self.app.conf.consumer_auto_offset_reset == "earliest":
                await self._thread.seek_to_beginning(*absent)
            logger.info("%d partitions without a committed offset read from the start",
                        len(absent))  # fmt: skip
        changelogs = self.app.tables.changelog_topics
        inputs = [ensure_TP(tp) for tp in committed if tp.topic not in changelogs]
        try:
            earliest = await self.earliest_offsets(*inputs) if inputs else {}
        except (KafkaError, TimeoutError) as exc:  # moving again: the next seek sets the heads
            logger.warning("log starts unknown (%s); heads not set", type(exc).__name__)
            earliest = {}
        for tp, offset in committed.items():
            key = ensure_TP(tp)
            self._read_offset[key] = offset if offset else None
            self._committed_offset[key] = offset if offset else None
            if key not in earliest:
                continue
            if offset:  # sought exactly (below the log's start: from its start)
                self.heads.sought(key, max(offset, earliest[key]))
            else:  # reset lazily, maybe to a commit made meanwhile: no head to await
                self.heads.committed(key, earliest[key])

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's fetch; a sought partition's head is taken, a record already done is not.

        Records fetched before a seek may still be handed out after it and move
        Faust's read offset past the head; the head would then be dropped as
        already read. Clearing the read offset as it arrives lets it through.

        A partition read again from a head (a hole behind records done) fetches
        again the records this worker already acked but has not committed:
        they are passed over, not redone. Only the hole is processed, and the
        acks already held then commit past it.
        """
        async for tp, message in super().getmany(timeout):
            if self.heads.arrived(tp, message.offset):
                self._read_offset[tp] = None
            done = self._acked_index.get(tp)
            if done and message.offset in done:
                continue
            yield tp, message

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's next offset to commit, unless the acks skip the head: then none.

        A partition whose acks start above its committed offset had records
        dropped; ``_commit_tps`` sends it back to read them again.
        """
        if self.heads.skipped(tp, self._acked[tp]) is not None:
            return None
        offset: int | None = super()._new_offset(tp)
        return offset

    async def _commit_tps(self, tps: Iterable[TP], start_new_transaction: bool) -> bool:
        """Commit what can be; read again from its head any partition with a hole."""
        tps = list(tps)
        did_commit: bool = await super()._commit_tps(tps, start_new_transaction)
        assignment = self.assignment()
        for tp in tps:
            acked = self._acked[tp]
            head = self.heads.skipped(tp, acked)
            if head is None or tp not in assignment:
                continue
            if self.heads.reread(tp, head):
                logger.warning("records of %s/%d after offset %d were dropped; reading again",
                               tp.topic, tp.partition, head)  # fmt: skip
                try:
                    await self.seek(tp, head)
                except IllegalStateError:  # revoked meanwhile: its new owner reads from C
                    continue
                self.heads.sought(tp, head)
                continue
            # Read again and again, still missing: offsets that hold no record
            # (a transaction marker, a compacted record), which Faust would
            # have counted as done. Count them so, and say so.
            missing = range(head, min(acked))
            logger.error("offsets %d-%d of %s/%d hold no record after %d reads; passing over",
                         head, missing[-1], tp.topic, tp.partition, MAX_REREADS)  # fmt: skip
            acked.extend(missing)
            self._acked_index[tp].update(missing)
        return did_commit

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Leave a jump in offsets as a hole, not as records done.

        Faust counts the offsets it did not see between two records as done,
        for compacted topics and transaction markers. The broker's inputs have
        neither (councils and the broker publish idempotently, without
        transactions, to topics that are never compacted), so a jump means
        records lost between fetch and agent: ``_commit_tps`` reads them again.
        """

    async def on_partitions_revoked(self, revoked: Set[TP]) -> None:
        """Commit what was acked, then let Faust forget the revoked partitions.

        Faust clears a revoked partition's acks before its own last commit
        (``wait_empty``), which then commits only what is acked afterwards:
        the work done since the last periodic commit was handed to the next
        owner to redo (thousands of steps when a second worker joins).
        """
        await self.maybe_wait_for_commit_to_finish()
        await self.commit()
        self.heads.forget(revoked)
        await super().on_partitions_revoked(revoked)

    async def _commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        """Commit ``offsets`` of assigned partitions; record them only if Kafka accepted.

        faust-streaming 0.15.3's body with PR #692 applied: the bookkeeping
        and the monitor's commit count move inside ``if did_commit``.
        """
        assignment = self.assignment()
        committable = {tp: offset for tp, offset in offsets.items() if tp in assignment}
        if len(committable) < len(offsets):
            logger.info("not committing %d revoked partitions; they are read again",
                        len(offsets) - len(committable))  # fmt: skip
        if not committable:
            return False
        if self.in_transaction:
            did_commit = await self.transactions.commit(
                committable, start_new_transaction=start_new_transaction
            )
        else:
            await self.app.producer.flush()
            did_commit = await self._commit(committable)
        if did_commit:
            self.app.tables.on_commit(committable)
            self._committed_offset.update(committable)
            for tp, offset in committable.items():
                self.heads.committed(tp, offset)
            self.app.monitor.on_tp_commit(committable)
        else:
            logger.warning("Kafka refused a commit of %d partitions; they stay uncommitted",
                           len(committable))  # fmt: skip
        return bool(did_commit)


class StallFreeTransport(faust_aiokafka.Transport):
    """The aiokafka transport, building ``StallFreeConsumer`` and ``IdempotentProducer``."""

    Consumer = StallFreeConsumer
    Producer = IdempotentProducer


class StallFreeApp(faust.App):
    """A ``faust.App`` whose consumer is a ``StallFreeConsumer`` and producer idempotent."""

    def _new_transport(self) -> TransportT:
        return StallFreeTransport(self.conf.broker_consumer, self)
