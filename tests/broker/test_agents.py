"""The agents' sends: a Kafka outage is waited out, never lost; a bug is not swallowed."""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka.errors  # type: ignore[import-untyped]
import pytest

from broker import _agents


class _Topic:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.sent: list[tuple[bytes | None, bytes, int | None]] = []

    async def send(self, *, key: bytes | None, value: bytes, partition: int | None) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((key, value, partition))


def test_a_send_during_a_kafka_outage_is_retried_until_it_goes(monkeypatch: Any) -> None:
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    monkeypatch.setattr(_agents.asyncio, "sleep", sleep)
    topic = _Topic([aiokafka.errors.KafkaConnectionError(), aiokafka.errors.RequestTimedOutError()])
    asyncio.run(_agents._send(topic, b"k", b"v", 2))
    assert topic.sent == [(b"k", b"v", 2)]
    assert len(waits) == 2 and waits[1] > waits[0]  # backing off


def test_a_bug_in_a_send_is_not_retried_for_ever() -> None:
    topic = _Topic([TypeError("a bug")])
    with pytest.raises(TypeError):
        asyncio.run(_agents._send(topic, b"k", b"v"))
    assert topic.sent == []
