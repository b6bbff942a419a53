"""Sends Kafka has not acknowledged: timed while they wait, reported once when stuck."""

from __future__ import annotations

import asyncio
import contextlib

from broker._pending_sends import STUCK_AFTER_S, PendingSends


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_oldest_unacknowledged_send_is_timed_and_forgotten_once_acknowledged() -> None:
    async def scenario() -> None:
        clock = _Clock()
        pending = PendingSends(clock)
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        pending.track(first, "fed.audit")
        clock.now += 5
        pending.track(second, "fed.notify.x")
        clock.now += 2
        assert (len(pending), pending.oldest_s()) == (2, 7.0)
        loop.call_soon(first.set_result, None)  # acknowledged while this task waits
        await first  # woken by a done callback registered after ``track``'s, so after it
        assert (len(pending), pending.oldest_s()) == (1, 2.0)
        loop.call_soon(second.set_exception, RuntimeError("refused"))  # failed is done too
        with contextlib.suppress(RuntimeError):
            await second
        assert (len(pending), pending.oldest_s()) == (0, 0.0)

    asyncio.run(scenario())


def test_a_send_already_acknowledged_is_not_tracked() -> None:
    async def scenario() -> None:
        pending = PendingSends(_Clock())
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        pending.track(done, "fed.audit")
        assert len(pending) == 0

    asyncio.run(scenario())


def test_a_stuck_send_is_reported_once_by_topic() -> None:
    async def scenario() -> None:
        clock = _Clock()
        pending = PendingSends(clock)
        loop = asyncio.get_running_loop()
        stuck, fresh = loop.create_future(), loop.create_future()
        pending.track(stuck, "fed.notify.E08000002.electoral-registration")
        clock.now += STUCK_AFTER_S - 1
        pending.track(fresh, "fed.audit")
        assert pending.newly_stuck() == []
        clock.now += 1
        assert pending.newly_stuck() == [
            ("fed.notify.E08000002.electoral-registration", STUCK_AFTER_S)
        ]
        clock.now += 60
        assert pending.newly_stuck() == []  # reported already
        assert pending.oldest_s() == STUCK_AFTER_S + 60  # still timed
        loop.call_soon(stuck.set_result, None)
        loop.call_soon(fresh.set_result, None)
        await asyncio.gather(stuck, fresh)
        assert len(pending) == 0

    asyncio.run(scenario())
