"""The connector process: read sources into the outbox, drain the outbox into Kafka.

Reading and publishing are separate steps of one loop, so that while Kafka is
down the connector keeps reading (the outbox grows) and catches up when Kafka
returns. Every source step commits in one outbox transaction: the rows' records
and the step's progress (rows of the file read, file done, high-water mark)
together. While Kafka is up, each committed step is sent while the next is
read (``connectors._send_ahead``).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connectors._config import ConnectorConfig, SourceConfig
from connectors._directory_reload import DirectoryReloader
from connectors._errors import InvalidIdentifier, KafkaUnavailable, SourceError
from connectors._events import EventFactory
from connectors._gc_pause import gc_paused
from connectors._mapping import SourceMapping, load_mapping
from connectors._metrics import ConnectorMetrics
from connectors._normalise import DroppedField
from connectors._outbox import PUBLISH_SOURCE, Outbox, OutboxBatch
from connectors._publisher import Publisher, PublishOutcome
from connectors._rows import EncodedRow, encode_rows
from connectors._send_ahead import ROWS_PER_STEP, SendAhead
from connectors._sources import FolderSource, PostgresSource, SourceRow
from consent import BatchSealer
from schemas import CitizenEvent, Codec, ConsentRecord

__all__ = ["DEFAULT_PUBLISH_BATCH", "ROW_ATTEMPTS", "Connector", "IngestReport"]

logger = logging.getLogger(__name__)

DEFAULT_PUBLISH_BATCH = 2000
#: How often a row that raised an unexpected exception is tried before it is refused.
ROW_ATTEMPTS = 2
_Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True)
class IngestReport:
    """Counts of one ``ingest``: rows read, records enqueued, rows quarantined, and
    identifiers dropped from rows that were kept (details in ``Outbox.dropped``)."""

    read: int = 0
    enqueued: int = 0
    quarantined: int = 0
    dropped: int = 0


def _sum(a: IngestReport, b: IngestReport) -> IngestReport:
    return IngestReport(
        a.read + b.read,
        a.enqueued + b.enqueued,
        a.quarantined + b.quarantined,
        a.dropped + b.dropped,
    )


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
        clock: _Clock = _utc_now,
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

    # -- reading -----------------------------------------------------------

    def ingest(self, *, after_step: Callable[[], None] = _nothing) -> IngestReport:
        """Read every source once, as far as it goes, into the outbox.

        ``after_step`` is called after each committed step (``run`` sends the
        step to Kafka from there).
        """
        total = IngestReport()
        for source in self.config.sources:
            if source.kind == "postgres":
                report = self._ingest_table(source, after_step)
            else:
                report = self._ingest_folder(source, after_step)
            total = _sum(total, report)
        self.metrics.outbox_depth.set(self.outbox.depth())
        return total

    def _ingest_folder(self, source: SourceConfig, after_step: Callable[[], None]) -> IngestReport:
        assert source.path is not None
        mapping = self.mappings[source.name]
        folder = FolderSource(source.name, source.path, "csv" if source.kind == "csv" else "jsonl")
        total = IngestReport()
        for path in folder.ready_files():
            digest = folder.digest(path)
            if self.outbox.file_done(source.name, digest):
                folder.finish(path, ok=True)  # committed before a crash, not yet moved
                continue
            try:
                rows = list(folder.rows(path, mapping.columns))
            except SourceError as exc:
                logger.warning("source %s: file refused: %s", source.name, exc)
                with self.outbox.transaction() as batch:
                    batch.quarantine(source.name, path.name, 0, "file", exc.reason)
                    batch.mark_file(source.name, digest, path.name)
                self.metrics.rows_quarantined.labels(source.name, "file", exc.reason).inc()
                folder.finish(path, ok=False)
                continue
            report = self._ingest_file(source.name, mapping, path.name, digest, rows, after_step)
            folder.finish(path, ok=True)
            total = _sum(total, report)
            logger.info(
                "source %s: %s: %d rows, %d records, %d quarantined, %d malformed values dropped",
                source.name,
                path.name,
                report.read,
                report.enqueued,
                report.quarantined,
                report.dropped,
            )
        return total

    def _ingest_file(
        self,
        source: str,
        mapping: SourceMapping,
        name: str,
        digest: str,
        rows: Sequence[SourceRow],
        after_step: Callable[[], None],
    ) -> IngestReport:
        """A file in steps of ``ROWS_PER_STEP`` rows, from where an earlier run stopped.

        Each step commits its records with the count of rows read so far, and
        the last marks the file done, so a crash mid-file redoes only the step
        it interrupted (which had committed nothing).
        """
        total = IngestReport()
        start = self.outbox.rows_done(source, digest)
        while True:
            end = min(start + ROWS_PER_STEP, len(rows))
            with self.outbox.transaction() as batch:
                self._enqueue_rows(batch, source, mapping, rows[start:end])
                if end < len(rows):
                    batch.set_rows_done(source, digest, end)
                else:
                    batch.mark_file(source, digest, name)
            total = _sum(
                total, IngestReport(end - start, batch.added, batch.quarantined, batch.dropped)
            )
            after_step()
            if end == len(rows):
                return total
            start = end

    def _ingest_table(self, source: SourceConfig, after_step: Callable[[], None]) -> IngestReport:
        assert source.dsn and source.table and source.high_water_column
        mapping = self.mappings[source.name]
        table = PostgresSource(source.name, source.dsn, source.table, source.high_water_column)
        read = enqueued = quarantined = dropped = 0
        while True:
            batch_rows = table.batch_after(self.outbox.high_water(source.name))
            if not batch_rows:
                return IngestReport(read, enqueued, quarantined, dropped)
            with self.outbox.transaction() as batch:
                self._enqueue_rows(batch, source.name, mapping, [r for _, r in batch_rows])
                batch.set_high_water(source.name, batch_rows[-1][0])
            after_step()
            read += len(batch_rows)
            enqueued += batch.added
            quarantined += batch.quarantined
            dropped += batch.dropped

    def _enqueue_rows(
        self, batch: OutboxBatch, source: str, mapping: SourceMapping, rows: Sequence[SourceRow]
    ) -> None:
        """Each row is judged alone: whatever is wrong with it costs that row only."""
        now = self.clock()
        consent = mapping.record == "consent"
        topic = self.config.topic("consent" if consent else "events")
        rows_read = self.metrics.rows_read.labels(source)
        enqueued = self.metrics.events_enqueued.labels(source)
        added: list[tuple[str, str, bytes, bytes]] = []
        sealer = BatchSealer()  # ephemeral secrets for this batch only
        with gc_paused():  # see connectors._gc_pause: a batch allocates much, in no cycles
            for row, encoded in zip(rows, self._encode_batch(rows, mapping), strict=True):
                rows_read.inc()
                dropped: list[DroppedField] = []
                try:
                    record, value = self._build(
                        row, mapping, consent, now, dropped, encoded, sealer
                    )
                    if len(value) > self.config.max_record_bytes:
                        raise InvalidIdentifier("record", "record-too-large")
                except InvalidIdentifier as exc:
                    self._refuse(batch, source, row, exc.field, exc.code, dropped)
                    continue
                for lost in dropped:
                    batch.drop_field(source, row.location, row.row, lost.field, lost.code)
                    self.metrics.fields_dropped.labels(source, lost.field, lost.code).inc()
                record_id = (
                    record.record_id if isinstance(record, ConsentRecord) else record.event_id
                )
                key = record.tokens[0].key() if record.tokens else record_id
                added.append((record_id, topic, key.encode("ascii"), value))
                enqueued.inc()
        batch.add_many(added)

    def _encode_batch(
        self, rows: Sequence[SourceRow], mapping: SourceMapping
    ) -> Sequence[EncodedRow | InvalidIdentifier | None]:
        """Every row's tokens, Bloom-encoded in one batch pass (``encode_rows``).

        A refused row is its own ``InvalidIdentifier``. Should the batch itself
        fail (a bug some row trips), nothing is lost: every row gets None and
        is encoded alone in ``_build``, under its per-row guard.
        """
        try:
            return encode_rows(rows, mapping, self.factory.tokeniser)
        except Exception as exc:  # noqa: BLE001 - one row's bug must not fail the batch
            logger.warning(
                "batch encoding of %d rows failed (%s); encoding them one by one",
                len(rows),
                type(exc).__name__,
            )
            return [None] * len(rows)

    def _build(
        self,
        row: SourceRow,
        mapping: SourceMapping,
        consent: bool,
        now: datetime,
        dropped: list[DroppedField],
        encoded: EncodedRow | InvalidIdentifier | None = None,
        sealer: BatchSealer | None = None,
    ) -> tuple[CitizenEvent | ConsentRecord, bytes]:
        """The row's record, encoded; an unexpected error is retried a bounded number of times.

        Building is pure, so an unexpected exception is a bug that will most
        likely recur: after ``ROW_ATTEMPTS`` it becomes an ``unexpected-<type>``
        refusal of this row, and the file goes on. Only the exception's type and
        where it was raised are logged: its message may hold the row's values.
        """
        failure = "error"
        for attempt in range(1, ROW_ATTEMPTS + 1):
            dropped.clear()
            # A retry encodes the row afresh, in case the batch's result was the trouble.
            pre = encoded if attempt == 1 else None
            try:
                record: CitizenEvent | ConsentRecord = (
                    self.factory.consent(row, mapping, now=now, dropped=dropped, encoded=pre)
                    if consent
                    else self.factory.event(
                        row, mapping, now=now, dropped=dropped, encoded=pre, sealer=sealer
                    )
                )
                return record, self.factory.envelope(record, self.codec)
            except InvalidIdentifier:
                raise
            except Exception as exc:  # noqa: BLE001 - one row's bug must not fail the file
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                failure = type(exc).__name__
                logger.error(  # noqa: TRY400 - the traceback's text may hold personal data
                    "%s row %d: unexpected %s at %s:%d (attempt %d of %d)",
                    row.location,
                    row.row,
                    failure,
                    Path(frame.filename).name,
                    frame.lineno or 0,
                    attempt,
                    ROW_ATTEMPTS,
                )
        raise InvalidIdentifier("row", f"unexpected-{failure}")

    def _refuse(
        self,
        batch: OutboxBatch,
        source: str,
        row: SourceRow,
        field: str,
        reason: str,
        dropped: list[DroppedField],
    ) -> None:
        """Quarantine a row by field and reason code; count it, and what it had dropped."""
        batch.quarantine(source, row.location, row.row, field, reason)
        self.metrics.rows_quarantined.labels(source, field, reason).inc()
        for lost in dropped:
            self.metrics.fields_dropped.labels(source, lost.field, lost.code).inc()

    # -- publishing --------------------------------------------------------

    def publish(self, *, batch_size: int = DEFAULT_PUBLISH_BATCH) -> int:
        """Drain the outbox into Kafka until empty; raises ``KafkaUnavailable`` if it cannot.

        Every acknowledged record leaves the outbox, whatever became of the
        others in its batch, so none is ever sent twice by this connector; a
        record Kafka refuses for good moves to the quarantine.
        """
        published = 0
        while entries := self.outbox.pending(batch_size):
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
        self.metrics.outbox_depth.set(self.outbox.depth())

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
                self.ingest(after_step=ahead.step_committed)
            finally:
                ahead.settle()
            published += ahead.acknowledged
            try:
                published += self.publish()
            except KafkaUnavailable as exc:
                self.metrics.kafka_unavailable.inc()
                logger.warning("%s; %d records wait in the outbox", exc, self.outbox.depth())
            if once and self.outbox.depth() == 0:
                break
            stop.wait(self.config.poll_interval_s)
        return published

    def close(self) -> None:
        self.publisher.close()
        self.outbox.close()


def quarantine_report(outbox_path: Path) -> list[tuple[str, str, int, str, str]]:
    """Rows refused so far, for the operator: source, file, row, field, reason."""
    outbox = Outbox(outbox_path)
    try:
        return [(q.source, q.location, q.row, q.field, q.reason) for q in outbox.quarantined()]
    finally:
        outbox.close()
