"""Replace a small state file atomically: a reader sees the old bytes or the new, never half.

The anchors of ``audit verify`` and the highest accepted directory serial are
promises kept across restarts; a crash in the middle of a write must not leave
a truncated file that reads as "nothing accepted yet" (which would re-open
exactly the rollback those files exist to stop).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename over ``path``.

    Args:
        path: the file to replace; its parent folder is created if missing.
        data: the whole new content.
        mode: permissions of the new file (default 0o644).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
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
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
