"""PostgreSQL table sources into the outbox, batch by batch past the high-water mark.

Each batch commits whole with the mark moved to its last row's value, in one
outbox transaction: the mark may not move past part of a tie, and a crash
before the commit reads the batch again. A row whose high-water value is
implausibly far ahead is refused once, and never read past.
"""

from __future__ import annotations

import logging
from collections import Counter

from connectors._config import SourceConfig
from connectors._ingest_pass import IngestPass, IngestReport
from connectors._postgres_source import PostgresSource
from connectors._send_ahead import ROWS_PER_STEP

__all__ = ["ingest_table"]

logger = logging.getLogger(__name__)


def ingest_table(run: IngestPass, source: SourceConfig) -> IngestReport:
    """Every batch of ``source`` past its high-water mark, until none is left or
    ``run.stop`` is set.

    Raises:
        TableUnreadable: PostgreSQL refused a read (its SQLSTATE only).
    """
    assert source.dsn and source.table and source.high_water_column
    table = PostgresSource(
        source.name, source.dsn, source.table, source.high_water_column,
        max_ahead=run.config.time_bounds.max_skew,
    )  # fmt: skip
    read = enqueued = dropped = 0
    quarantined = _refuse_ahead(run, table)
    while not run.stop.is_set():  # between batches, each committed whole with its mark
        batch_rows = table.batch_after(run.outbox.high_water(source.name))
        if not batch_rows:
            return IngestReport(read, enqueued, quarantined, dropped)
        rows = [r for _, r in batch_rows]
        # Built in steps, as a file is (a batch grows with its ties: one step would
        # use one worker and could outlast the step deadline); committed whole,
        # since the high-water mark may not move past part of a tie.
        steps = [rows[i : i + ROWS_PER_STEP] for i in range(0, len(rows), ROWS_PER_STEP)]
        built = list(run.pool.build(source.name, steps, run.clock))
        with run.outbox.transaction() as batch:
            for step, outcome in zip(steps, built, strict=True):
                run.record(batch, source.name, step, outcome, None)
            batch.set_high_water(source.name, batch_rows[-1][0])
        run.metrics.outbox_depth.inc(batch.added)
        run.after_step()
        read += len(batch_rows)
        enqueued += batch.added
        quarantined += batch.quarantined
        dropped += batch.dropped
    return IngestReport(read, enqueued, quarantined, dropped)


def _refuse_ahead(run: IngestPass, table: PostgresSource) -> int:
    """Quarantines the rows ``batch_after`` leaves out as implausibly far ahead;
    how many were new. Each is refused once (keyed by its place), and counted and
    logged then, by count and reason only; they are met again on every pass until
    the clock or the sequence reaches them."""
    mark = run.outbox.high_water(table.name)
    ahead = table.rows_ahead(mark)
    if not ahead:
        return 0
    with run.outbox.transaction() as batch:
        fresh = Counter(
            row.reason
            for row in ahead
            if batch.quarantine(
                table.name, row.location, 0, "row", row.reason, position=row.position
            )  # fmt: skip
        )
    for reason, count in sorted(fresh.items()):
        run.metrics.rows_quarantined.labels(table.name, "row", reason).inc(count)
        logger.warning(
            "source %s: %d row(s) refused: high-water value %s; the rows after them "
            "are read, the mark never moves past them",
            table.name, count, reason,
        )  # fmt: skip
    return sum(fresh.values())
