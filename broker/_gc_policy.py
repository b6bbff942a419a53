"""Full garbage collections that scan only what is new since the last one.

A worker holds a large, long-lived heap: the decoded token states and
sightings of ``StateCache``, Faust's tables and producer buffer, the loaded
directory. CPython's cyclic collector scans every tracked object at each full
(generation 2) collection, and runs one whenever a quarter as many objects
again have survived to the old generation. The caches churn all the time, so
full collections come every few seconds and each costs in proportion to the
whole heap. Measured on the 60,000-event backfill (``bench/RESULTS.md``): 18%
of the worker's time went to collections, single pauses reached 1.3 s and
grew with the data, and such a pause holds the GIL that the consumer thread
needs to answer Kafka's heartbeats.

The cure CPython offers is ``gc.freeze``: objects that have survived a full
collection move to a permanent generation that later collections skip. What
is frozen is still freed by reference counting as usual (a cache evicting an
entry frees it at once); only a reference cycle that becomes garbage while
frozen waits. So once the frozen set has grown ``growth`` times since the last
collection that scanned everything, it is unfrozen and the next full
collection scans (and reclaims) all of it: rare, and never unbounded.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["FrozenHeap", "GcStep", "after_full_collection"]

#: Collect everything again once the frozen set has doubled since the last full scan.
DEFAULT_GROWTH = 2.0
#: Seconds between counts of the frozen set: ``gc.get_freeze_count`` walks it
#: (75 ms for the 750,000 objects of a loaded worker, the memory scattered), and
#: full collections, cheap once most is frozen, come several times a second.
COUNT_EVERY_S = 30.0
_OLDEST = 2


class GcStep(Enum):
    """What to do once a full collection has finished."""

    FREEZE = "freeze"  # its survivors are skipped from now on
    RESCAN = "rescan"  # unfreeze: the next full collection scans every object


def after_full_collection(frozen: int, at_last_scan: int, growth: float) -> GcStep:
    """Rescan once the frozen objects have grown ``growth`` times since the last full scan.

    ``frozen`` counts the objects frozen once this collection's survivors join
    them; ``at_last_scan`` is that count after the last collection that
    scanned everything (0: none yet, so freeze).
    """
    if at_last_scan and frozen > growth * at_last_scan:
        return GcStep.RESCAN
    return GcStep.FREEZE


@dataclass
class FrozenHeap:
    """Installs itself as a ``gc`` callback: freezes after each full collection.

    ``observe`` receives each collection's generation and duration (the
    worker's metrics); ``frozen`` is the size of the frozen set, for a gauge.
    """

    observe: Callable[[int, float], None] = lambda generation, seconds: None
    growth: float = DEFAULT_GROWTH
    count_every_s: float = COUNT_EVERY_S
    _counted_at: float = 0.0
    _at_last_scan: int = 0
    _frozen_count: int = 0
    _rescanning: bool = False
    _started: float = 0.0
    _installed: bool = False

    def install(self) -> None:
        """Collect once and freeze what survives (the process's machinery), then follow."""
        if self._installed:
            return
        gc.collect()
        gc.freeze()
        self._at_last_scan = self._count()
        self._installed = True
        gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        """Stop, and unfreeze everything (the next full collection scans it all)."""
        if self._installed:
            gc.callbacks.remove(self._on_gc)  # bound methods of one object compare equal
            self._installed = False
        gc.unfreeze()

    def frozen(self) -> int:
        """The frozen set's size when last counted (for a gauge; see ``COUNT_EVERY_S``)."""
        return self._frozen_count

    def _count(self) -> int:
        self._counted_at = time.monotonic()
        self._frozen_count = gc.get_freeze_count()
        return self._frozen_count

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = int(info["generation"])
        self.observe(generation, time.perf_counter() - self._started)
        if generation != _OLDEST:
            return
        gc.freeze()  # the collection is over: freezing now only moves lists
        if self._rescanning:  # this collection scanned everything
            self._rescanning = False
            self._at_last_scan = self._count()
            return
        if time.monotonic() - self._counted_at < self.count_every_s:
            return
        frozen = self._count()
        if after_full_collection(frozen, self._at_last_scan, self.growth) is GcStep.RESCAN:
            gc.unfreeze()
            self._rescanning = True
