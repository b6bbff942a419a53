"""The Kafka edge: a consumer that reads every partition of the service's topic.

The store, not Kafka, decides where a partition resumes: the store's offset is
committed with the ids handed over, Kafka's (under the service's own group id)
only afterwards, so lag tools see progress. On start each partition is sought
to the later of the two; Kafka's is later only if another process of the same
group read on meanwhile.

The consumer assigns itself every partition rather than joining the group:
kafka-python 3.0.12 can block forever in ``ensure_coordinator_ready`` when a
process joins a group a second time (reproduced with a bare ``KafkaConsumer``
loop; manual assignment with commits under the group id does not block). The
store is local anyway, so a service runs one subscriber process per group;
partitions added to the topic later are picked up as they appear. Kafka client
errors are translated here into ``KafkaUnavailable``, except an offset Kafka has
deleted, which is counted as ``lost`` and stepped past in the open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, OffsetOutOfRangeError
from kafka.structs import OffsetAndMetadata

from consent import ConsentError, Directory, DirectoryWatcher
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
_DISCOVERY_INTERVAL = 10.0
_FIRST_DISCOVERY_INTERVAL = 0.5
_DIRECTORY_INTERVAL = 10.0


@contextmanager
def _kafka(action: str) -> Iterator[None]:
    try:
        yield
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka failed while {action}: {type(exc).__name__}") from exc


class Subscriber:
    """What a service embeds: read its topic, verify, open, dedupe, hand over, commit.

    Args:
        settings: where to read and keep state (``SubscriberSettings``).
        directory: a ``consent.DirectoryWatcher`` (polled every 10 s and at each
            ``run``: a revoked key or a withdrawn agreement bites without a
            restart), or a fixed verified directory (``consent.load_directory``).
            Past the directory's expiry nothing is handed over until a valid one
            is in place.
        key: this service's X25519 private key.
        sink: where notifications go (``CallbackSink``, ``JsonLinesSink``, ``WebhookSink``).
        metrics: counters (default None: a fresh registry, see ``metrics``).
        codec: the wire codec (default None: ``schemas.Codec()``).
    """

    def __init__(
        self,
        settings: SubscriberSettings,
        *,
        directory: Directory | DirectoryWatcher,
        key: X25519PrivateKey,
        sink: Sink,
        metrics: SubscriberMetrics | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or SubscriberMetrics()
        self.store = DeliveryStore(settings.store)
        try:
            self.dead_letters = DeadLetterFile(settings.dead_letters)
        except BaseException:
            self.store.close()  # its lock would refuse the retry that follows
            raise
        self.sink = sink
        self._watcher: DirectoryWatcher | None = None
        if isinstance(directory, DirectoryWatcher):
            self._watcher, directory = directory, directory.current
        self._next_directory_check = 0.0
        self._expired_serial: int | None = None
        self._delivery = Delivery(
            settings, directory=directory, key=key, sink=sink, store=self.store,
            dead_letters=self.dead_letters, metrics=self.metrics, codec=codec,
        )  # fmt: skip
        self._stop = threading.Event()
        # Held while ``run`` runs: ``close`` from another thread waits for the message
        # in hand instead of closing the store and consumer under it.
        self._running = threading.Lock()
        self._failures = 0
        self._limit = 0
        self._resume_at: dict[TopicPartition, int] = {}
        self._started: set[TopicPartition] = set()
        self._in_doubt_at: dict[TopicPartition, int] = {}
        self._next_discovery = 0.0
        try:
            self._consumer = self._connect(settings)
        except BaseException:
            self.dead_letters.close()
            self.store.close()
            raise

    @staticmethod
    def _connect(settings: SubscriberSettings) -> KafkaConsumer:
        with _kafka("connecting"):
            return KafkaConsumer(
                bootstrap_servers=settings.bootstrap,
                group_id=settings.group_id,
                client_id=f"fedbroker-subscriber-{settings.service}",
                enable_auto_commit=False,
                # No silent reset: an offset Kafka deleted before it was read is a
                # loss to count and report (``_deleted_unread``), not to step over.
                auto_offset_reset="none",
                max_poll_records=_MAX_POLL_RECORDS,
                # The broker creates the topic with its partitions; a reader must not
                # create it first with the cluster's defaults.
                allow_auto_create_topics=False,
                **settings.security.kafka_python(),
            )

    def _discover(self) -> None:
        """Assign partitions not yet read, each sought to where it resumes."""
        if time.monotonic() < self._next_discovery:
            return
        # Sooner while nothing is assigned: the topic may be created any moment.
        interval = _DISCOVERY_INTERVAL if self._resume_at else _FIRST_DISCOVERY_INTERVAL
        self._next_discovery = time.monotonic() + interval
        topic = self.settings.topic_name
        with _kafka("reading the topic's partitions"):
            known = self._consumer.partitions_for_topic(topic) or set()
            new = [TopicPartition(topic, p) for p in sorted(known)]
            new = [tp for tp in new if tp not in self._resume_at]
            if not new:
                return
            self._consumer.assign([*self._resume_at, *new])
            for tp in new:
                stored = self.store.next_offset(tp.topic, tp.partition)
                committed = self._consumer.committed(tp)
                self._resume_at[tp] = max(stored or 0, committed or 0)
                if stored is None and committed is not None:
                    # Kafka is committed after the store, so the message at Kafka's
                    # offset may have been handed over just before a crash, and
                    # the store that knew it is gone.
                    log.warning(
                        "%s[%d]: the store knows nothing of it, the group committed %d:"
                        " was the store lost? The message there is treated as in doubt",
                        tp.topic, tp.partition, committed,
                    )  # fmt: skip
                    self._in_doubt_at[tp] = committed
                if stored is not None or committed is not None:
                    self._consumer.seek(tp, self._resume_at[tp])
                else:
                    self._consumer.seek_to_beginning(tp)
        log.info("reading %s partitions %s", topic, [tp.partition for tp in new])

    def _directory_in_force(self) -> bool:
        """Take up a new directory if its file changed; False while the one in force
        has expired: what it says about keys and revocations may no longer hold,
        so nothing is verified against it (the offsets wait; nothing is lost)."""
        now = datetime.now(UTC)
        if self._watcher is not None and time.monotonic() >= self._next_directory_check:
            self._next_directory_check = time.monotonic() + _DIRECTORY_INTERVAL
            try:
                change = self._watcher.poll(now)
            except ConsentError as exc:  # reported once per bad version; the current stays
                log.error("directory %s refused (%s)", self._watcher.path, exc.reason)
                change = None
            if change is not None:
                self._delivery.use_directory(change.current)
                if change.needs_restart:
                    log.warning("directory serial %d needs a restart: %s",
                                change.current.serial, "; ".join(change.needs_restart))  # fmt: skip
        directory = self._delivery.directory
        self.metrics.directory_expires_in.set(directory.expires_in(now))
        if now < directory.expires_at:
            self._expired_serial = None
            return True
        if self._expired_serial != directory.serial:
            self._expired_serial = directory.serial
            log.error("directory serial %d expired at %s; handing nothing over until a "
                      "valid one is in place", directory.serial,
                      directory.expires_at.isoformat())  # fmt: skip
        if self._watcher is not None:  # look for the new one sooner
            self._next_directory_check = min(self._next_directory_check, time.monotonic() + 1.0)
        return False

    def stop(self) -> None:
        """Ask ``run`` to return after the message in hand, giving up a hand-over in
        progress that the sink can cut short (``Sink.interrupt``: the webhook); it is
        tried again on the next start. Safe from another thread and a signal handler."""
        self._stop.set()
        self.sink.interrupt()

    def run(self, *, max_delivered: int = 0, idle_timeout: float | None = None) -> None:
        """Consume until ``stop``, ``max_delivered`` hand-overs, or ``idle_timeout`` seconds
        without a message while partitions are assigned (defaults: no limit).

        Raises:
            KafkaUnavailable: the Kafka client failed.
            DeliveryStoreError: the store or dead-letter file cannot be written.
        """
        with self._running:
            self._run(max_delivered, idle_timeout)

    def _run(self, max_delivered: int, idle_timeout: float | None) -> None:
        self._limit = max_delivered
        last = time.monotonic()
        self._next_directory_check = 0.0  # a file replaced between runs is read now
        while not self._stop.is_set() and not self._limit_reached():
            if not self._directory_in_force():
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                self._stop.wait(self.settings.poll_timeout)
                continue
            self._discover()
            try:
                with _kafka("polling"):
                    batches = self._consumer.poll(timeout_ms=int(self.settings.poll_timeout * 1000))
            except KafkaUnavailable as exc:
                if not isinstance(exc.__cause__, OffsetOutOfRangeError):
                    raise
                self._deleted_unread(exc.__cause__.args[0])
                continue
            # Idle time counts only once partitions are assigned (the topic may
            # not exist yet).
            if batches or not self._resume_at:
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

    def _deleted_unread(self, positions: dict[TopicPartition, int]) -> None:
        """Kafka deleted messages before this subscriber read them (down, or wedged
        behind its sink, for longer than the topic's retention): they cannot be
        read any more, but must not vanish unnoticed. Resume at the earliest left."""
        with _kafka("finding the earliest offsets"):
            earliest = self._consumer.beginning_offsets(list(positions))
        for tp, offset in positions.items():
            first = int(earliest[tp])
            if offset < first:
                log.error(
                    "%s[%d]: offsets %d to %d were deleted by Kafka before they were read",
                    tp.topic, tp.partition, offset, first - 1,
                )  # fmt: skip
                self.metrics.count("lost", amount=first - offset)
            else:  # past the end: the topic was deleted and made again
                log.warning("%s[%d]: offset %d is past the end; reading from %d",
                            tp.topic, tp.partition, offset, first)  # fmt: skip
            self._consumer.seek(tp, first)
            self._resume_at[tp] = first

    def _limit_reached(self) -> bool:
        return bool(self._limit) and self.metrics.tally["delivered"] >= self._limit

    def _partition(self, tp: TopicPartition, records: list[object]) -> None:
        done = None
        for record in records:
            offset = int(record.offset)  # type: ignore[attr-defined]
            place = Place(tp.topic, tp.partition, offset)
            first = tp not in self._started
            self._started.add(tp)
            outcome = self._delivery.handle(
                place,
                record.value,  # type: ignore[attr-defined]
                first=first,
                in_doubt=self._in_doubt_at.get(tp) == offset,
            )
            if isinstance(outcome, Retry):
                # Read it again after a backoff; what follows it waits its turn.
                self._consumer.seek(tp, offset)
                delay = self.settings.retry_backoff.delay(self._failures)
                self._failures += 1
                self._stop.wait(delay)
                break
            self._failures = 0
            self._in_doubt_at.pop(tp, None)
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
        """Stop, wait for ``run`` to finish the message in hand, then close the consumer
        and the files (the store is consistent at any point).

        Safe from another thread; not from inside the sink, which ``run`` is waiting on.
        """
        self.stop()
        with self._running:
            self._close()

    def _close(self) -> None:
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
