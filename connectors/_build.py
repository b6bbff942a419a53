"""From a step of source rows to the records to publish: the connector's CPU-bound work.

Pure apart from the randomness in sealing, and free of I/O: the outbox, the
metrics and the logs stay with the connector (``connectors._ingest_pass``), which
records each ``RowOutcome`` in row order. That is what lets the work run in
other processes (``connectors._build_pool``) and its results be recorded as if
built in place.

Each row is judged alone: a refused row costs that row only, and a bug one row
trips is retried, then refused as ``unexpected-<type>``, and the step goes on.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from connectors._errors import InvalidIdentifier
from connectors._events import EventFactory
from connectors._gc_pause import gc_paused
from connectors._mapping import SourceMapping
from connectors._normalise import DroppedField
from connectors._rows import EncodedRow, encode_rows
from connectors._sources import SourceRow
from consent import BatchSealer
from schemas import CitizenEvent, Codec, ConsentRecord

__all__ = [
    "ROW_ATTEMPTS",
    "Built",
    "Mishap",
    "Refused",
    "RowOutcome",
    "StepBuilder",
    "StepOutcome",
]

#: How often a row that raised an unexpected exception is tried before it is refused.
ROW_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class Built:
    """A row's record, ready for the outbox: its id, Kafka key and signed envelope."""

    record_id: str
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Refused:
    """A row that yields no record: which field refused it, and why (never the value)."""

    field: str
    code: str


@dataclass(frozen=True, slots=True)
class Mishap:
    """An unexpected exception while building a row: its type and where it was raised.

    Only these: the exception's message and traceback text may hold the row's values.
    """

    failure: str
    file: str
    line: int
    attempt: int


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """What became of one row, with the identifiers it lost and any bug it tripped."""

    result: Built | Refused
    dropped: tuple[DroppedField, ...] = ()
    mishaps: tuple[Mishap, ...] = ()


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """Each row's outcome, in row order; ``batch_failure`` names the exception type
    that made the step's batch encoding fall back to encoding row by row."""

    rows: tuple[RowOutcome, ...]
    batch_failure: str | None = None


@dataclass(frozen=True, slots=True)
class StepBuilder:
    """Builds a step's records under one factory (keys and directory) and codec."""

    factory: EventFactory
    codec: Codec
    max_record_bytes: int

    def build(
        self, rows: Sequence[SourceRow], mapping: SourceMapping, now: datetime
    ) -> StepOutcome:
        """Each row's outcome, in order; a step's payloads share one ``BatchSealer``.

        Every row's tokens are Bloom-encoded in one batch pass (``encode_rows``),
        where a refused row is its own ``InvalidIdentifier``. Should the batch
        itself fail (a bug some row trips), nothing is lost: each row is then
        encoded alone, under its per-row guard.
        """
        sealer = BatchSealer()  # ephemeral secrets for this step only
        with gc_paused():  # see connectors._gc_pause: a step allocates much, in no cycles
            batch_failure: str | None = None
            encoded: Sequence[EncodedRow | InvalidIdentifier | None]
            try:
                encoded = encode_rows(rows, mapping, self.factory.tokeniser)
            except Exception as exc:  # noqa: BLE001 - one row's bug must not fail the step
                batch_failure, encoded = type(exc).__name__, [None] * len(rows)
            outcomes = tuple(
                self._outcome(row, mapping, now, pre, sealer)
                for row, pre in zip(rows, encoded, strict=True)
            )
        return StepOutcome(outcomes, batch_failure)

    def _outcome(
        self,
        row: SourceRow,
        mapping: SourceMapping,
        now: datetime,
        encoded: EncodedRow | InvalidIdentifier | None,
        sealer: BatchSealer,
    ) -> RowOutcome:
        """The row's record, encoded; an unexpected error is retried a bounded number of times.

        Building is pure, so an unexpected exception is a bug that will most
        likely recur: after ``ROW_ATTEMPTS`` it becomes an ``unexpected-<type>``
        refusal of this row.
        """
        mishaps: list[Mishap] = []
        dropped: list[DroppedField] = []
        for attempt in range(1, ROW_ATTEMPTS + 1):
            dropped.clear()
            # A retry encodes the row afresh, in case the batch's result was the trouble.
            pre = encoded if attempt == 1 else None
            try:
                built = self._record(row, mapping, now, dropped, pre, sealer)
            except InvalidIdentifier as exc:
                return RowOutcome(Refused(exc.field, exc.code), tuple(dropped), tuple(mishaps))
            except Exception as exc:  # noqa: BLE001 - one row's bug must not fail the step
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                where = Path(frame.filename).name, frame.lineno or 0
                mishaps.append(Mishap(type(exc).__name__, *where, attempt))
                continue
            return RowOutcome(built, tuple(dropped), tuple(mishaps))
        failure = mishaps[-1].failure
        return RowOutcome(Refused("row", f"unexpected-{failure}"), tuple(dropped), tuple(mishaps))

    def _record(
        self,
        row: SourceRow,
        mapping: SourceMapping,
        now: datetime,
        dropped: list[DroppedField],
        encoded: EncodedRow | InvalidIdentifier | None,
        sealer: BatchSealer,
    ) -> Built:
        factory = self.factory
        record: CitizenEvent | ConsentRecord
        if mapping.record == "consent":
            record = factory.consent(row, mapping, now=now, dropped=dropped, encoded=encoded)
            record_id = record.record_id
        else:
            record = factory.event(
                row, mapping, now=now, dropped=dropped, encoded=encoded, sealer=sealer
            )
            record_id = record.event_id
        value = factory.envelope(record, self.codec)
        if len(value) > self.max_record_bytes:
            raise InvalidIdentifier("record", "record-too-large")
        key = record.tokens[0].key() if record.tokens else record_id
        return Built(record_id, key.encode("ascii"), value)
