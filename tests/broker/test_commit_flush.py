"""A commit's flush waits for the records queued before it, and only for those (issue 15).

The buffer runs as in a worker (its sending task started); each record's send
is held until the test lets it go, as aiokafka holds a send while its
accumulator is full.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, Literal

from broker._producer import CommitFlushBuffer


class Gate:
    """Records' sends, each held until released."""

    def __init__(self) -> None:
        self.released = asyncio.Semaphore(0)
        self.sent: list[int] = []

    def record(self, n: int) -> Any:
        async def publish_message(fut: Any, wait: bool = False) -> None:
            await self.released.acquire()
            self.sent.append(n)

        return SimpleNamespace(message=SimpleNamespace(channel=SimpleNamespace(
            publish_message=publish_message)))  # fmt: skip


async def _buffer() -> CommitFlushBuffer:
    buffer = CommitFlushBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    return buffer


def test_the_flush_returns_once_the_records_before_it_are_sent_not_those_after():
    """Faust's own flush waited here until the agents stopped producing."""

    async def scenario() -> int:
        gate, buffer = Gate(), await _buffer()
        try:
            for n in range(3):
                buffer.put(gate.record(n))
            flushing = asyncio.create_task(buffer.flush())
            await asyncio.sleep(0)  # the commit's flush begins, then the agents go on
            for n in range(3, 300):
                buffer.put(gate.record(n))
                gate.released.release()
                if flushing.done():
                    break
                await asyncio.sleep(0.005)  # a record sent every 5 ms: never a 0.1 s pause
            await asyncio.wait_for(flushing, timeout=5)
            sent_when_flushed = len(gate.sent)
            for _ in range(3):
                gate.released.release()
            await asyncio.wait_for(buffer.flush(), timeout=5)  # the rest, before stopping
            return sent_when_flushed
        finally:
            await buffer.stop()

    assert 3 <= asyncio.run(scenario()) < 10


class CountedPolls(asyncio.Event):
    """The buffer's "a record was sent" event, counting the waits on it that ended
    with nothing sent: a flush's polls that timed out (``asyncio.wait_for`` cancels
    the wait). ``polled`` is set once ``polls`` of them have."""

    def __init__(self, polls: int) -> None:
        super().__init__()
        self.polls = polls
        self.idle = 0
        self.polled = asyncio.Event()

    async def wait(self) -> Literal[True]:
        try:
            return await super().wait()
        except asyncio.CancelledError:
            self.idle += 1
            if self.idle >= self.polls:
                self.polled.set()
            raise


def test_a_send_held_longer_than_a_poll_does_not_end_the_flush_early():
    """Faust's own flush returned here before the record was sent (the record taken
    off its queue, the buffer looked empty; or a poll passed with nothing sent)."""

    async def scenario() -> tuple[bool, list[int]]:
        gate, buffer = Gate(), await _buffer()
        polls = buffer.message_sent = CountedPolls(5)
        polled = asyncio.create_task(polls.polled.wait())
        try:
            buffer.put(gate.record(0))
            flushing = asyncio.create_task(buffer.flush())
            # Five polls with nothing sent, or the flush's end, whichever comes first.
            await asyncio.wait({flushing, polled}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
            early = flushing.done()
            assert early or polls.idle >= 5
            gate.released.release()
            await asyncio.wait_for(flushing, timeout=5)
            return early, list(gate.sent)
        finally:
            polled.cancel()
            await buffer.stop()

    assert asyncio.run(scenario()) == (False, [0])
