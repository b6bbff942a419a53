"""Handling the items of one routed batch, each on its own, keeping only what succeeded.

A routed message holds many records; one that fails must neither stop the
others nor leave half of its work behind. Each item's handler writes its token
states into a staging dict and its effects into its own ``Outbox``; both are
merged into the batch only once the handler returned. The handler runs inside
the caller's ``guard`` (``broker._poison.guarded``: retried, then quarantined),
so a refused or quarantined item contributes nothing but its rejection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from broker._routed import ItemKind, RoutedItem
from broker._sightings import TokenState
from broker._state_cache import StateBatch
from consent import AuditChain, ChainHead
from schemas import AuditRecord

__all__ = ["YIELD_EVERY", "Outbox", "Read", "run_items"]

#: Items handled between yields to the event loop: a batch is CPU work with no
#: I/O, and Faust's commit, livelock and heartbeat tasks share the loop.
YIELD_EVERY = 64

Read = Callable[[str], TokenState | None]
Handler = Callable[[RoutedItem, dict[str, TokenState], Read, "Outbox"], None]
Guard = Callable[[str, str, Callable[[], Awaitable[None]], str | None], Awaitable[None]]


@dataclass
class Outbox:
    """What a batch asks to publish, in order: sent only after its states are written."""

    sends: list[tuple[Any, bytes, bytes]] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    cascade: list[RoutedItem] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # reasons, counted once sent

    def clear(self) -> None:
        self.rejected.clear()
        self.sends.clear()
        self.audit.clear()
        self.cascade.clear()
        self.scores.clear()

    def merge(self, other: Outbox) -> None:
        self.rejected.extend(other.rejected)
        self.sends.extend(other.sends)
        self.audit.extend(other.audit)
        self.cascade.extend(other.cascade)
        self.scores.extend(other.scores)


async def run_items(
    items: Sequence[RoutedItem],
    base: str,
    batch: StateBatch,
    *,
    handle: Handler,
    tick: Callable[[], AuditRecord | None],
    guard: Guard,
    chain: AuditChain | None = None,
) -> tuple[Outbox, int]:
    """Handle ``items`` in order; returns what to publish and how many items succeeded.

    ``base`` is the routed message's ``topic/partition/offset``; item ``i`` is
    guarded as ``base#i`` and refused under its own origin (the source message).
    ``chain`` is the audit chain the handler appends to: each attempt starts
    from where the chain stood before the item, and a refused or quarantined
    item leaves no link on it, as it leaves no state or effect.
    """
    out = Outbox()
    succeeded = 0
    for index, item in enumerate(items):
        if item.kind is ItemKind.TICK:
            checkpoint = tick()
            if checkpoint is not None:
                out.audit.append(checkpoint)
            continue
        staged: dict[str, TokenState] = {}
        mine = Outbox()
        done: list[bool] = []
        mark = chain.mark() if chain is not None else None

        async def work(item: RoutedItem = item, staged: dict[str, TokenState] = staged,
                       mine: Outbox = mine, done: list[bool] = done,
                       mark: ChainHead | None = mark) -> None:  # fmt: skip
            staged.clear()
            mine.clear()
            if chain is not None and mark is not None:
                chain.rollback(mark)  # a retry links afresh from where the item began
            handle(item, staged, batch.get, mine)
            done.append(True)

        event_id = item.sighting.event_id if item.sighting is not None else None
        await guard(f"{base}#{index}", item.origin or base, work, event_id)
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)  # let Faust's commit and heartbeat tasks run
        if not done:  # refused or quarantined: nothing of its attempts is kept
            if chain is not None and mark is not None:
                chain.rollback(mark)
            continue
        for token, state in staged.items():
            batch.set(token, state)
        out.merge(mine)
        succeeded += 1
    return out, succeeded
