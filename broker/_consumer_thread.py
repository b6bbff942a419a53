"""Faust's consumer thread, stopped in bounded time even when a rebalance is under way.

A worker sent SIGTERM while its group rebalanced could take more than a minute
to exit (CI: ``tests/broker/test_partition_move.py``, ``test_startup_commits.py``).
Three upstream behaviours meet there:

* aiokafka's ``AIOKafkaConsumer.stop()`` waits for the coordination task to
  finish the rebalance in progress (``GroupCoordinator.close``: "We must let the
  coordination task properly finish all pending work"). That rebalance's
  JoinGroup is held by Kafka until every member has rejoined or the group's
  rebalance timeout (Faust's ``broker_rebalance_timeout``, 60 s) has passed;
  members that are themselves stopping, or slowed down by load, rejoin late.
  mode gives the consumer thread 60 s to stop (``ServiceThread.shutdown_timeout``),
  so the stop timed out, and the LeaveGroup that followed waited on the same
  coordinator connection behind the held JoinGroup.
* The rebalance callbacks hop to the main thread and wait there for the app;
  a stopping app no longer serves them in time (its method queue stops after
  the consumer thread), and Faust's app only answers them with ``consumer.close()``.
* That ``close()`` (``AIOKafkaConsumerThread.close``) runs aiokafka's client
  and coordinator ``close()`` coroutines on the *main* event loop, against
  objects of the consumer thread's loop: it broke the coordinator's connection
  mid-rebalance ("Error sending OffsetFetchRequest ... Connection ... closed --
  marking coordinator dead", heartbeats then failing every 100 ms) and marked
  the consumer closed, so the thread's own ``stop()`` later skipped LeaveGroup
  and the group waited out this member's session.

``BoundedStopConsumerThread`` answers rebalance callbacks itself once the app
stops, leaves ``close()`` to the thread's own stop, and bounds that stop: after
``STOP_WAIT_S`` it sends LeaveGroup on a connection of its own (which releases
the held JoinGroup), then closes the coordinator connection, then cancels what
is left, each after ``LEAVE_WAIT_S`` more; each step is logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.client import ConnectionGroup  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from aiokafka.protocol.group import LeaveGroupRequest  # type: ignore[import-untyped]
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

__all__ = ["LEAVE_WAIT_S", "STOP_WAIT_S", "BoundedStopConsumerThread"]

logger = logging.getLogger(__name__)

#: How long the consumer may take to stop on its own: a rebalance it is part of
#: completes once its peers rejoin or leave, or a dead one's session (10 s) ends.
STOP_WAIT_S = 12.0
#: How long each of the later steps (LeaveGroup aside, the last wait) may take.
LEAVE_WAIT_S = 5.0


class BoundedStopConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread whose stop cannot outlast a rebalance."""

    def close(self) -> None:
        """Leave closing to the thread's own stop (see the module docstring).

        Faust's app calls this from the main thread when a rebalance reaches it
        while it stops; upstream ran aiokafka's ``close()`` coroutines on the
        main loop there.
        """
        logger.info("rebalance while stopping: the consumer leaves its group as it stops")

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Hand the revocation to the app, unless it stops: then nothing waits on it."""
        if self.app.should_stop:
            return
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        """Hand the assignment to the app, unless it stops: then nothing waits on it."""
        if self.app.should_stop:
            return
        await super().on_partitions_assigned(assigned, generation_id)

    async def on_thread_stop(self) -> None:
        """Stop the method queue, then the aiokafka consumer, in bounded time."""
        # QueueServiceThread's: stops the method queue (not the consumer)
        await super(faust_aiokafka.AIOKafkaConsumerThread, self).on_thread_stop()
        consumer = self._consumer
        if consumer is None:
            return
        stopping = asyncio.ensure_future(consumer.stop())
        if await _stopped(stopping, STOP_WAIT_S):
            return
        logger.warning(
            "the consumer did not stop within %.0f s (its group rebalancing); leaving the group "
            "on a connection of its own",
            STOP_WAIT_S,
        )
        await leave_aside(consumer)
        if await _stopped(stopping, LEAVE_WAIT_S):
            return
        close_coordinator_connection(consumer)
        if await _stopped(stopping, LEAVE_WAIT_S):
            return
        logger.error("the consumer still did not stop; its remaining work is cancelled")
        stopping.cancel()
        await asyncio.wait({stopping}, timeout=LEAVE_WAIT_S)


async def _stopped(stopping: asyncio.Future[Any], timeout: float) -> bool:
    """Whether ``stopping`` ended within ``timeout`` (its error, if any, raised)."""
    done, _ = await asyncio.wait({stopping}, timeout=timeout)
    if done:
        stopping.result()
    return bool(done)


async def leave_aside(consumer: Any) -> None:
    """LeaveGroup sent to the group's coordinator outside the coordinator connection.

    Kafka answers one connection's requests in order, so a LeaveGroup sent
    behind a held JoinGroup waits as long as the JoinGroup. Sent on another
    connection it is answered at once, and the held JoinGroup then returns.
    """
    coordinator, client = _internals(consumer)
    node = coordinator.coordinator_id
    static = coordinator._group_instance_id is not None  # noqa: SLF001 - as aiokafka leaves
    if node is None or coordinator.generation <= 0 or static:
        return
    request = LeaveGroupRequest(coordinator.group_id, coordinator.member_id)
    try:
        await asyncio.wait_for(
            client.send(node, request, group=ConnectionGroup.DEFAULT), LEAVE_WAIT_S
        )
    except (KafkaError, TimeoutError) as exc:
        logger.warning("LeaveGroup aside failed: %r", exc)
    else:
        logger.info("LeaveGroup aside succeeded")


def close_coordinator_connection(consumer: Any) -> None:
    """Close the coordinator connection: whatever still waits on it fails at once."""
    coordinator, client = _internals(consumer)
    key = (coordinator.coordinator_id, ConnectionGroup.COORDINATION)
    conn = client._conns.pop(key, None)  # noqa: SLF001 - no public way to drop one connection
    if conn is not None:
        logger.warning("closing the coordinator connection of a consumer that does not stop")
        conn.close()


def _internals(consumer: Any) -> tuple[Any, Any]:
    """An ``AIOKafkaConsumer``'s group coordinator and client (no public access to either)."""
    return consumer._coordinator, consumer._client  # noqa: SLF001
