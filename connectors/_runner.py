"""The connector process: read sources into the outbox, drain the outbox into Kafka.

Reading and publishing are separate steps of one loop, so that while Kafka is
down the connector keeps reading (the outbox grows) and catches up when Kafka
returns. Every source step commits in one outbox transaction: the rows' records
and the step's progress (rows of the file read, file done, high-water mark)
together. While Kafka is up, each committed step is sent while the next is
read (``connectors._send_ahead``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connectors._build import ROW_ATTEMPTS, Refused, StepBuilder, StepOutcome
from connectors._build_pool import BuildPool
from connectors._config import ConnectorConfig, SourceConfig
from connectors._directory_reload import DirectoryReloader
from connectors._errors import BuildFailed, KafkaUnavailable, SourceError
from connectors._events import EventFactory
from connectors._mapping import SourceMapping, load_mapping
from connectors._metrics import ConnectorMetrics
from connectors._outbox import PUBLISH_SOURCE, Outbox, OutboxBatch
from connectors._publisher import Publisher, PublishOutcome
from connectors._send_ahead import ROWS_PER_STEP, SendAhead
from connectors._sources import FolderSource, PostgresSource, SourceRow, file_label
from schemas import Codec

__all__ = ["DEFAULT_PUBLISH_BATCH", "Connector", "IngestReport"]

logger = logging.getLogger(__name__)

DEFAULT_PUBLISH_BATCH = 2000
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
        # Files handled but not moved out of the inbox (``_finish``), by source.
        self._left_in_place: set[tuple[str, str]] = set()
        self._unmovable_warned: set[tuple[str, str]] = set()

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
            for source in self.config.sources:
                if stop.is_set():
                    break
                try:
                    if source.kind == "postgres":
                        report = self._ingest_table(pool, source, after_step, stop)
                    else:
                        report = self._ingest_folder(pool, source, after_step, stop)
                except SourceError as exc:
                    self.metrics.source_unavailable.labels(source.name).inc()
                    logger.error("source %s cannot be read this pass: %s", source.name, exc)
                    failed = failed or exc
                    continue
                total = _sum(total, report)
        self.metrics.outbox_depth.set(self.outbox.depth())
        if failed is not None:
            raise failed
        return total

    def _ingest_folder(
        self,
        pool: BuildPool,
        source: SourceConfig,
        after_step: Callable[[], None],
        stop: threading.Event,
    ) -> IngestReport:
        assert source.path is not None
        mapping = self.mappings[source.name]
        folder = FolderSource(source.name, source.path, "csv" if source.kind == "csv" else "jsonl")
        total = IngestReport()
        for path in folder.ready_files():
            if stop.is_set():
                break
            digest: str | None = None
            try:
                data = folder.read(path)
                digest = folder.digest(data)
                if (source.name, digest) in self._left_in_place:
                    continue  # refused already, and could not be moved out of the way
                if self.outbox.file_done(source.name, digest):
                    self._finish(folder, path, ok=True)  # committed before a crash, not moved
                    continue
                rows = folder.parse(file_label(path), data, mapping.columns)
                del data  # the rows' reader keeps the text, not the bytes too
                # Reads up to the first row: a file refused as a whole (its header) raises here.
                head = list(itertools.islice(rows, 1))
            except SourceError as exc:
                logger.warning("source %s: file refused: %s", source.name, exc)
                # Not marked done: nothing of it was read, and the usual fix is the
                # mapping's, after which the same bytes are dropped again to be read.
                # Keyed by the digest: killed before the move below, the next start
                # refuses the same file again, and finds its refusal recorded.
                with self.outbox.transaction() as batch:
                    fresh = batch.quarantine(
                        source.name, file_label(path), 0, "file", exc.reason,
                        position=None if digest is None else f"file:{digest}",
                    )  # fmt: skip
                if fresh:
                    self.metrics.rows_quarantined.labels(source.name, "file", exc.reason).inc()
                if not self._finish(folder, path, ok=False):
                    self._left_in_place.add((source.name, digest or f"name:{path}"))
                continue
            report, whole = self._ingest_file(
                pool, source.name, mapping, file_label(path), digest,
                itertools.chain(head, rows), after_step, stop,
            )  # fmt: skip
            total = _sum(total, report)
            if not whole:  # stopped: the file stays, its progress committed
                logger.info("source %s: %s: stopped after %d rows; read on next time",
                            source.name, file_label(path), report.read)  # fmt: skip
                break
            self._finish(folder, path, ok=True)
            logger.info(
                "source %s: %s: %d rows, %d records, %d quarantined, %d malformed values dropped",
                source.name,
                file_label(path),
                report.read,
                report.enqueued,
                report.quarantined,
                report.dropped,
            )
        return total

    def _finish(self, folder: FolderSource, path: Path, *, ok: bool) -> bool:
        """Moves a handled file out of the inbox; whether it could.

        A file that cannot be moved (the folder read-only to the connector, a file
        where ``done/`` should be, the file removed meanwhile) is left where it is:
        read, it is known done by its digest; refused, it is not refused again by
        this process. Raising here failed every pass, at the first such file.
        """
        try:
            folder.finish(path, ok=ok)
        except OSError as exc:
            if (folder.name, path.name) not in self._unmovable_warned:
                self._unmovable_warned.add((folder.name, path.name))
                logger.error(
                    "source %s: %s: cannot move it to %s/ (%s); left in the inbox",
                    folder.name,
                    file_label(path),
                    "done" if ok else "failed",
                    type(exc).__name__,
                )
            return False
        return True

    def _ingest_file(
        self,
        pool: BuildPool,
        source: str,
        mapping: SourceMapping,
        name: str,
        digest: str,
        rows: Iterable[SourceRow],
        after_step: Callable[[], None],
        stop: threading.Event,
    ) -> tuple[IngestReport, bool]:
        """A file in steps of ``ROWS_PER_STEP`` rows, from where an earlier run stopped;
        its report, and whether it was read to its end (not stopped, ``ingest``).

        Each step commits its records with the count of rows read so far, and
        the last marks the file done, so a crash mid-file redoes only the step
        it interrupted (which had committed nothing). The pool builds the next
        steps while this one is committed and sent. Rows are parsed as the pool
        takes steps, never all at once: held as rows, a file takes some 13 times
        its size in memory.
        """
        total = IngestReport()
        taken: deque[tuple[int, list[SourceRow], bool]] = deque()

        def steps() -> Iterator[list[SourceRow]]:
            for step in _steps(rows, self.outbox.rows_done(source, digest)):
                taken.append(step)
                yield step[1]

        with closing(pool.build(source, steps(), self.clock)) as built:
            for outcome in built:
                start, step, last = taken.popleft()
                total = _sum(total, self._commit_step(source, digest, name, start, step,
                                                      last, outcome))  # fmt: skip
                after_step()
                if last:
                    return total, True
                if stop.is_set():  # the steps built ahead are dropped, never committed
                    return total, False
        return total, True

    def _commit_step(
        self,
        source: str,
        digest: str,
        name: str,
        start: int,
        step: list[SourceRow],
        last: bool,
        outcome: StepOutcome,
    ) -> IngestReport:
        """One step of a file into the outbox with the file's progress, in one transaction."""
        end = start + len(step)
        with self.outbox.transaction() as batch:
            self._record(batch, source, step, outcome, digest)
            if last:
                batch.mark_file(source, digest, name)
            else:
                batch.set_rows_done(source, digest, end)
        self.metrics.outbox_depth.inc(batch.added)
        return IngestReport(end - start, batch.added, batch.quarantined, batch.dropped)

    def _ingest_table(
        self,
        pool: BuildPool,
        source: SourceConfig,
        after_step: Callable[[], None],
        stop: threading.Event,
    ) -> IngestReport:
        assert source.dsn and source.table and source.high_water_column
        table = PostgresSource(
            source.name, source.dsn, source.table, source.high_water_column,
            max_ahead=self.config.time_bounds.max_skew,
        )  # fmt: skip
        read = enqueued = dropped = 0
        quarantined = self._refuse_ahead(table)
        while not stop.is_set():  # between batches, each committed whole with its mark
            batch_rows = table.batch_after(self.outbox.high_water(source.name))
            if not batch_rows:
                return IngestReport(read, enqueued, quarantined, dropped)
            rows = [r for _, r in batch_rows]
            # Built in steps, as a file is (a batch grows with its ties: one step would
            # use one worker and could outlast the step deadline); committed whole,
            # since the high-water mark may not move past part of a tie.
            steps = [rows[i : i + ROWS_PER_STEP] for i in range(0, len(rows), ROWS_PER_STEP)]
            built = list(pool.build(source.name, steps, self.clock))
            with self.outbox.transaction() as batch:
                for step, outcome in zip(steps, built, strict=True):
                    self._record(batch, source.name, step, outcome, None)
                batch.set_high_water(source.name, batch_rows[-1][0])
            self.metrics.outbox_depth.inc(batch.added)
            after_step()
            read += len(batch_rows)
            enqueued += batch.added
            quarantined += batch.quarantined
            dropped += batch.dropped
        return IngestReport(read, enqueued, quarantined, dropped)

    def _refuse_ahead(self, table: PostgresSource) -> int:
        """Quarantines the rows ``batch_after`` leaves out as implausibly far ahead;
        how many were new. Each is refused once (keyed by its place), and counted and
        logged then, by count and reason only; they are met again on every pass until
        the clock or the sequence reaches them."""
        mark = self.outbox.high_water(table.name)
        ahead = table.rows_ahead(mark)
        if not ahead:
            return 0
        with self.outbox.transaction() as batch:
            fresh = Counter(
                row.reason
                for row in ahead
                if batch.quarantine(
                    table.name, row.location, 0, "row", row.reason, position=row.position
                )  # fmt: skip
            )
        for reason, count in sorted(fresh.items()):
            self.metrics.rows_quarantined.labels(table.name, "row", reason).inc(count)
            logger.warning(
                "source %s: %d row(s) refused: high-water value %s; the rows after them "
                "are read, the mark never moves past them",
                table.name, count, reason,
            )  # fmt: skip
        return sum(fresh.values())

    def _worker_failed(self, failure: str) -> None:
        self.metrics.build_worker_failures.labels(failure).inc()
        logger.error("a build worker failed (%s); its steps are built again", failure)

    def _record(
        self,
        batch: OutboxBatch,
        source: str,
        rows: Sequence[SourceRow],
        step: StepOutcome,
        digest: str | None,
    ) -> None:
        """A built step into the outbox, row by row: records, refusals, dropped fields.

        A refusal's position is the file's ``digest`` and the row's number, or, for
        a table (``digest`` None), the row's location (its high-water value) and number.
        """
        mapping = self.mappings[source]
        topic = self.config.topic("consent" if mapping.record == "consent" else "events")
        rows_read = self.metrics.rows_read.labels(source)
        enqueued = self.metrics.events_enqueued.labels(source)
        if step.batch_failure is not None:
            logger.warning(
                "batch encoding of %d rows failed (%s); encoding them one by one",
                len(rows),
                step.batch_failure,
            )
        added: list[tuple[str, str, bytes, bytes]] = []
        for row, outcome in zip(rows, step.rows, strict=True):
            rows_read.inc()
            for mishap in outcome.mishaps:
                logger.error(  # the exception's text may hold personal data: type and place only
                    "%s row %d: unexpected %s at %s:%d (attempt %d of %d)",
                    row.location,
                    row.row,
                    mishap.failure,
                    mishap.file,
                    mishap.line,
                    mishap.attempt,
                    ROW_ATTEMPTS,
                )
            for lost in outcome.dropped:
                self.metrics.fields_dropped.labels(source, lost.field, lost.code).inc()
            result = outcome.result
            if isinstance(result, Refused):
                where = row.location if digest is None else f"file:{digest}"
                if batch.quarantine(
                    source, row.location, row.row, result.field, result.code,
                    position=f"{where}:{row.row}",
                ):  # fmt: skip
                    self.metrics.rows_quarantined.labels(source, result.field, result.code).inc()
                continue
            for lost in outcome.dropped:
                batch.drop_field(source, row.location, row.row, lost.field, lost.code)
            added.append((result.record_id, topic, result.key, result.value))
        before = batch.added
        batch.add_many(added)
        fresh = batch.added - before
        enqueued.inc(fresh)
        if repeated := len(added) - fresh:
            # Ids are the event's own digest: a repeat is a row of the same reference,
            # type and time as one already held, or a row read again after a crash.
            self.metrics.events_repeated.labels(source).inc(repeated)
            logger.warning("%s: %d row(s) repeated an event already in the outbox; kept once",
                           source, repeated)  # fmt: skip

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


def _steps(rows: Iterable[SourceRow], first: int) -> Iterator[tuple[int, list[SourceRow], bool]]:
    """``(start, rows, last)`` of each step of ``ROWS_PER_STEP`` rows after the ``first``
    (committed by an earlier run). An empty file, or one fully read before a crash,
    is one empty last step, which marks it done."""
    held: list[SourceRow] = []
    start = first
    for index, row in enumerate(rows):
        if index < first:
            continue
        if len(held) == ROWS_PER_STEP:
            yield start, held, False
            start, held = start + len(held), []
        held.append(row)
    yield start, held, True


def quarantine_report(outbox_path: Path) -> list[tuple[str, str, int, str, str]]:
    """Rows refused so far, for the operator: source, file, row, field, reason."""
    outbox = Outbox(outbox_path)
    try:
        return [(q.source, q.location, q.row, q.field, q.reason) for q in outbox.quarantined()]
    finally:
        outbox.close()
