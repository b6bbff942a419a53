"""The demo's child processes: started, watched, and always stopped.

The demo keeps every
``Popen`` and, however it ends (normally, Ctrl-C, SIGTERM, a child's death),
sends SIGTERM to each, waits, and kills what does not leave in time, so that
nothing but Kafka outlives it.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_STOP_TIMEOUT_S", "Children"]

logger = logging.getLogger(__name__)

#: Seconds a child gets to leave after SIGTERM before it is killed.
DEFAULT_STOP_TIMEOUT_S = 30.0


@dataclass(slots=True)
class Children:
    """Named child processes, each logging to its own file."""

    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def start(
        self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            # A session of its own: Ctrl-C on the terminal reaches the demo only,
            # which then stops each child in order instead of all dying at once.
            process = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=None if env is None else dict(env),
            )  # fmt: skip
        self.processes[name] = process
        self.logs[name] = log
        return process

    def dead(self) -> list[tuple[str, int]]:
        """Children that have exited, with their exit codes (any exit is a death here)."""
        return [(n, rc) for n, p in self.processes.items() if (rc := p.poll()) is not None]

    def pids(self) -> dict[str, int]:
        return {n: p.pid for n, p in self.processes.items()}

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> list[str]:
        """SIGTERM every child, then kill the ones still there; returns those killed."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        killed = []
        for name, process in self.processes.items():
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                killed.append(name)
        return killed

    def running(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.poll() is None]
