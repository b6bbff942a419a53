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
reading is done at the edge. Only records this broker wrote count (each link is
signed, ``consent.audit_record_signed``): a record appended by anyone else who
can write the topic is never continued from, so no checkpoint vouches for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from consent import AuditChain, ChainHead, Decision, audit_record_hash, audit_record_signed
from schemas import AuditKind, AuditRecord, Outcome

__all__ = ["OnceChain", "RecoveredChain", "recover_chain"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecoveredChain:
    """Where a chain stands according to its own records, and what it decided lately.

    ``recent`` maps each recent decision or erasure id to when it is forgotten;
    ``outcomes`` each recent decision id to the outcome the chain holds for it.
    """

    head: ChainHead
    recent: dict[str, datetime] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)


def _vouched(records: list[AuditRecord], key: Ed25519PublicKey) -> tuple[int, list[AuditRecord]]:
    """The furthest checkpoint that verifies and the records its hashes reach back to.

    Furthest by sequence number, not by place read: a copy of one of the
    broker's own older checkpoints appended to the topic verifies too (a copy
    needs no key), and taken as the frontier it would move the head back and
    fork the chain. Of copies of one checkpoint the first read is the one its
    successors follow. Returns the index after the checkpoint (0 if none
    verifies) and those records in chain order, the checkpoint last. One
    signature check per checkpoint tried, not one a record.
    """
    candidates = sorted(
        (index for index, r in enumerate(records) if r.kind is AuditKind.CHECKPOINT),
        key=lambda index: (-records[index].seq, index),
    )
    for index in candidates:
        checkpoint = records[index]
        if audit_record_signed(checkpoint, key):
            by_hash = {r.record_hash: r for r in records[:index]}
            back, wanted = [checkpoint], checkpoint.prev_hash
            while (found := by_hash.pop(wanted, None)) is not None:
                if audit_record_hash(found) != wanted:
                    break
                back.append(found)
                wanted = found.prev_hash
            return index + 1, back[::-1]
    return 0, []


def recover_chain(
    chain_id: str,
    stored: ChainHead | None,
    tail: Iterable[AuditRecord],
    *,
    now: datetime,
    window: timedelta,
    key: Ed25519PublicKey,
) -> RecoveredChain:
    """The chain's head and recent decision ids from ``tail``, its records in topic order.

    The last record of the chain read back that this broker wrote is the true
    head, whatever the table says (the table can lag the topic, or lead it when
    a send was lost). Written by this broker means: vouched for by the furthest
    checkpoint (by ``seq``) that verifies under ``key`` (through the hashes), or after it,
    further along than the records before it and signed under ``key`` itself. Anything else
    (a forger's record, junk) is skipped: continued from, it would be vouched
    for by the next checkpoint, and its decision id would hide a genuine one.
    Records of other chains sharing the partition are ignored. Decision and
    erasure ids decided within ``window`` of ``now`` are remembered until
    ``decided_at + window``. With nothing of the chain in ``tail``, the stored
    head (or a fresh one) stands.
    """
    records = [r for r in tail if r.chain == chain_id]
    start, trusted = _vouched(records, key)
    last = trusted[-1] if trusted else None
    skipped = 0
    for record in records[start:]:
        # Only a record further along than the head so far can be the head: a copy
        # of an older one, signed as it is, read first would otherwise set the start
        # and every genuine record after it would look unlinked. One the broker
        # signed past a gap is still its own (the gap is for verification to show).
        if (last is None or record.seq > last.seq) and audit_record_signed(record, key):
            trusted.append(record)
            last = record
        else:
            skipped += 1
    if skipped:
        logger.warning(
            "audit chain %s: %d record(s) on the topic not written by this broker are not "
            "continued from",
            chain_id,
            skipped,
        )
    checkpoint: AuditRecord | None = None
    recent: dict[str, datetime] = {}
    outcomes: dict[str, Outcome] = {}
    for record in trusted:
        if record.kind is AuditKind.CHECKPOINT:
            checkpoint = record
        elif record.decided_at + window > now:
            recent[record.decision_id] = record.decided_at + window
            if record.outcome is not None:
                outcomes[record.decision_id] = record.outcome
    if last is None:
        head = stored if stored is not None else ChainHead(chain_id)
        return RecoveredChain(head, recent, outcomes)
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
    return RecoveredChain(head, recent, outcomes)


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
        self._outcomes = dict(recovered.outcomes)
        self._since_mark: list[str] = []  # ids remembered since the last ``mark``
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
            self._outcomes.pop(oldest, None)
        if decision_id in self._recent:
            self.replayed += 1
            logger.warning(
                "audit chain %s: a replayed decision is already recorded", self.head.chain
            )
            return True
        self._recent[decision_id] = at + self._window
        self._since_mark.append(decision_id)
        return False

    def mark(self) -> ChainHead:
        """As ``AuditChain.mark``; the ids remembered from here on are undone by ``rollback``."""
        self._since_mark.clear()
        return super().mark()

    def rollback(self, mark: ChainHead) -> None:
        """As ``AuditChain.rollback``, and forget the ids appended since ``mark``.

        Remembered, a retried item's decision would be taken for one already on
        the chain and never be audited.
        """
        for decision_id in self._since_mark:
            self._recent.pop(decision_id, None)
            self._outcomes.pop(decision_id, None)
        self._since_mark.clear()
        super().rollback(mark)

    def recorded_outcome(self, decision_id: str) -> Outcome | None:
        """The outcome this chain already holds for ``decision_id``, if it remembers one."""
        return self._outcomes.get(decision_id)

    def recent(self) -> frozenset[str]:
        """The decision and erasure ids this chain still remembers."""
        return frozenset(self._recent)

    def append(
        self, decision: Decision, *, notification_id: str | None = None
    ) -> list[AuditRecord]:
        """Link a decision unless it is already on the chain (then nothing)."""
        if self._known(decision.decision_id, decision.decided_at):
            return []
        self._outcomes[decision.decision_id] = decision.outcome
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
