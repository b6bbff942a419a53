"""The dead-letter file as a full disk and a crash leave it: every letter whole and readable."""

from __future__ import annotations

import pytest

from subscriber import DeadLetter, DeadLetterFile, DeliveryStoreError
from tests.subscriber.conftest import disk_full_after


def _letter(offset: int) -> DeadLetter:
    return DeadLetter(service="s", topic="fed.notify.s", partition=0, offset=offset,
                      reason="signature-invalid")  # fmt: skip


def test_a_letter_cut_short_by_a_full_disk_leaves_the_file_readable_after_a_restart(tmp_path):
    """Attack round 5: the fragment a full disk let through stayed in the file, the next
    process appended after it, and ``read`` (the operators' tool) failed on the merged line."""
    path = tmp_path / "dead.jsonl"
    letters = DeadLetterFile(path)
    letters.write(_letter(1))
    with disk_full_after(50, path), pytest.raises(DeliveryStoreError):
        letters.write(_letter(2))  # the subscriber stops here ...
    letters.close()
    restarted = DeadLetterFile(path)  # ... and is started again once there is space
    restarted.write(_letter(2))
    assert [letter.offset for letter in restarted.read()] == [1, 2]
    restarted.close()


def test_a_letter_torn_by_a_crash_is_cut_off_when_the_file_is_opened(tmp_path):
    path = tmp_path / "dead.jsonl"
    letters = DeadLetterFile(path)
    letters.write(_letter(1))
    letters.close()
    with path.open("a") as handle:
        handle.write('{"offset": 2, "partition": 0, "rea')  # kill -9 within a write
    restarted = DeadLetterFile(path)
    restarted.write(_letter(2))
    assert [letter.offset for letter in restarted.read()] == [1, 2]
    restarted.close()


def test_a_dead_letter_file_deleted_while_in_use_is_made_again(tmp_path):
    path = tmp_path / "dead.jsonl"
    letters = DeadLetterFile(path)
    letters.write(_letter(1))
    path.unlink()  # "clearing" the dead letters while the subscriber runs
    letters.write(_letter(2))
    assert [letter.offset for letter in letters.read()] == [2]
    letters.close()


def test_a_letter_written_again_after_a_crash_before_the_stores_commit_is_kept_once(tmp_path):
    """Attack round 5: killed between writing a dead letter and moving the store past
    its message, the subscriber refused the same message again on restart and wrote a
    second letter for it: an operator counting or replaying letters saw it twice."""
    path = tmp_path / "dead.jsonl"
    letters = DeadLetterFile(path)
    letters.write(_letter(5))  # then kill -9, before the store's commit
    letters.close()
    restarted = DeadLetterFile(path)
    restarted.write(_letter(5))  # the same message, refused again
    restarted.write(_letter(6))
    assert [letter.offset for letter in restarted.read()] == [5, 6]
    restarted.close()
