"""A worker's consumer thread stops in bounded time, even with a rebalance held open.

Each test drives Faust's consumer thread (``AIOKafkaConsumerThread``) and ours
(``BoundedStopConsumerThread``) on stand-ins for aiokafka's consumer: Faust's
shows the fault (it waits as long as the rebalance, or touches the consumer
from the wrong loop), ours must not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka.client import ConnectionGroup
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

import broker._consumer_thread as consumer_thread
from broker._consumer import StallFreeApp
from broker._consumer_thread import BoundedStopConsumerThread

#: Far longer than any bound of ours in these tests (0.2 s each): a stop that
#: takes it is held, one that ends sooner was not (however loaded the machine).
HELD_S = 5.0


class _Conn:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Client:
    """Kafka as seen during a rebalance: the held JoinGroup returns once this member left."""

    def __init__(self, held: asyncio.Future[None], *, answers_leave: bool = True) -> None:
        self.held, self.answers_leave = held, answers_leave
        self.sent: list[tuple[str, Any]] = []
        self.coordination = _Conn()
        self._conns = {(1, ConnectionGroup.COORDINATION): self.coordination}

    async def send(self, node: int, request: Any, *, group: Any = ConnectionGroup.DEFAULT) -> Any:
        self.sent.append((type(request).__name__, group))
        if not self.answers_leave:
            await asyncio.Event().wait()
        if not self.held.done():
            self.held.set_result(None)
        return object()

    async def close(self) -> None:
        self.sent.append(("close", None))


class _Coordinator:
    coordinator_id, generation, member_id, group_id = 1, 3, "member-1", "group-1"
    _group_instance_id = None

    async def close(self) -> None:
        self.closed = True


class _HeldConsumer:
    """An ``AIOKafkaConsumer`` whose ``stop()`` waits for the rebalance in progress."""

    def __init__(self, *, answers_leave: bool = True) -> None:
        self.held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._client = _Client(self.held, answers_leave=answers_leave)
        self._coordinator = _Coordinator()
        self._closed = False
        self.stopped = False

    async def stop(self) -> None:
        await self.held  # GroupCoordinator.close awaiting the coordination task
        self.stopped = True


def _thread(app_id: str) -> Any:
    app = StallFreeApp(app_id, broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    return app.consumer._thread


def _timed(run: Callable[[], Awaitable[Any]]) -> float:
    """Seconds ``run()`` took, or ``HELD_S`` if it was still waiting then."""

    async def main() -> float:
        started = time.monotonic()
        try:
            await asyncio.wait_for(run(), HELD_S)
        except TimeoutError:
            return HELD_S
        return time.monotonic() - started

    return asyncio.run(main())


@pytest.fixture
def short_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_thread, "STOP_WAIT_S", 0.2)
    monkeypatch.setattr(consumer_thread, "LEAVE_WAIT_S", 0.2)


def test_faust_waits_out_the_held_rebalance_on_stop():
    async def stop() -> None:
        thread = _thread("faust-stop")
        thread._consumer = _HeldConsumer()
        await AIOKafkaConsumerThread.on_thread_stop(thread)

    assert _timed(stop) == HELD_S


def test_a_held_stop_leaves_the_group_aside_and_ends(short_bounds):
    consumers: list[_HeldConsumer] = []

    async def stop() -> None:
        thread = _thread("bounded-stop")
        assert isinstance(thread, BoundedStopConsumerThread)
        thread._consumer = consumer = _HeldConsumer()
        consumers.append(consumer)
        await thread.on_thread_stop()

    assert _timed(stop) < HELD_S
    consumer = consumers[0]
    # LeaveGroup went on a connection other than the coordinator's, and released the stop
    assert consumer._client.sent == [("LeaveGroupRequest", ConnectionGroup.DEFAULT)]
    assert consumer.stopped
    assert not consumer._client.coordination.closed


def test_a_stop_kafka_does_not_answer_still_ends(short_bounds):
    consumers: list[_HeldConsumer] = []

    async def stop() -> None:
        thread = _thread("unanswered-stop")
        thread._consumer = consumer = _HeldConsumer(answers_leave=False)
        consumers.append(consumer)
        await thread.on_thread_stop()

    assert _timed(stop) < HELD_S
    # the coordinator connection closed, the rest cancelled
    assert consumers[0]._client.coordination.closed
    assert not consumers[0].stopped


def test_close_from_the_app_leaves_the_consumer_alone():
    """Faust's ``close()`` marks the consumer closed (its own stop then skips LeaveGroup)."""

    async def close(thread_class: Any) -> _HeldConsumer:
        thread = _thread("close")
        thread._consumer = consumer = _HeldConsumer()
        thread_class.close(thread)  # marks the consumer closed before it returns
        return consumer

    assert asyncio.run(close(AIOKafkaConsumerThread))._closed
    assert not asyncio.run(close(BoundedStopConsumerThread))._closed


@pytest.mark.parametrize("callback", ["on_partitions_revoked", "on_partitions_assigned"])
def test_a_stopping_app_is_not_waited_for_in_a_rebalance(callback):
    """Faust's thread waits for the main thread's answer, which a stopping app no longer gives."""
    tps = {TP("fed.events.E08000001", 0)}

    def run(thread_class: Any) -> Callable[[], Awaitable[Any]]:
        async def call() -> None:
            thread = _thread(f"rebalance-{thread_class.__name__}")
            thread.thread_loop = asyncio.get_running_loop()  # as if called in the thread
            thread.app._stopped.set()  # the worker is stopping
            await getattr(thread_class, callback)(thread, tps)

        return call

    assert _timed(run(AIOKafkaConsumerThread)) == HELD_S
    assert _timed(run(BoundedStopConsumerThread)) < HELD_S
