"""Moves acknowledged-or-nothing batches from the outbox to Kafka.

kafka-python with ``acks=all`` and the idempotent producer: a message counts as
published only when every in-sync replica has it. Anything short of that leaves
the message in the outbox for the next attempt; Kafka being down is an ordinary
state to wait out, not a crash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors._errors import KafkaUnavailable
from connectors._outbox import OutboxEntry
from connectors._partitioning import default_partitions
from consent import KafkaSecurity

__all__ = ["DEFAULT_ACK_TIMEOUT_S", "PublishOutcome", "Publisher", "Sending"]

logger = logging.getLogger(__name__)

DEFAULT_ACK_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_MS = 5000
_MIN_WAIT_S = 0.05


def _permanent_reason(exc: Exception) -> str | None:
    """The reason code of an error about one record that no retry can cure.

    Only size is the record's own: any other error is the cluster's or a
    topic's (a timeout, a lost leader, an ACL, a timestamp policy that refuses
    every record as ``InvalidRecordError``) and is waited out, since
    quarantining records for it would drop good data.
    """
    from kafka import errors

    if isinstance(exc, errors.MessageSizeTooLargeError | errors.RecordListTooLargeError):
        return "record-too-large"
    return None


@dataclass(frozen=True, slots=True)
class _Attempt:
    acknowledged: tuple[OutboxEntry, ...]
    refused: tuple[tuple[OutboxEntry, str], ...]
    pending: int
    problem: str | None


@dataclass(frozen=True, slots=True)
class Sending:
    """A batch handed to the producer whose acknowledgements are not yet judged.

    Between ``Publisher.begin`` and ``Publisher.complete`` the producer's own
    thread transmits the batch, so the caller can build the next one meanwhile.
    """

    entries: tuple[OutboxEntry, ...]
    producer: Any
    sent: tuple[tuple[OutboxEntry, Any], ...]
    refused: tuple[tuple[OutboxEntry, str], ...]
    problem: str | None


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What became of one batch: acknowledged, refused for good (with reason), pending."""

    acknowledged: tuple[OutboxEntry, ...]
    rejected: tuple[tuple[OutboxEntry, str], ...]
    pending: int


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

    def publish(self, entries: Sequence[OutboxEntry]) -> PublishOutcome:
        """``begin`` then ``complete``: send entries and wait for Kafka's answer."""
        return self.complete(self.begin(entries))

    def begin(self, entries: Sequence[OutboxEntry]) -> Sending:
        """Hand entries to the producer without waiting for acknowledgements.

        Only one batch may be in flight: ``complete`` it before the next
        ``begin`` (its flush and, after a failure, its producer reset concern
        the whole producer).

        Raises:
            KafkaUnavailable: no producer could be made.
        """
        from kafka.errors import KafkaError

        producer = self._connect()
        sent: list[tuple[OutboxEntry, Any]] = []
        refused: list[tuple[OutboxEntry, str]] = []
        problem: str | None = None
        try:
            partitions = _partitions(producer, entries)
        except KafkaError as exc:  # no metadata: nothing can be sent yet
            return Sending(tuple(entries), producer, (), (), type(exc).__name__)
        for entry, partition in zip(entries, partitions, strict=True):
            try:
                future = producer.send(
                    entry.topic, key=entry.key, value=entry.value, partition=partition
                )
            except KafkaError as exc:
                reason = _permanent_reason(exc)
                if reason is None:  # no metadata or buffer: the rest would wait just as long
                    problem = type(exc).__name__
                    break
                refused.append((entry, reason))
                continue
            sent.append((entry, future))
        return Sending(tuple(entries), producer, tuple(sent), tuple(refused), problem)

    def complete(self, sending: Sending) -> PublishOutcome:
        """Wait for a begun batch; report, message by message, what Kafka acknowledged.

        Each entry is judged by its own future, never as a prefix of the batch:
        an entry Kafka acknowledged is reported acknowledged even when an
        earlier one failed, so the caller never re-sends it (re-sending an
        acknowledged record is a duplicate on the topic). An entry Kafka
        refuses for good when sent alone (over the topic's
        ``max.message.bytes``) is reported as rejected with a reason, so it
        cannot wedge the outbox; every other failure leaves the entry pending.

        Raises:
            KafkaUnavailable: nothing was acknowledged or rejected (the
                producer is reset).
        """
        entries = sending.entries
        first = self._settle(sending)
        acknowledged, pending, problem = list(first.acknowledged), first.pending, first.problem
        rejected: list[tuple[OutboxEntry, str]] = []
        if len(entries) == 1:
            rejected.extend(first.refused)
        else:
            # The idempotent producer aborts every batch after a refused record
            # with the same error, so a refusal in a batch proves nothing about
            # the record: only a refusal of the record sent alone does.
            for entry, _ in first.refused:
                alone = self._send([entry])
                acknowledged.extend(alone.acknowledged)
                rejected.extend(alone.refused)
                pending += alone.pending
                problem = alone.problem or problem
        if pending:
            logger.warning(
                "Kafka acknowledged %d of %d messages (%s); %d stay in the outbox",
                len(acknowledged),
                len(entries),
                problem,
                pending,
            )
            if not acknowledged and not rejected:
                raise KafkaUnavailable(f"Kafka did not acknowledge ({problem})")
        return PublishOutcome(tuple(acknowledged), tuple(rejected), pending)

    def _send(self, entries: Sequence[OutboxEntry]) -> _Attempt:
        """One attempt at a batch; the producer is reset after any failure."""
        return self._settle(self.begin(entries))

    def _settle(self, sending: Sending) -> _Attempt:
        from kafka.errors import KafkaError

        entries, sent = sending.entries, sending.sent
        refused, problem = list(sending.refused), sending.problem
        producer = sending.producer
        deadline = time.monotonic() + self.ack_timeout_s
        try:
            producer.flush(timeout=self.ack_timeout_s)
        except KafkaError as exc:  # some did not complete in time; judged one by one below
            problem = type(exc).__name__
        acknowledged: list[OutboxEntry] = []
        unresolved: list[tuple[OutboxEntry, Any]] = []
        for entry, future in sent:
            try:
                future.get(timeout=max(_MIN_WAIT_S, deadline - time.monotonic()))
            except KafkaError as exc:
                reason = _permanent_reason(exc)
                if reason is None:
                    problem = type(exc).__name__
                    unresolved.append((entry, future))
                else:
                    refused.append((entry, reason))
                continue
            acknowledged.append(entry)
        if len(acknowledged) < len(entries):
            # After a timeout or a fatal error the producer's state is unknown:
            # the next attempt starts with a fresh one.
            self.close()
        # Closing lets in-flight requests finish: one acknowledged meanwhile must
        # not be sent again.
        acknowledged += [e for e, f in unresolved if getattr(f, "is_done", False) and f.succeeded()]
        pending = len(entries) - len(acknowledged) - len(refused)
        return _Attempt(tuple(acknowledged), tuple(refused), pending, problem)

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            except Exception:  # noqa: BLE001 - closing a broken producer must not raise
                logger.debug("producer close failed", exc_info=True)
            self._producer = None


def _partitions(producer: Any, entries: Sequence[OutboxEntry]) -> list[int]:
    """Each entry's partition, as the producer's default partitioner would choose it.

    Computed for the whole batch at once (``connectors._partitioning``); the
    partition counts come from the producer's metadata, fetched if need be.
    """
    placed = [0] * len(entries)
    by_topic: dict[str, list[int]] = {}
    for index, entry in enumerate(entries):
        by_topic.setdefault(entry.topic, []).append(index)
    for topic, indexes in by_topic.items():
        available = sorted(producer.partitions_for(topic))
        chosen = default_partitions([entries[i].key for i in indexes], len(available))
        for index, position in zip(indexes, chosen, strict=True):
            placed[index] = available[position]
    return placed
