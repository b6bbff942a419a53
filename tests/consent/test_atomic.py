"""State files and key files survive a power cut: the folders they are made in are synced.

fsync on a file makes its bytes durable, not its name. A power cut cannot be
pulled in a test, so these watch ``os.fsync`` for folders: every folder made
for a file, and the folder a file is renamed into, must be synced.
"""

from __future__ import annotations

import pytest

from consent import SerialStore, write_atomically, write_secret_file
from tests.consent.conftest import T0


def test_a_state_file_in_new_folders_syncs_each_folder_made(tmp_path, synced_folders):
    path = tmp_path / "state" / "group" / "anchors.json"
    write_atomically(path, b"{}")
    assert synced_folders == [tmp_path, tmp_path / "state", tmp_path / "state" / "group"]


def test_a_serial_store_made_first_leaves_no_folder_unsynced(tmp_path, synced_folders, federation):
    """The subscriber command records the directory's serial before its store exists:
    the state folder is made here, so its entry is synced here."""
    SerialStore(tmp_path / "subscriber" / "group" / "serials.json").accept(federation.load(T0))
    assert {tmp_path, tmp_path / "subscriber"} <= set(synced_folders)
    assert synced_folders[-1] == tmp_path / "subscriber" / "group"  # the rename, last


def test_a_secret_file_is_synced_into_its_folder(tmp_path, synced_folders):
    path = tmp_path / "keys" / "gmca.signing.key"
    write_secret_file(path, b"secret")
    assert synced_folders == [tmp_path, tmp_path / "keys"]


def test_a_file_where_a_folder_should_be_is_an_error_not_a_folder(tmp_path):
    (tmp_path / "state").write_text("a careless clerk's file")
    with pytest.raises(OSError):
        write_atomically(tmp_path / "state" / "group" / "anchors.json", b"{}")
