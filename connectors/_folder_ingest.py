"""Folder sources into the outbox, file by file, each in steps committed with its progress.

A file is known by its digest, not its name: one read to its end is marked done
in the same transaction as its last step's records, so a crash before it is
moved out of the inbox never reads it twice, and a crash mid-file redoes only
the step it interrupted. A file refused as a whole is quarantined by its digest
and moved to ``failed/``.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path

from connectors._build import StepOutcome
from connectors._config import SourceConfig
from connectors._errors import SourceError
from connectors._folder_source import FolderSource, file_label
from connectors._ingest_pass import IngestPass, IngestReport, sum_reports
from connectors._mapping import SourceMapping
from connectors._send_ahead import ROWS_PER_STEP
from connectors._sources import SourceRow

__all__ = ["FolderIngest"]

logger = logging.getLogger(__name__)


class FolderIngest:
    """Reads folder sources for one connector, pass after pass.

    Kept for the connector's life: it remembers, by source, the files it handled
    but could not move out of the inbox (``_finish``), so that a refused file is
    not refused again, nor its move failure logged again, at every pass.
    """

    def __init__(self) -> None:
        self._left_in_place: set[tuple[str, str]] = set()
        self._unmovable_warned: set[tuple[str, str]] = set()

    def ingest(self, run: IngestPass, source: SourceConfig) -> IngestReport:
        """Every ready file of ``source``, in name order, until ``run.stop`` is set.

        Raises:
            SourceError: the folder cannot be listed (a file that cannot be read
                is quarantined instead, and the next one read).
        """
        assert source.path is not None
        mapping = run.mappings[source.name]
        folder = FolderSource(source.name, source.path, "csv" if source.kind == "csv" else "jsonl")
        total = IngestReport()
        for path in folder.ready_files():
            if run.stop.is_set():
                break
            digest: str | None = None
            try:
                data = folder.read(path)
                digest = folder.digest(data)
                if (source.name, digest) in self._left_in_place:
                    continue  # refused already, and could not be moved out of the way
                if run.outbox.file_done(source.name, digest):
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
                with run.outbox.transaction() as batch:
                    fresh = batch.quarantine(
                        source.name, file_label(path), 0, "file", exc.reason,
                        position=None if digest is None else f"file:{digest}",
                    )  # fmt: skip
                if fresh:
                    run.metrics.rows_quarantined.labels(source.name, "file", exc.reason).inc()
                if not self._finish(folder, path, ok=False):
                    self._left_in_place.add((source.name, digest or f"name:{path}"))
                continue
            report, whole = _ingest_file(
                run, source.name, mapping, file_label(path), digest,
                itertools.chain(head, rows),
            )  # fmt: skip
            total = sum_reports(total, report)
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
    run: IngestPass,
    source: str,
    mapping: SourceMapping,
    name: str,
    digest: str,
    rows: Iterable[SourceRow],
) -> tuple[IngestReport, bool]:
    """A file in steps of ``ROWS_PER_STEP`` rows, from where an earlier run stopped;
    its report, and whether it was read to its end (not stopped, ``run.stop``).

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
        for step in _steps(rows, run.outbox.rows_done(source, digest)):
            taken.append(step)
            yield step[1]

    with closing(run.pool.build(source, steps(), run.clock)) as built:
        for outcome in built:
            start, step, last = taken.popleft()
            total = sum_reports(total, _commit_step(run, source, digest, name, start, step,
                                                    last, outcome))  # fmt: skip
            run.after_step()
            if last:
                return total, True
            if run.stop.is_set():  # the steps built ahead are dropped, never committed
                return total, False
    return total, True


def _commit_step(
    run: IngestPass,
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
    with run.outbox.transaction() as batch:
        run.record(batch, source, step, outcome, digest)
        if last:
            batch.mark_file(source, digest, name)
        else:
            batch.set_rows_done(source, digest, end)
    run.metrics.outbox_depth.inc(batch.added)
    return IngestReport(end - start, batch.added, batch.quarantined, batch.dropped)


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
