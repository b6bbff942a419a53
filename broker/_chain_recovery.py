"""An audit chain that records each decision once, and its head recovered from the topic.

A worker killed after appending a decision to ``fed.audit`` and before
committing its input decides the re-delivered input again, under the same
deterministic decision id. ``OnceChain`` remembers the ids it has appended for
the freshness window (the span the broker keeps seen event ids for, so any
re-delivery arrives inside it) and appends nothing for a known one.

What survives a crash is the topic, not the ``audit-heads`` table: the table is
written before the records are sent and either may be lost. So, when a chain is
first used in a process, ``recover_chain`` rebuilds its head and its recent
decision ids from the records read back from the topic (``broker._audit_tail``),
and trusts the table only when the topic holds nothing of the chain. Pure: the
reading is done at the edge.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent import AuditChain, ChainHead, Decision
from schemas import AuditKind, AuditRecord

__all__ = ["OnceChain", "RecoveredChain", "recover_chain"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecoveredChain:
    """Where a chain stands according to its own records, and what it decided lately."""

    head: ChainHead
    recent: dict[str, datetime] = field(default_factory=dict)


def recover_chain(
    chain_id: str,
    stored: ChainHead | None,
    tail: Iterable[AuditRecord],
    *,
    now: datetime,
    window: timedelta,
) -> RecoveredChain:
    """The chain's head and recent decision ids from ``tail``, its records in topic order.

    The last record of the chain read back is the true head, whatever the table
    says (the table can lag the topic, or lead it when a send was lost). Records
    of other chains sharing the partition are ignored. Decision and erasure ids
    decided within ``window`` of ``now`` are remembered until ``decided_at +
    window``. With nothing of the chain in ``tail``, the stored head (or a fresh
    one) stands.
    """
    last: AuditRecord | None = None
    checkpoint: AuditRecord | None = None
    recent: dict[str, datetime] = {}
    for record in tail:
        if record.chain != chain_id:
            continue
        last = record
        if record.kind is AuditKind.CHECKPOINT:
            checkpoint = record
        elif record.decided_at + window > now:
            recent[record.decision_id] = record.decided_at + window
    if last is None:
        return RecoveredChain(stored if stored is not None else ChainHead(chain_id), recent)
    head = ChainHead.after(last)
    if checkpoint is not None:
        head = replace(
            head,
            last_checkpoint_count=checkpoint.seq + 1,
            last_checkpoint_at=checkpoint.decided_at,
        )
    elif stored is not None and stored.last_checkpoint_count <= head.count:
        head = replace(
            head,
            last_checkpoint_count=stored.last_checkpoint_count,
            last_checkpoint_at=stored.last_checkpoint_at,
        )
    return RecoveredChain(head, recent)


class OnceChain(AuditChain):
    """An ``AuditChain`` that appends a decision (or erasure) id at most once per window.

    Args:
        recovered: the head and recent ids ``recover_chain`` found.
        signing_key: the broker's Ed25519 key.
        window: how long an appended id is remembered after its ``decided_at``.
        checkpoint_interval: as for ``AuditChain``.
    """

    def __init__(
        self,
        recovered: RecoveredChain,
        signing_key: Ed25519PrivateKey,
        *,
        window: timedelta,
        checkpoint_interval: timedelta,
    ) -> None:
        super().__init__(recovered.head, signing_key, checkpoint_interval=checkpoint_interval)
        self._window = window
        self._recent = dict(recovered.recent)
        self.replayed = 0
        """Decisions recognised as already on the chain and not appended again."""

    def _known(self, decision_id: str, at: datetime) -> bool:
        """Whether ``decision_id`` is on the chain; forgets ids whose window has passed.

        Amortised constant time: a clock that steps back keeps a few ids a little
        longer, never forgets one early.
        """
        # Ids arrive in decision order, so the oldest expire first: drop from the front.
        while self._recent:
            oldest = next(iter(self._recent))
            if self._recent[oldest] > at:
                break
            del self._recent[oldest]
        if decision_id in self._recent:
            self.replayed += 1
            logger.warning(
                "audit chain %s: a replayed decision is already recorded", self.head.chain
            )
            return True
        self._recent[decision_id] = at + self._window
        return False

    def recent(self) -> frozenset[str]:
        """The decision and erasure ids this chain still remembers."""
        return frozenset(self._recent)

    def append(
        self, decision: Decision, *, notification_id: str | None = None
    ) -> list[AuditRecord]:
        """Link a decision unless it is already on the chain (then nothing)."""
        if self._known(decision.decision_id, decision.decided_at):
            return []
        return super().append(decision, notification_id=notification_id)

    def append_erasure(
        self, erasure_id: str, subject_tokens: tuple[str, ...], at: datetime
    ) -> AuditRecord:
        """Record an erasure; a repeated one is linked only the first time.

        The core publishes what this returns, so a repeat returns the record
        unlinked, with an empty ``record_hash``, and ``PartitionCore`` drops it.
        """
        if self._known(erasure_id, at):
            return AuditRecord(
                erasure_id, self.head.chain, self.head.count, AuditKind.ERASURE, at, "", None,
                ("erasure-requested",), tuple(sorted(subject_tokens)), (), (), None, b"",
            )  # fmt: skip
        return super().append_erasure(erasure_id, subject_tokens, at)
