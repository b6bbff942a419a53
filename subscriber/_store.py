"""The delivered-id store: which notifications this service has been handed, and where to resume.

One SQLite file holds three things that must change together: the ids handed
over, the next offset of each partition, and the attempts spent on a message
that keeps raising an unexpected error. Because an id and the offset past it
are written in one transaction, a crash after the store's commit but before
Kafka's only replays messages that the store already knows (they are skipped),
and the consumer resumes from the store's offsets rather than Kafka's alone.

The one window left is between the sink returning and the store's commit. The
id is written as ``pending`` before the hand-over, so after a crash the
subscriber knows which single notification is in doubt and asks the sink
(``Sink.confirm``) instead of guessing (DESIGN section 10).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

from consent import fsync_folder, make_folders
from subscriber._errors import DeliveryStoreDamaged, DeliveryStoreError

__all__ = ["DEFAULT_RETENTION_SECONDS", "DeliveryState", "DeliveryStore"]

DEFAULT_RETENTION_SECONDS = 400 * 24 * 3600
"""How long a handed-over id is remembered (default: over a year, beyond any replay)."""

DeliveryState = Literal["pending", "delivered"]

_SCHEMA = """
CREATE TABLE delivered (
    notification_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
    at REAL NOT NULL
);
CREATE TABLE offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE attempts (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    count INTEGER NOT NULL, PRIMARY KEY (topic, partition, offset)
);
"""


_TABLES = frozenset({"delivered", "offsets", "attempts"})

_RECOVERY = (
    "Refusing to start as if nothing had been handed over; see docs/subscriber.md, "
    '"A damaged store"'
)


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """SQLite says the file is not (or no longer) a database, as opposed to "cannot
    read it now" (permissions, I/O, a lock): only the former is refused for good."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


