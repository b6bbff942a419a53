"""Appending whole lines to a file that a crash or a full disk may cut short.

Both the JSON Lines sink and the dead-letter file are read line by line by
others (the service, an operator's tools), so neither may ever hold a part of
a line followed by the next one. Writes are unbuffered: a buffered writer that
fails keeps the unwritten rest and writes it before the next line.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from pathlib import Path

from consent import fsync_folder, make_folders

__all__ = ["append_line", "is_regular", "last_line", "open_for_lines", "reopened_if_moved"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


def open_for_lines(path: Path) -> io.FileIO:
    """Open ``path`` to append (created 0600, its folder synced), first cutting off a
    torn last line.

    Only the tail is read, back to its last newline, so a file of years of lines
    opens as fast as an empty one. A file object, not a bare descriptor: one
    closed by another thread then fails, where a descriptor number may already
    belong to another file.

    Raises:
        OSError: the file cannot be opened or cut.
    """
    make_folders(path.parent)
    # Write-only: a pipe (``/dev/stdout`` in a container) opened to read as well
    # would be read by us; it has no tail to cut, so it is appended to as it is.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    file = io.FileIO(fd, "w")  # closes fd from here on
    try:
        if not is_regular(file):
            return file
        # The file may have just been made: its lines are fsynced, its name too.
        fsync_folder(path.parent)
        end = os.fstat(fd).st_size
        keep = end
        while keep > 0:
            start = max(0, keep - _CHUNK)
            chunk = _read_at(path, start, keep - start)
            if keep == end and chunk.endswith(b"\n"):
                break  # whole: nothing to cut
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            keep = start
        if keep != end:
            file.truncate(keep)
    except BaseException:
        file.close()
        raise
    return file


def is_regular(file: io.FileIO) -> bool:
    """A regular file: one with a tail to read, cut and fsync (not a pipe or terminal)."""
    return stat.S_ISREG(os.fstat(file.fileno()).st_mode)


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size)


def last_line(path: Path) -> bytes:
    """The file's last whole line, without its newline (empty if none), however long:
    read back from the end a chunk at a time, not a fixed tail that a long line
    outgrows.

    Raises:
        OSError: the file cannot be read.
    """
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        if end:
            handle.seek(end - 1)
            if handle.read(1) == b"\n":
                end -= 1  # the last line's own newline
        start, tail = end, b""
        while start > 0:
            step = min(_CHUNK, start)
            start -= step
            handle.seek(start)
            tail = handle.read(step) + tail
            newline = tail.rfind(b"\n")  # only the chunk just read can hold one
            if newline >= 0:
                return tail[newline + 1 :]
        return tail


def reopened_if_moved(file: io.FileIO, path: Path) -> io.FileIO:
    """``file`` if it is still the one at ``path``, else ``path`` opened afresh.

    An operator who deletes the file "to clear it", or logrotate moving it aside,
    would otherwise leave every later line in a file nobody reads any more, each
    recorded as handed over.

    Raises:
        OSError: the file cannot be opened again.
    """
    if not is_regular(file):
        return file
    held = os.fstat(file.fileno())
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        on_disk = None
    if on_disk is not None and (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino):
        return file
    log.warning("%s was moved or deleted while open; writing to it afresh", path)
    fresh = open_for_lines(path)
    file.close()
    return fresh


def append_line(file: io.FileIO, line: bytes, *, path: Path) -> None:
    """Append one line (ending in a newline) and fsync; on failure nothing of it stays.

    Raises:
        OSError: it could not be written whole; what got through was cut off again
            (if even that fails, the next open cuts it).
    """
    regular = is_regular(file)
    start = os.fstat(file.fileno()).st_size
    data = memoryview(line)
    try:
        while data:
            data = data[file.write(data) or 0 :]
        if regular:  # fsync fails on a pipe, which holds nothing to keep
            os.fsync(file.fileno())
    except OSError:
        if not regular:
            raise
        try:
            file.truncate(start)
        except OSError:
            log.warning("cannot cut a partial line off %s", path)
        raise
