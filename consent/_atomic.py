"""Replace a small state file atomically: a reader sees the old bytes or the new, never half.

The anchors of ``audit verify`` and the highest accepted directory serial are
promises kept across restarts; a crash in the middle of a write must not leave
a truncated file that reads as "nothing accepted yet" (which would re-open
exactly the rollback those files exist to stop).

fsync on a file makes its bytes durable, not its name: the entry that points at
it lives in its folder, and until the folder is synced a power cut can take
back a file just made or renamed, fsynced contents and all. ``make_folders``
and ``fsync_folder`` are the one way fedbroker makes folders for such files and
syncs their entries (here, key files, and the subscriber's store, output and
dead letters).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["fsync_folder", "make_folders", "write_atomically"]


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
        OSError: a folder cannot be made or synced (``FileExistsError``: a file
            stands where a folder should).
    """
    missing: list[Path] = []
    level = folder
    while not level.is_dir():  # ends: the root (or ``.``) is a folder
        missing.append(level)
        level = level.parent
    for made in reversed(missing):
        made.mkdir(mode=mode, exist_ok=True)  # made meanwhile by another: synced all the same
        fsync_folder(made.parent)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename over ``path``.

    Args:
        path: the file to replace; its parent folders are made if missing (synced).
        data: the whole new content.
        mode: permissions of the new file (default 0o644).
    """
    make_folders(path.parent)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # the rename itself must survive a power cut: sync the folder's entry too
    fsync_folder(path.parent)