class DeliveryStore:
    """A SQLite file in WAL mode with ``synchronous=FULL``: each commit survives a crash.

    A store that does not exist (nor its write-ahead log) is made new; one that
    exists but is not whole (cut to 0 bytes, short, corrupt, tables missing) is
    refused with ``DeliveryStoreDamaged``, never taken for a new one.

    Args:
        path: the database file; its folder is created (mode 0700).
        retention_seconds: ids older than this are forgotten at open
            (default ``DEFAULT_RETENTION_SECONDS``).
    """

    def __init__(
        self, path: Path | str, *, retention_seconds: float = DEFAULT_RETENTION_SECONDS
    ) -> None:
        self.path = Path(path)
        self.retention_seconds = retention_seconds
        self._lock = self._take_lock()
        try:
            if not self.path.exists():
                self._create()
            self._db = self._open_existing()
        except BaseException:
            self._lock.close()
            raise

    def _create(self) -> None:
        """Make a new store whole beside its place, then rename it in: a crash while it
        is made leaves no file at ``path`` (the next start makes it again), never a
        0-byte one, which would be indistinguishable from a store a crash emptied."""
        log_file = self.path.with_name(self.path.name + "-wal")
        if log_file.exists() and log_file.stat().st_size > 0:
            raise DeliveryStoreDamaged(
                f"the delivered-id store {self.path} is missing but its write-ahead log "
                f"{log_file.name} is there: the file was lost. {_RECOVERY}"
            )
        making = self.path.with_name(self.path.name + ".new")
        try:
            for stale in (making, making.with_name(making.name + "-journal")):
                stale.unlink(missing_ok=True)  # a crash while making it last time
            # Rollback-journal mode while it is made: no -wal file to carry over.
            db = sqlite3.connect(making, isolation_level=None)
            try:
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
            finally:
                db.close()
            fd = os.open(making, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(making, self.path)
            fsync_folder(self.path.parent)  # or a power cut may take the rename back
        except (OSError, sqlite3.Error) as exc:
            raise DeliveryStoreError(f"cannot make the delivered-id store {self.path}") from exc

    def _open_existing(self) -> sqlite3.Connection:
        """Open the store at ``path``, which must exist and be whole.

        ``mode=rw``: SQLite must never make the file itself (it would make an empty
        one). SQLite opens a 0-byte file as an empty database and a cut one until a
        lost page is read; the check and the tables make either a refusal at start.
        """
        try:
            # Built in one thread, run in another (a service starts it in a worker
            # thread); used by one thread at a time, as the consumer is.
            db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=rw",
                uri=True, isolation_level=None, check_same_thread=False,
            )  # fmt: skip
        except (OSError, sqlite3.Error) as exc:
            raise DeliveryStoreError(f"cannot open the delivered-id store {self.path}") from exc
        try:
            # Checked before anything is written: setting WAL mode on a 0-byte file
            # writes a database header into it.
            problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise DeliveryStoreDamaged(
                    f"the delivered-id store {self.path} is corrupt "
                    f"({len(problems)} problems found). {_RECOVERY}"
                )
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if not _TABLES <= tables:
                raise DeliveryStoreDamaged(
                    f"the delivered-id store {self.path} is empty or has lost its tables "
                    f"(cut short by a crash or a full disk?). {_RECOVERY}"
                )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(
                "DELETE FROM delivered WHERE state = 'delivered' AND at < ?",
                (time.time() - self.retention_seconds,),
            )
        except sqlite3.DatabaseError as exc:
            db.close()
            if _is_damage(exc):
                raise DeliveryStoreDamaged(
                    f"the delivered-id store {self.path} is not a whole store "
                    f"({exc.sqlite_errorname}). {_RECOVERY}"
                ) from exc
            raise DeliveryStoreError(f"cannot open the delivered-id store {self.path}") from exc
        except BaseException:
            db.close()
            raise
        return db

    def _take_lock(self) -> IO[bytes]:
        """One process per store: two subscribers sharing one (one per agreement, on
        the default group and state folder) would each move the shared offsets past
        the other's notifications, and each lose the other's. The OS drops the lock
        when the process dies, however it dies."""
        try:
            make_folders(self.path.parent, mode=0o700)
            handle = open(self.path.with_name(self.path.name + ".lock"), "ab")
        except OSError as exc:
            raise DeliveryStoreError(f"cannot open the delivered-id store {self.path}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise DeliveryStoreError(
                f"the delivered-id store {self.path} is in use by another subscriber",
                reason="store-in-use",
            ) from exc
        return handle

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise DeliveryStoreError(f"delivered-id store {self.path} failed") from exc

    def state(self, notification_id: str) -> DeliveryState | None:
        """``delivered``, ``pending`` (in doubt after a crash) or None (never seen)."""
        row = self._query(
            "SELECT state FROM delivered WHERE notification_id = ?", (notification_id,)
        )
        if row is None:
            return None
        return "delivered" if row[0] == "delivered" else "pending"

    def mark_pending(self, notification_id: str) -> None:
        """Record that a hand-over of this id is about to start."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO delivered VALUES (?, 'pending', ?)",
                (notification_id, time.time()),
            )

    def advance(
        self, topic: str, partition: int, next_offset: int, *, delivered: str | None = None
    ) -> None:
        """Move a partition past a message, marking its id delivered in the same commit."""
        with self._transaction() as db:
            if delivered is not None:
                db.execute(
                    "INSERT OR REPLACE INTO delivered VALUES (?, 'delivered', ?)",
                    (delivered, time.time()),
                )
            db.execute(
                "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)", (topic, partition, next_offset)
            )
            db.execute(
                "DELETE FROM attempts WHERE topic = ? AND partition = ? AND offset < ?",
                (topic, partition, next_offset),
            )

    def next_offset(self, topic: str, partition: int) -> int | None:
        """Where this partition resumes, if the store has seen it."""
        row = self._query(
            "SELECT next_offset FROM offsets WHERE topic = ? AND partition = ?", (topic, partition)
        )
        return None if row is None else int(row[0])

    def add_attempt(self, topic: str, partition: int, offset: int) -> int:
        """Count one more failed attempt at a message; returns the count so far."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO attempts VALUES (?, ?, ?, 1) ON CONFLICT (topic, partition, offset) "
                "DO UPDATE SET count = count + 1",
                (topic, partition, offset),
            )
            row = db.execute(
                "SELECT count FROM attempts WHERE topic = ? AND partition = ? AND offset = ?",
                (topic, partition, offset),
            ).fetchone()
        return int(row[0])

    def withdraw_attempt(self, topic: str, partition: int, offset: int) -> None:
        """Take back one attempt counted at a message (never below zero)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE attempts SET count = max(count - 1, 0) "
                "WHERE topic = ? AND partition = ? AND offset = ?",
                (topic, partition, offset),
            )

    def delivered_count(self) -> int:
        """How many ids are recorded as handed over."""
        row = self._query("SELECT count(*) FROM delivered WHERE state = 'delivered'", ())
        return 0 if row is None else int(row[0])

    def _query(self, sql: str, args: tuple[object, ...]) -> tuple[Any, ...] | None:
        try:
            row = self._db.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise DeliveryStoreError(f"delivered-id store {self.path} failed") from exc
        return None if row is None else tuple(row)

    def close(self) -> None:
        self._db.close()
        self._lock.close()
