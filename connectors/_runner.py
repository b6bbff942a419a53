"""The connector process: read sources into the outbox, drain the outbox into Kafka.

Reading and publishing are separate steps of one loop, so that while Kafka is
down the connector keeps reading (the outbox grows) and catches up when Kafka
returns. Every source step commits in one outbox transaction: the rows' records
and the step's progress (rows of the file read, file done, high-water mark)
together. While Kafka is up, each committed step is sent while the next is
read (``connectors._send_ahead``). A folder is read by ``connectors._folder_ingest``,
a table by ``connectors._table_ingest``; both record what they build alike
(``connectors._ingest_pass``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from connectors._build import StepBuilder
from connectors._build_pool import BuildPool
from connectors._config import ConnectorConfig
from connectors._directory_reload import DirectoryReloader
from connectors._errors import BuildFailed, KafkaUnavailable, SourceError
from connectors._events import EventFactory
from connectors._folder_ingest import FolderIngest
from connectors._ingest_pass import Clock, IngestPass, IngestReport, sum_reports
from connectors._mapping import SourceMapping, load_mapping
from connectors._metrics import ConnectorMetrics
from connectors._outbox import PUBLISH_SOURCE, Outbox
from connectors._publisher import Publisher, PublishOutcome
from connectors._send_ahead import SendAhead
from connectors._table_ingest import ingest_table
from schemas import Codec

__all__ = ["DEFAULT_PUBLISH_BATCH", "Connector"]

logger = logging.getLogger(__name__)

DEFAULT_PUBLISH_BATCH = 2000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _nothing() -> None:
    pass


class Connector:
    """One council's connector, assembled from its config by ``connectors.open_connector``."""

    def __init__(
        self,
        config: ConnectorConfig,
        factory: EventFactory,
        *,
        outbox: Outbox,
        publisher: Publisher,
        metrics: ConnectorMetrics,
        codec: Codec,
        directory: DirectoryReloader | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self.config = config
        self.factory = factory
        self.outbox = outbox
        self.publisher = publisher
        self.metrics = metrics
        self.codec = codec
        self.clock = clock
        self.directory = directory
        self.mappings: dict[str, SourceMapping] = {
            s.name: load_mapping(s.mapping) for s in config.sources
        }
        self._folders = FolderIngest()  # remembers, across passes, files it could not move

    # -- reading -----------------------------------------------------------

    def ingest(
        self,
        *,
        after_step: Callable[[], None] = _nothing,
        stop: threading.Event | None = None,
    ) -> IngestReport:
        """Read every source once, as far as it goes, into the outbox.

        ``after_step`` is called after each committed step (``run`` sends the
        step to Kafka from there). Once ``stop`` is set, reading ends after the
        step in hand is committed: a file read in part stays in the inbox with
        its rows read so far recorded, and the next pass reads on from there.
        Reading to the end of a large file first held a stopping pod for minutes.

        Raises:
            SourceError: the first source that could not be read (its database
                down, its folder gone), once every other source has been read:
                one source's outage must not starve the rest.
        """
        total = IngestReport()
        failed: SourceError | None = None
        stop = stop or threading.Event()
        builder = StepBuilder(self.factory, self.codec, self.config.max_record_bytes)
        workers = self.config.build_workers
        with BuildPool(
            builder, self.mappings, workers, on_worker_failure=self._worker_failed
        ) as pool:
            run = IngestPass(
                self.config, self.mappings, self.outbox, self.metrics, pool, self.clock,
                after_step, stop,
            )  # fmt: skip
            for source in self.config.sources:
                if stop.is_set():
                    break
                try:
                    if source.kind == "postgres":
                        report = ingest_table(run, source)
                    else:
                        report = self._folders.ingest(run, source)
                except SourceError as exc:
                    self.metrics.source_unavailable.labels(source.name).inc()
                    logger.error("source %s cannot be read this pass: %s", source.name, exc)
                    failed = failed or exc
                    continue
                total = sum_reports(total, report)
        self.metrics.outbox_depth.set(self.outbox.depth())
        if failed is not None:
            raise failed
        return total

    def _worker_failed(self, failure: str) -> None:
        self.metrics.build_worker_failures.labels(failure).inc()
        logger.error("a build worker failed (%s); its steps are built again", failure)

    # -- publishing --------------------------------------------------------

    def publish(
        self, *, batch_size: int = DEFAULT_PUBLISH_BATCH, stop: threading.Event | None = None
    ) -> int:
        """Drain the outbox into Kafka until empty (or ``stop`` is set: what is left
        waits in the outbox); raises ``KafkaUnavailable`` if it cannot.

        Every acknowledged record leaves the outbox, whatever became of the
        others in its batch, so none is ever sent twice by this connector; a
        record Kafka refuses for good moves to the quarantine.
        """
        published = 0
        stop = stop or threading.Event()
        while not stop.is_set() and (entries := self.outbox.pending(batch_size)):
            outcome = self.publisher.publish(entries)
            self._account(outcome)
            published += len(outcome.acknowledged)
            if outcome.pending:
                raise KafkaUnavailable("Kafka acknowledged part of a batch; retrying later")
        return published

    def _account(self, outcome: PublishOutcome) -> None:
        """Forget what Kafka acknowledged, quarantine what it refused for good, count both."""
        self.outbox.remove([e.seq for e in outcome.acknowledged])
        for reason in sorted({r for _, r in outcome.rejected}):
            refused = [e for e, r in outcome.rejected if r == reason]
            self.outbox.reject(refused, reason)
            self.metrics.rows_quarantined.labels(PUBLISH_SOURCE, "record", reason).inc(len(refused))
            logger.warning("Kafka refused %d record(s) for good: %s", len(refused), reason)
        now = time.time()
        for topic, count in Counter(e.topic for e in outcome.acknowledged).items():
            self.metrics.events_published.labels(topic).inc(count)
        for entry in outcome.acknowledged:
            self.metrics.publish_latency.observe(max(0.0, now - entry.enqueued_at))
        # Counting the outbox costs in proportion to its backlog: the gauge follows
        # each step by difference, and is set from a count once a pass (``run``).
        self.metrics.outbox_depth.dec(len(outcome.acknowledged) + len(outcome.rejected))

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> int:
        """Loop read-then-publish until ``stop`` is set; with ``once``, until all is published.

        Returns how many records were published.
        """
        stop = stop or threading.Event()
        published = 0
        while not stop.is_set():
            if self.directory is not None:
                self.factory = self.directory.refresh(self.factory, self.clock())
            ahead = SendAhead(self.outbox, self.publisher, self._account)
            try:
                self.ingest(after_step=ahead.step_committed, stop=stop)
            except (BuildFailed, SourceError) as exc:  # committed nothing: tried next pass
                if once:
                    raise
                if isinstance(exc, BuildFailed):  # a SourceError was logged by its source
                    logger.error("%s", exc)
            finally:
                ahead.settle()
            published += ahead.acknowledged
            try:
                published += self.publish(stop=stop)
            except KafkaUnavailable as exc:
                self.metrics.kafka_unavailable.inc()
                logger.warning("%s; %d records wait in the outbox", exc, self.outbox.depth())
            depth = self.outbox.depth()
            self.metrics.outbox_depth.set(depth)
            if once and depth == 0:
                break
            stop.wait(self.config.poll_interval_s)
        return published

    def close(self) -> None:
        self.publisher.close()
        self.outbox.close()
