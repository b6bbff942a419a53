"""The demo's plan: everything random comes from one seed, and rows arrive in timed slices.

A council's system does not hand over its year in one file; it drops extracts
as work is done. The demo replays the synthetic rows in date order, cut into
slices that land in each connector's watched folder over ``--duration``, each
written under a hidden name and renamed into place so that a connector never
reads half a file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from connectors import LinkageKey

__all__ = ["DEFAULT_SLICE_S", "CouncilFeed", "seeded_linkage_key", "slice_count"]

#: Seconds between two slices of one council: often enough to look live.
DEFAULT_SLICE_S = 4.0


def seeded_linkage_key(seed: int) -> LinkageKey:
    """The linkage key the seed implies, so tokens and matches repeat run after run."""
    return LinkageKey(1, hashlib.sha256(f"fedbroker-demo-linkage/{seed}".encode()).digest())


def slice_count(duration_s: float, slice_s: float = DEFAULT_SLICE_S) -> int:
    """How many slices fit into the feeding time (at least one)."""
    return max(1, int(duration_s // slice_s))


@dataclass(frozen=True, slots=True)
class CouncilFeed:
    """One council's rows, in event-date order, cut into ``slices`` nearly equal files."""

    council: str
    header: tuple[str, ...]
    chunks: tuple[tuple[tuple[str, ...], ...], ...]

    @classmethod
    def from_csv(cls, council: str, path: Path, slices: int) -> CouncilFeed:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = tuple(next(reader))
            rows = [tuple(r) for r in reader]
        when, ref = header.index("event_date"), header.index("ref")
        rows.sort(key=lambda r: (r[when], r[ref]))
        size, extra = divmod(len(rows), slices)
        chunks, start = [], 0
        for i in range(slices):
            end = start + size + (1 if i < extra else 0)
            chunks.append(tuple(rows[start:end]))
            start = end
        return cls(council, header, tuple(chunks))

    def drop(self, index: int, inbox: Path) -> int:
        """Write slice ``index`` into ``inbox`` atomically; returns its row count."""
        rows = self.chunks[index]
        if not rows:
            return 0
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.header)
        writer.writerows(rows)
        name = f"slice-{index:04d}.csv"
        hidden = inbox / f".{name}.tmp"
        hidden.write_text(buffer.getvalue(), encoding="utf-8")
        os.replace(hidden, inbox / name)
        return len(rows)
