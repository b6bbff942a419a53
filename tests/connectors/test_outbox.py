"""The outbox keeps records and progress together, and survives reopening."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from connectors import Outbox


def test_records_and_progress_commit_together(tmp_path: Path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    with outbox.transaction() as batch:
        batch.add("e1", "t", b"k", b"v1")
        batch.add("e1", "t", b"k", b"v1")  # a replayed record is recognised
        batch.add("e2", "t", b"k", b"v2")
        batch.quarantine("src", "f.csv", 3, "nhs_number", "bad-check-digit", position="f:3")
        batch.set_high_water("src", "42")
    assert batch.added == 2
    with pytest.raises(RuntimeError):
        with outbox.transaction() as batch:
            batch.add("e3", "t", b"k", b"v3")
            batch.set_high_water("src", "99")
            raise RuntimeError("crash before commit")
    outbox.close()

    reopened = Outbox(tmp_path / "outbox.sqlite")
    assert [e.event_id for e in reopened.pending(10)] == ["e1", "e2"]
    assert reopened.high_water("src") == "42"
    assert reopened.quarantined()[0].reason == "bad-check-digit"
    reopened.remove([reopened.pending(1)[0].seq])
    assert reopened.depth() == 1
    assert not reopened.file_done("src", "abc")
    with reopened.transaction() as batch:
        batch.mark_file("src", "abc", "f.csv")
    assert reopened.file_done("src", "abc")


def test_an_outbox_from_before_refusals_had_a_position_gains_the_key(tmp_path):
    """An outbox written by an earlier release has a quarantine without ``position``:
    opened, it gains the column, keeps its entries, and refuses a repeat once."""
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE quarantine (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL,"
        " location TEXT NOT NULL, row INTEGER NOT NULL, field TEXT NOT NULL,"
        " reason TEXT NOT NULL, at REAL NOT NULL);"
        "INSERT INTO quarantine (source, location, row, field, reason, at)"
        " VALUES ('src', 'a.csv', 0, 'file', 'source-unreadable', 0);"
    )
    old.commit()
    old.close()
    outbox = Outbox(path)
    try:
        for _ in range(2):
            with outbox.transaction() as batch:
                batch.quarantine("src", "b.csv", 2, "row", "extra-cells", position="d:2")
        assert [(q.location, q.row) for q in outbox.quarantined()] == [("a.csv", 0), ("b.csv", 2)]
    finally:
        outbox.close()
