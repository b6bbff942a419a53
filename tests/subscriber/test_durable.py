"""Files the subscriber makes survive a power cut: their folders are synced too.

A power cut cannot be pulled in a test, so the tests watch ``os.fsync``: after a
file is made (or renamed into place) in a folder, that folder must be fsynced,
or the file's fsynced contents can vanish with its entry.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from subscriber import DeadLetter, DeadLetterFile, DeliveryStore, JsonLinesSink, OpenedNotification

NOTIFICATION = OpenedNotification(
    notification_id="ntf-1", agreement_id="a", purpose="p", service="s",
    created_at=datetime(2026, 12, 1, tzinfo=UTC), score=1.0, method="exact", events=(),
)  # fmt: skip


def test_a_new_store_and_the_folders_made_for_it_are_synced(tmp_path, synced_folders):
    path = tmp_path / "state" / "service" / "delivered.sqlite"
    DeliveryStore(path).close()
    assert tmp_path in synced_folders  # the entry of state/
    assert tmp_path / "state" in synced_folders  # the entry of service/
    assert synced_folders[-1] == path.parent  # the store renamed into place, last


@pytest.mark.parametrize("kind", ["jsonl", "dead-letters"])
def test_a_new_line_file_is_synced_into_its_folder(tmp_path, synced_folders, kind):
    path = tmp_path / "out" / "file.jsonl"
    if kind == "jsonl":
        sink = JsonLinesSink(path)
        assert path.parent in synced_folders and tmp_path in synced_folders
        synced_folders.clear()
        path.unlink()  # an operator "clears" it; the next line makes it again
        sink.deliver(NOTIFICATION)
        sink.close()
    else:
        letters = DeadLetterFile(path)
        assert path.parent in synced_folders and tmp_path in synced_folders
        synced_folders.clear()
        path.unlink()
        letters.write(DeadLetter(service="s", topic="t", partition=0, offset=1, reason="x"))
        letters.close()
    assert synced_folders == [path.parent]
