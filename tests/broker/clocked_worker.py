"""``fedbroker broker run`` on a clock a test moves: ``python -m tests.broker.clocked_worker
<clock-file> broker run ...``.

The worker is the real command, flags and all; only its clock differs, injected
through ``build_app``'s ``clock`` argument, the one every part of a worker reads
time from. The file holds how many seconds ahead of the wall clock the worker
runs (absent or empty: none), read at every reading of the clock, so a test
moves a running worker's time forward by writing a number.
"""

from __future__ import annotations

import functools
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fedbroker.cli._broker as command
from broker._timers import Clock
from broker.app import build_app
from fedbroker.cli import main


def _ahead(path: Path) -> datetime:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    return datetime.now(UTC) + timedelta(seconds=float(text or 0))


if __name__ == "__main__":
    clock_file = Path(sys.argv.pop(1))
    clock = Clock(wall=functools.partial(_ahead, clock_file))
    command.build_app = functools.partial(build_app, clock=clock)
    main()
