"""The agents' sends: a Kafka outage is waited out, never lost; a bug is not swallowed."""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka.errors  # type: ignore[import-untyped]
import pytest

from broker import _agents
from broker._pending_sends import PendingSends


class _Topic:
    """A topic whose sends are handed over but never acknowledged (their futures stay open)."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.sent: list[tuple[bytes | None, bytes, int | None]] = []

    def get_topic_name(self) -> str:
        return "fed.audit"

    async def send(self, *, key: bytes | None, value: bytes,
                   partition: int | None) -> asyncio.Future[None]:  # fmt: skip
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((key, value, partition))
        return asyncio.get_running_loop().create_future()


def _pending() -> PendingSends:
    return PendingSends(lambda: 0.0)


def test_a_send_during_a_kafka_outage_is_retried_until_it_goes(monkeypatch: Any) -> None:
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    monkeypatch.setattr(_agents.asyncio, "sleep", sleep)
    topic = _Topic([aiokafka.errors.KafkaConnectionError(), aiokafka.errors.RequestTimedOutError()])
    pending = _pending()
    asyncio.run(_agents._send(pending, topic, b"k", b"v", 2))
    assert topic.sent == [(b"k", b"v", 2)]
    assert len(waits) == 2 and waits[1] > waits[0]  # backing off
    assert len(pending) == 1  # handed over: watched until Kafka acknowledges it


def test_a_bug_in_a_send_is_not_retried_for_ever() -> None:
    topic = _Topic([TypeError("a bug")])
    with pytest.raises(TypeError):
        asyncio.run(_agents._send(_pending(), topic, b"k", b"v"))
    assert topic.sent == []
