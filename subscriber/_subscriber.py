"""The Kafka edge: a consumer in the service's own group that feeds ``Delivery``.

The store, not Kafka, decides where a partition resumes: the store's offset is
committed with the ids handed over, Kafka's only afterwards (so lag tools see
progress). A record below the store's offset for its partition has been dealt
with already, so the loop seeks past it; Kafka's offset wins only when it is
ahead (another instance of the service read on meanwhile). kafka-python calls
rebalance listeners on its own I/O thread, where neither the store (SQLite) nor
the consumer may be used, so the listener only says that the assignment
changed. Kafka client errors are translated here into ``KafkaUnavailable``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consent import Directory
from schemas import Codec
from subscriber._deadletter import DeadLetterFile
from subscriber._delivery import Delivery, Place, Retry
from subscriber._errors import KafkaUnavailable
from subscriber._metrics import SubscriberMetrics
from subscriber._settings import SubscriberSettings
from subscriber._sinks import Sink
from subscriber._store import DeliveryStore

__all__ = ["Subscriber"]

log = logging.getLogger(__name__)

_MAX_POLL_RECORDS = 200


@contextmanager
def _kafka(action: str) -> Iterator[None]:
    try:
        yield
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka failed while {action}: {type(exc).__name__}") from exc


class _Reassigned(ConsumerRebalanceListener):  # type: ignore[misc]
    """Flags a new assignment; the consumer's own thread re-reads the store's offsets."""

    def __init__(self, flag: threading.Event) -> None:
        self._flag = flag

    def on_partitions_revoked(self, revoked: object) -> None:
        """Nothing to flush: every message's outcome is committed as it happens."""

    def on_partitions_assigned(self, assigned: object) -> None:
        self._flag.set()


class Subscriber:
    """What a service embeds: read its topic, verify, open, dedupe, hand over, commit.

    Args:
        settings: where to read and keep state (``SubscriberSettings``).
        directory: the verified directory (``consent.load_directory``).
        key: this service's X25519 private key.
        sink: where notifications go (``CallbackSink``, ``JsonLinesSink``, ``WebhookSink``).
        metrics: counters (default None: a fresh registry, see ``metrics``).
        codec: the wire codec (default None: ``schemas.Codec()``).
    """

    def __init__(
        self,
        settings: SubscriberSettings,
        *,
        directory: Directory,
        key: X25519PrivateKey,
        sink: Sink,
        metrics: SubscriberMetrics | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or SubscriberMetrics()
        self.store = DeliveryStore(settings.store)
        self.dead_letters = DeadLetterFile(settings.dead_letters)
        self.sink = sink
        self._delivery = Delivery(
            settings, directory=directory, key=key, sink=sink, store=self.store,
            dead_letters=self.dead_letters, metrics=self.metrics, codec=codec,
        )  # fmt: skip
        self._stop = threading.Event()
        self._failures = 0
        self._limit = 0
        self._reassigned = threading.Event()
        self._resume_at: dict[TopicPartition, int] = {}
        with _kafka("connecting"):
            self._consumer = KafkaConsumer(
                bootstrap_servers=settings.bootstrap,
                group_id=settings.group_id,
                client_id=f"fedbroker-subscriber-{settings.service}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=_MAX_POLL_RECORDS,
                session_timeout_ms=int(settings.session_timeout * 1000),
                **settings.security.kafka_python(),
            )
            self._consumer.subscribe(
                topics=[settings.topic_name], listener=_Reassigned(self._reassigned)
            )

    def _resume_offset(self, tp: TopicPartition) -> int:
        """Where the store says ``tp`` resumes (0 if it has never seen it), cached."""
        if self._reassigned.is_set():
            self._reassigned.clear()
            self._resume_at.clear()
        if tp not in self._resume_at:
            self._resume_at[tp] = self.store.next_offset(tp.topic, tp.partition) or 0
        return self._resume_at[tp]

    def stop(self) -> None:
        """Ask ``run`` to return after the message in hand (safe from another thread)."""
        self._stop.set()

    def run(self, *, max_delivered: int = 0, idle_timeout: float | None = None) -> None:
        """Consume until ``stop``, ``max_delivered`` hand-overs, or ``idle_timeout`` seconds
        without a message while partitions are assigned (defaults: no limit).

        Raises:
            KafkaUnavailable: the Kafka client failed.
            DeliveryStoreError: the store or dead-letter file cannot be written.
        """
        self._limit = max_delivered
        last = time.monotonic()
        while not self._stop.is_set() and not self._limit_reached():
            with _kafka("polling"):
                batches = self._consumer.poll(timeout_ms=int(self.settings.poll_timeout * 1000))
            # Idle time counts only while partitions are assigned: joining the group
            # after a crashed member can take its session timeout.
            if batches or not self._consumer.assignment():
                last = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last > idle_timeout:
                return
            pending = list(batches.items())
            while pending:
                tp, records = pending.pop(0)
                self._partition(tp, records)
                if self._limit_reached() or self._stop.is_set():
                    # Fetched but not handled: read them again next time.
                    for other, left in pending:
                        self._consumer.seek(other, int(left[0].offset))
                    return

    def _limit_reached(self) -> bool:
        return bool(self._limit) and self.metrics.tally["delivered"] >= self._limit

    def _partition(self, tp: TopicPartition, records: list[object]) -> None:
        done = None
        resume = self._resume_offset(tp)
        for record in records:
            offset = int(record.offset)  # type: ignore[attr-defined]
            if offset < resume:
                # Dealt with before Kafka heard of it (a crash between the two commits).
                log.info("resuming %s[%d] at %d from the store", tp.topic, tp.partition, resume)
                self._consumer.seek(tp, resume)
                done = resume
                break
            place = Place(tp.topic, tp.partition, offset)
            outcome = self._delivery.handle(place, record.value)  # type: ignore[attr-defined]
            if isinstance(outcome, Retry):
                # Read it again after a backoff; what follows it waits its turn.
                self._consumer.seek(tp, offset)
                delay = self.settings.retry_backoff.delay(self._failures)
                self._failures += 1
                self._stop.wait(delay)
                break
            self._failures = 0
            done = self._resume_at[tp] = offset + 1
            if self._limit_reached() or self._stop.is_set():
                self._consumer.seek(tp, done)
                break
        if done is not None:
            self._commit(tp, done)

    def _commit(self, tp: TopicPartition, next_offset: int) -> None:
        try:
            self._consumer.commit({tp: OffsetAndMetadata(next_offset, "", -1)})
        except KafkaError as exc:  # the store holds the truth; Kafka catches up next time
            log.warning("Kafka commit of %s[%d] failed: %s", tp.topic, tp.partition, exc)

    def close(self) -> None:
        """Leave the group and close the files (the store is consistent at any point)."""
        try:
            self._consumer.close(autocommit=False)
        except KafkaError as exc:
            log.warning("closing the consumer failed: %s", type(exc).__name__)
        self.sink.close()
        self.dead_letters.close()
        self.store.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
