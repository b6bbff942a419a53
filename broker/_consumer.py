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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.consumer import ensure_TP
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.transports import TransportT

from broker._producer import IdempotentProducer

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

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset, and the never-committed to the start.

        Upstream's version leaves a never-committed partition at the position
        its last (dropped) fetch reached, and keeps whatever offset it once
        believed committed there.
        """
        committed = await self.seek_to_committed()
        absent = uncommitted(committed)
        if absent:
            if self.app.conf.consumer_auto_offset_reset == "earliest":
                await self._thread.seek_to_beginning(*absent)
            logger.info("%d partitions without a committed offset read from the start",
                        len(absent))  # fmt: skip
        for tp, offset in committed.items():
            key = ensure_TP(tp)
            self._read_offset[key] = offset if offset else None
            self._committed_offset[key] = offset if offset else None

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
