"""Making files and folders that a power cut cannot take back.

fsync on a file makes its bytes durable, not its name: the entry that points at
it lives in the folder, and until the folder is synced a power cut can lose a
file just made or renamed, fsynced contents and all. The delivered-id store,
the JSON Lines output and the dead-letter file all promise more than that (a
line written is a line handed over), so every file and folder the subscriber
makes goes through here.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_folder", "make_folders"]


def fsync_folder(folder: Path) -> None:
    """Make the entries of ``folder`` (files made, renamed or removed in it) durable.

    Raises:
        OSError: the folder cannot be opened or synced.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_folders(folder: Path, *, mode: int = 0o777) -> None:
    """``mkdir -p folder``, syncing the parent of each folder made, so that a file made
    in a new folder is not lost with the folder's own entry.

    Args:
        folder: the folder to make, with any missing parents.
        mode: permissions of the folders made, before the umask (default 0o777).

    Raises:
        OSError: a folder cannot be made or synced.
    """
    missing: list[Path] = []
    level = folder
    while not level.is_dir():
        missing.append(level)
        if level.parent == level:
            break
        level = level.parent
    for made in reversed(missing):
        try:
            made.mkdir(mode=mode)
        except FileExistsError:
            if not made.is_dir():
                raise
            # another process made it meanwhile: synced below all the same
        fsync_folder(made.parent)
