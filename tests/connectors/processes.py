"""Watching the connector's build workers from a test: who is alive, and waiting for an end.

A process's end is awaited on a pidfd (readable once it has exited, zombie or
not), so no test sleeps while it waits.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["alive", "children", "until", "wait_dead"]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended; only its parent has not reaped it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int | None = None) -> set[int]:
    """Live children of ``pid``'s main thread (default: this process)."""
    pid = os.getpid() if pid is None else pid
    listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in listed if alive(int(c))}


def wait_dead(pids: Iterable[int], seconds: float) -> bool:
    """Whether every one of ``pids`` has ended within ``seconds``."""
    deadline = time.monotonic() + seconds
    for pid in pids:
        try:
            handle = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # gone already
        try:
            ready, _, _ = select.select([handle], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(handle)
        if not ready:
            return False
    return True


def until(condition: Callable[[], object], what: str, seconds: float = 30.0) -> None:
    """Poll ``condition`` (state no event announces) until true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)  # polling interval, not a wait for something to happen
