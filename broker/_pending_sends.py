"""Sends still waiting for Kafka's acknowledgement, and how long the oldest has waited.

A notification, audit record or routed batch is handed to the producer and
acknowledged later. With idempotence on, aiokafka never expires a batch: it
retries until Kafka takes it. In one CI run a notification stayed unacknowledged
for 17 minutes with nothing logged, and the worker could not stop (its commit
waits for every send). Nothing was lost (no offset past it was committed) but
nothing told the operator either, and nothing explained it afterwards. So the
worker tracks each send until it is acknowledged:
``fedbroker_broker_oldest_pending_send_seconds`` is the age of the oldest, for
an alert, and a send unacknowledged past ``STUCK_AFTER_S`` is logged once, by
topic (never by key or value).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STUCK_AFTER_S", "PendingSends"]

#: A send unacknowledged this long is logged: ten times the producer's request
#: timeout of 40 s would be a retry storm, and that logs warnings of its own; a
#: send silent for two minutes is the case nothing else reports.
STUCK_AFTER_S = 120.0


@dataclass
class PendingSends:
    """Each unacknowledged send's topic and start time, forgotten once acknowledged."""

    monotonic: Callable[[], float]
    _since: dict[asyncio.Future[Any], tuple[str, float]] = field(default_factory=dict)
    _reported: set[asyncio.Future[Any]] = field(default_factory=set)

    def track(self, sent: asyncio.Future[Any], topic: str) -> None:
        """Watch ``sent`` (the producer's delivery future) until it is done."""
        if sent.done():
            return
        self._since[sent] = (topic, self.monotonic())
        sent.add_done_callback(self._forget)

    def _forget(self, sent: asyncio.Future[Any]) -> None:
        self._since.pop(sent, None)
        self._reported.discard(sent)

    def __len__(self) -> int:
        return len(self._since)

    def oldest_s(self) -> float:
        """Seconds the oldest unacknowledged send has waited (0 if none waits)."""
        now = self.monotonic()
        return max((now - since for _, since in self._since.values()), default=0.0)

    def newly_stuck(self, after_s: float = STUCK_AFTER_S) -> list[tuple[str, float]]:
        """(topic, seconds waited) of each send past ``after_s`` not reported before."""
        now = self.monotonic()
        stuck = [(sent, topic, now - since) for sent, (topic, since) in self._since.items()
                 if now - since >= after_s and sent not in self._reported]  # fmt: skip
        self._reported.update(sent for sent, _, _ in stuck)
        return [(topic, waited) for _, topic, waited in stuck]
