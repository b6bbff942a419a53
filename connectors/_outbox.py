"""The connector's durable local outbox: nothing accepted is lost (DESIGN section 7).

An encoded event enters the outbox in the same SQLite transaction that moves
the source's high-water mark (or a file's count of rows read, or marks the file
done), and leaves it only after
Kafka has acknowledged it. A crash at any point therefore either redoes work
(at-least-once; event ids make the repeat recognisable) or finds it done,
never skips it. WAL mode lets the publisher drain while the reader appends.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from connectors._errors import OutboxError

__all__ = ["PUBLISH_SOURCE", "Outbox", "OutboxBatch", "OutboxEntry", "QuarantineEntry"]

logger = logging.getLogger(__name__)

#: The quarantine's source for a record Kafka refused for good (its location is
#: the event id, which carries no personal data).
PUBLISH_SOURCE = "(publish)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    enqueued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS high_water (source TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS processed_files (
    source TEXT NOT NULL, digest TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (source, digest)
);
CREATE TABLE IF NOT EXISTS file_progress (
    source TEXT NOT NULL, digest TEXT NOT NULL, rows_done INTEGER NOT NULL,
    PRIMARY KEY (source, digest)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL, location TEXT NOT NULL, row INTEGER NOT NULL,
    field TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL,
    position TEXT
);
CREATE TABLE IF NOT EXISTS dropped_fields (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL, location TEXT NOT NULL, row INTEGER NOT NULL,
    field TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL
);
"""


#: A refusal is recorded once per source position (``OutboxBatch.quarantine``).
#: Added after the table, so an outbox written before it gains the column here;
#: its older entries have none, and SQLite keeps NULLs apart in a unique index.
_QUARANTINE_POSITION = """
CREATE UNIQUE INDEX IF NOT EXISTS quarantine_position ON quarantine (source, position)
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One encoded message waiting for Kafka's acknowledgement."""

    seq: int
    event_id: str
    topic: str
    key: bytes
    value: bytes
    enqueued_at: float


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A refused row (or, in ``Outbox.dropped``, a dropped field of a kept row):
    where it was and why, never what it held."""

    source: str
    location: str
    row: int
    field: str
    reason: str


class OutboxBatch:
    """The writes of one source step, committed together or not at all."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self.added = 0
        self.quarantined = 0
        self.dropped = 0

    def add(self, event_id: str, topic: str, key: bytes, value: bytes) -> None:
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO outbox (event_id, topic, key, value, enqueued_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (event_id, topic, key, value, time.time()),
        )
        self.added += cursor.rowcount

    def add_many(self, records: Sequence[tuple[str, str, bytes, bytes]]) -> None:
        """``add`` of each ``(event_id, topic, key, value)``, in one statement."""
        if not records:
            return
        now = time.time()
        cursor = self._db.executemany(
            "INSERT OR IGNORE INTO outbox (event_id, topic, key, value, enqueued_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(*record, now) for record in records],
        )
        self.added += cursor.rowcount

    def quarantine(
        self,
        source: str,
        location: str,
        row: int,
        field: str,
        reason: str,
        *,
        position: str | None,
    ) -> bool:
        """Records a refusal once per ``position``; whether it is new (to count and log it).

        ``position`` is where the refused thing is in its source, the same on
        every reading of it: a file's digest (with the row's number), a table
        row's high-water value and place in its batch. A refusal committed apart
        from the progress it belongs to (a file refused whole, then moved to
        ``failed/``) is met again after a crash between the two, and a second
        entry counted one refusal twice. None (a file unreadable before its
        digest was known) has no such key and is always recorded.
        """
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO quarantine (source, location, row, field, reason, at, position) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (source, location, row, field, reason, time.time(), position),
        )
        self.quarantined += cursor.rowcount
        return cursor.rowcount > 0

    def drop_field(self, source: str, location: str, row: int, field: str, reason: str) -> None:
        """Record an identifier left out of a row that was kept."""
        self._db.execute(
            "INSERT INTO dropped_fields (source, location, row, field, reason, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (source, location, row, field, reason, time.time()),
        )
        self.dropped += 1

    def set_high_water(self, source: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO high_water (source, value) VALUES (?, ?) "
            "ON CONFLICT(source) DO UPDATE SET value = excluded.value",
            (source, value),
        )

    def set_rows_done(self, source: str, digest: str, rows_done: int) -> None:
        """How far into a file this step has read: a restart goes on from there."""
        self._db.execute(
            "INSERT INTO file_progress (source, digest, rows_done) VALUES (?, ?, ?) "
            "ON CONFLICT(source, digest) DO UPDATE SET rows_done = excluded.rows_done",
            (source, digest, rows_done),
        )

    def mark_file(self, source: str, digest: str, name: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO processed_files (source, digest, name) VALUES (?, ?, ?)",
            (source, digest, name),
        )
        self._db.execute(
            "DELETE FROM file_progress WHERE source = ? AND digest = ?", (source, digest)
        )


