"""One ingest pass: what it reads every source with, how a built step lands in the outbox,
and what it reports.

The folder path (``connectors._folder_ingest``) and the table path
(``connectors._table_ingest``) differ in how they read and in the progress each
step commits (rows of a file read, file done, high-water mark); a built step is
recorded here for both, so a refusal, a dropped field or a repeated event is
counted, logged and quarantined alike whatever its source.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from connectors._build import ROW_ATTEMPTS, Refused, StepOutcome
from connectors._build_pool import BuildPool
from connectors._config import ConnectorConfig
from connectors._mapping import SourceMapping
from connectors._metrics import ConnectorMetrics
from connectors._outbox import Outbox, OutboxBatch
from connectors._sources import SourceRow

__all__ = ["Clock", "IngestPass", "IngestReport", "sum_reports"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class IngestReport:
    """Counts of one ``ingest``: rows read, records enqueued, rows quarantined, and
    identifiers dropped from rows that were kept (details in ``Outbox.dropped``)."""

    read: int = 0
    enqueued: int = 0
    quarantined: int = 0
    dropped: int = 0


def sum_reports(a: IngestReport, b: IngestReport) -> IngestReport:
    """Two reports' counts added (a pass's, from its sources' and their files')."""
    return IngestReport(
        a.read + b.read,
        a.enqueued + b.enqueued,
        a.quarantined + b.quarantined,
        a.dropped + b.dropped,
    )


@dataclass(frozen=True, slots=True)
class IngestPass:
    """The handles one pass reads every source with, bundled for the folder and table paths.

    Made afresh for each pass (``Connector.ingest``): the build pool lives for the
    pass, and the clock is the connector's as it is then.
    """

    config: ConnectorConfig
    mappings: Mapping[str, SourceMapping]
    outbox: Outbox
    metrics: ConnectorMetrics
    pool: BuildPool
    clock: Clock
    #: Called after each committed step (``Connector.run`` sends the step from there).
    after_step: Callable[[], None]
    #: Once set, reading ends after the step in hand is committed.
    stop: threading.Event

    def record(
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
