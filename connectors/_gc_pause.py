"""Pausing Python's cyclic garbage collector while a batch of rows is built.

Building a row allocates a few hundred small objects (tokens, payloads,
records), so the collector's youngest generation fills every few rows, and
now and then a full collection walks every live object of the process: about
5% of the connector's CPU per row (issue 12), to find next to nothing, since
records hold no reference cycles. Reference counting still frees everything
as usual; only cycles (a caught exception and its traceback) wait for the end
of the batch, whose rows are in memory anyway.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic collector off for the block, and back as it was after (nesting is safe)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
