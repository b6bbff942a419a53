"""The live view: a ``rich`` table on a terminal, a plain line now and then otherwise.

A log file or a CI job has no cursor to redraw, so headless runs (not a TTY,
or ``--plain``) print one self-contained line per period instead.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from fedbroker._demo._observe import Snapshot

__all__ = ["DEFAULT_PLAIN_PERIOD_S", "LiveView", "plain_line"]

#: Seconds between two plain lines in a headless run.
DEFAULT_PLAIN_PERIOD_S = 10.0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def plain_line(s: Snapshot) -> str:
    notified = " ".join(f"{k}={v}" for k, v in s.notified.items()) or "none"
    denied = " ".join(f"{k}={v}" for k, v in s.denied.items()) or "none"
    return (
        f"[{s.elapsed_s:5.0f}s] rows dropped {s.dropped}, published {s.published}, "
        f"matched {s.matched}, notified {notified}, denied {denied}, rejected {s.rejected}, "
        f"delivered {s.delivered}, end-to-end p50 {_ms(s.p50_s)} p99 {_ms(s.p99_s)}"
    )


def _table(s: Snapshot, phase: str) -> Table:
    table = Table(title=f"fedbroker demo: {phase} ({s.elapsed_s:.0f}s)", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("rows dropped into watched folders", str(s.dropped))
    table.add_row("events published", str(s.published))
    table.add_row("candidate matches decided", str(s.matched))
    for agreement, count in s.notified.items():
        table.add_row(f"  notified: {agreement}", str(count))
    for reason, count in s.denied.items():
        table.add_row(f"  denied: {reason}", str(count))
    table.add_row("rejected messages", str(s.rejected))
    table.add_row("handed over to subscribers", str(s.delivered))
    table.add_row("end-to-end p50 / p99", f"{_ms(s.p50_s)} / {_ms(s.p99_s)}")
    return table


class LiveView:
    """``show`` each snapshot; a context manager so the terminal is restored on any exit."""

    def __init__(self, out: TextIO, *, plain: bool, period: float = DEFAULT_PLAIN_PERIOD_S):
        self._plain = plain or not out.isatty()
        self._out = out
        self._period = period
        self._last = 0.0
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if not self._plain:
            self._live = Live(console=Console(file=self._out), auto_refresh=False)
            self._live.__enter__()
        return self

    def show(self, snapshot: Snapshot, phase: str, *, force: bool = False) -> None:
        if self._live is not None:
            self._live.update(_table(snapshot, phase), refresh=True)
            return
        now = time.monotonic()
        if force or now - self._last >= self._period:
            self._last = now
            print(f"{phase}: {plain_line(snapshot)}", file=self._out, flush=True)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, value, traceback)