class Outbox:
    """A SQLite file in WAL mode; one per connector."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(quarantine)")}
            if "position" not in columns:  # an outbox written before refusals had a key
                self._db.execute("ALTER TABLE quarantine ADD COLUMN position TEXT")
            self._db.execute(_QUARANTINE_POSITION)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
        self.path = path

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[OutboxBatch]:
        """Everything written through the batch commits atomically, or rolls back."""
        self._db.execute("BEGIN IMMEDIATE")
        batch = OutboxBatch(self._db)
        try:
            yield batch
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def high_water(self, source: str) -> str | None:
        row = self._db.execute(
            "SELECT value FROM high_water WHERE source = ?", (source,)
        ).fetchone()
        return None if row is None else str(row[0])

    def file_done(self, source: str, digest: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM processed_files WHERE source = ? AND digest = ?", (source, digest)
        ).fetchone()
        return row is not None

    def rows_done(self, source: str, digest: str) -> int:
        """Rows of a file committed by earlier steps (0 for a file not yet begun)."""
        row = self._db.execute(
            "SELECT rows_done FROM file_progress WHERE source = ? AND digest = ?",
            (source, digest),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def pending(self, limit: int, *, after: int = 0) -> list[OutboxEntry]:
        """The oldest unacknowledged entries, from sequence number ``after`` on."""
        rows = self._db.execute(
            "SELECT seq, event_id, topic, key, value, enqueued_at FROM outbox "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [OutboxEntry(*row) for row in rows]

    def remove(self, seqs: Sequence[int]) -> None:
        """Forget messages Kafka has acknowledged."""
        if not seqs:
            return
        with self.transaction():
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def reject(self, entries: Sequence[OutboxEntry], reason: str) -> None:
        """Move records Kafka refused for good (too large, say) to the quarantine.

        Retrying them would wedge the outbox behind them forever.
        """
        if not entries:
            return
        now = time.time()
        with self.transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO quarantine "
                "(source, location, row, field, reason, at, position) "
                "VALUES (?, ?, 0, 'record', ?, ?, ?)",
                [(PUBLISH_SOURCE, e.event_id, reason, now, e.event_id) for e in entries],
            )
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(e.seq,) for e in entries])

    def depth(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def quarantined(self) -> list[QuarantineEntry]:
        rows = self._db.execute(
            "SELECT source, location, row, field, reason FROM quarantine ORDER BY id"
        ).fetchall()
        return [QuarantineEntry(*row) for row in rows]

    def dropped(self) -> list[QuarantineEntry]:
        """Identifiers left out of rows that were kept, for the operator's report."""
        rows = self._db.execute(
            "SELECT source, location, row, field, reason FROM dropped_fields ORDER BY id"
        ).fetchall()
        return [QuarantineEntry(*row) for row in rows]
