"""Moves acknowledged-or-nothing batches from the outbox to Kafka.

kafka-python with ``acks=all`` and the idempotent producer: a message counts as
published only when every in-sync replica has it. Anything short of that leaves
the message in the outbox for the next attempt; Kafka being down is an ordinary
state to wait out, not a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors._errors import KafkaUnavailable
from connectors._outbox import OutboxEntry
from consent import KafkaSecurity

__all__ = ["DEFAULT_ACK_TIMEOUT_S", "Publisher"]

logger = logging.getLogger(__name__)

DEFAULT_ACK_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_MS = 5000


@dataclass
class Publisher:
    """A lazily connected producer; reconnects after Kafka returns."""

    bootstrap: str
    client_id: str = "fedbroker-connector"
    ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    _producer: Any = field(default=None, init=False, repr=False)

    def _connect(self) -> Any:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        if self._producer is None:
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    client_id=self.client_id,
                    acks="all",
                    enable_idempotence=True,
                    retries=2**31 - 1,
                    max_in_flight_requests_per_connection=5,
                    linger_ms=5,
                    batch_size=256 * 1024,
                    request_timeout_ms=int(self.ack_timeout_s * 1000),
                    delivery_timeout_ms=int(self.ack_timeout_s * 1000) + 1000,
                    max_block_ms=_CONNECT_TIMEOUT_MS,
                    **self.security.kafka_python(),
                )
            except KafkaError as exc:
                raise KafkaUnavailable(f"cannot reach Kafka ({type(exc).__name__})") from exc
        return self._producer

    def publish(self, entries: Sequence[OutboxEntry]) -> list[OutboxEntry]:
        """Send entries in order; return those Kafka acknowledged (a prefix of the input).

        Raises:
            KafkaUnavailable: nothing could be acknowledged (the producer is reset).
        """
        from kafka.errors import KafkaError

        producer = self._connect()
        acknowledged: list[OutboxEntry] = []
        try:
            futures = [
                (entry, producer.send(entry.topic, key=entry.key, value=entry.value))
                for entry in entries
            ]
            producer.flush(timeout=self.ack_timeout_s)
            for entry, future in futures:
                future.get(timeout=0.1 if future.is_done else self.ack_timeout_s)
                acknowledged.append(entry)
        except KafkaError as exc:
            logger.warning(
                "Kafka acknowledged %d of %d messages (%s); the rest stay in the outbox",
                len(acknowledged),
                len(entries),
                type(exc).__name__,
            )
            self.close()
            if not acknowledged:
                raise KafkaUnavailable(f"Kafka did not acknowledge ({type(exc).__name__})") from exc
        return acknowledged

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            except Exception:  # noqa: BLE001 - closing a broken producer must not raise
                logger.debug("producer close failed", exc_info=True)
            self._producer = None
