"""Kafka client errors become the broker's own, at the one place each call is made.

The broker talks to Kafka through Faust (aiokafka) and, for its side reads
(topic set-up, the score histograms, the attempt log), through kafka-python.
Both raise their own trees; the timers and the per-message guard must not need
to know either, so every side call runs inside ``kafka_errors`` and surfaces as
``KafkaUnavailable`` (reason ``kafka-unavailable``), chained to the original.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiokafka.errors  # type: ignore[import-untyped]
import kafka.errors

from broker._errors import KafkaUnavailable

__all__ = ["KAFKA_ERRORS", "kafka_errors"]

#: What a Kafka client raises when a broker node, the network or a request fails.
KAFKA_ERRORS: tuple[type[BaseException], ...] = (
    kafka.errors.KafkaError,
    aiokafka.errors.KafkaError,
    ConnectionError,
    TimeoutError,
)


@contextmanager
def kafka_errors(operation: str) -> Iterator[None]:
    """Re-raise a Kafka client error as ``KafkaUnavailable`` naming ``operation``.

    The message carries the operation and the client's error class only: client
    messages can quote topic contents in rare cases, so they are not copied.
    """
    try:
        yield
    except KAFKA_ERRORS as exc:
        raise KafkaUnavailable(f"{operation}: {type(exc).__name__}") from exc
