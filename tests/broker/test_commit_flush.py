"""A commit's flush waits for the records queued before it, and only for those (issue 15).

The buffer runs as in a worker (its sending task started); each record's send
is held until the test lets it go, as aiokafka holds a send while its
accumulator is full.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

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


def test_a_send_held_longer_than_a_poll_does_not_end_the_flush_early():
    async def scenario() -> tuple[bool, list[int]]:
        gate, buffer = Gate(), await _buffer()
        try:
            buffer.put(gate.record(0))
            flushing = asyncio.create_task(buffer.flush())
            await asyncio.sleep(0.5)  # five polls with nothing sent
            early = flushing.done()
            gate.released.release()
            await asyncio.wait_for(flushing, timeout=5)
            return early, list(gate.sent)
        finally:
            await buffer.stop()

    assert asyncio.run(scenario()) == (False, [0])
