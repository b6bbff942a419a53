"""The fetches a consumer has under way, so that a seek can wait until none is.

After a rebalance, Faust seeks the input partitions with its flow running and
clears the streams' queues just after; a fetch answered between the two lost
its records (``broker._consumer``). The consumer counts its fetches here and
its seek waits for them with the flow stopped. Pure bookkeeping on the event
loop: no Kafka, no Faust.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

__all__ = ["FETCH_WAIT_S", "Fetches"]

#: Faust fetches with a 1 s timeout; a fetch under way longer than this is stuck.
FETCH_WAIT_S = 10.0


class Fetches:
    """How many fetches are under way, and a way to wait until none is."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def one(self) -> Iterator[None]:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if not self._count:
                self._idle.set()

    async def done(self, timeout: float) -> bool:
        """Wait until no fetch is under way; False if one still is after ``timeout``."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
