"""The audit trail: every decision, allowed or denied, as a link in a SHA-256 hash chain.

One chain per ``fed.audit`` partition (the broker worker that owns the partition
owns the chain), so appending never needs coordination. Each ``AuditRecord``
carries the previous record's hash and its own hash over its canonical bytes; a
changed, removed or reordered record breaks the chain. A bare chain cannot show
that its tail was cut, so the broker also signs a *checkpoint* of the head
(count and hash) every ``checkpoint_every`` records, every ``checkpoint_interval``
and on shutdown, in the spirit of X-Road's time-stamped message-log batches. A
checkpoint is itself a link: its ``seq`` is the number of records before it and
its ``prev_hash`` the head it vouches for (DESIGN sections 6 and 7). Every other
link is signed too (``audit_record_signed``), so that a restarted worker
continues only from records it wrote (``broker._chain_recovery``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from consent._audit_records import audit_record_to_dict
from consent._decisions import Decision
from consent._envelope import sign_detached, verify_detached
from consent._errors import AuditInvalid, SignatureInvalid
from schemas import AuditKind, AuditRecord, Outcome, SignatureDomain

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "GENESIS_HASH",
    "AuditChain",
    "ChainHead",
    "audit_bytes",
    "audit_record_hash",
    "audit_record_signed",
]

GENESIS_HASH = b"\x00" * 32
"""The ``prev_hash`` of a chain's first record."""

_log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT_EVERY = 1000
DEFAULT_CHECKPOINT_INTERVAL = timedelta(minutes=1)


def audit_bytes(record: AuditRecord) -> bytes:
    """The bytes that are hashed and signed: every field but ``record_hash`` and ``signature``.

    Sorted-key JSON under a version tag, deliberately not ``schemas.canonical_bytes``:
    that follows the latest Avro schema, and an audit chain must verify for as long
    as it is kept, whatever versions the schemas reach meanwhile.
    """
    fields = audit_record_to_dict(record)
    del fields["record_hash"], fields["signature"]
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return b"fedbroker/audit/v1\x00" + body.encode("ascii")


def audit_record_hash(record: AuditRecord) -> bytes:
    """SHA-256 over ``audit_bytes``: what ``record_hash`` must equal."""
    return hashlib.sha256(audit_bytes(record)).digest()


def audit_record_signed(record: AuditRecord, key: Ed25519PublicKey) -> bool:
    """Whether ``record``'s hash holds and the broker's ``key`` signed it.

    The broker signs every link (``AuditChain``); a checkpoint's signature is
    what vouches for the records before it.
    """
    if record.record_hash != audit_record_hash(record):
        return False
    try:
        verify_detached(key, SignatureDomain.CHECKPOINT, audit_bytes(record), record.signature)
    except SignatureInvalid:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a chain stands: records so far, the last hash, the last checkpoint.

    Small and serialisable so the broker can keep it in a changelogged table and
    resume the chain after a restart without rereading the topic.
    """

    chain: str
    count: int = 0
    head_hash: bytes = GENESIS_HASH
    last_checkpoint_count: int = 0
    last_checkpoint_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "count": self.count,
            "head_hash": self.head_hash.hex(),
            "last_checkpoint_count": self.last_checkpoint_count,
            "last_checkpoint_at": (
                self.last_checkpoint_at.isoformat() if self.last_checkpoint_at else None
            ),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChainHead:
        try:
            at = data.get("last_checkpoint_at")
            return cls(
                chain=str(data["chain"]),
                count=int(data["count"]),
                head_hash=bytes.fromhex(data["head_hash"]),
                last_checkpoint_count=int(data["last_checkpoint_count"]),
                last_checkpoint_at=datetime.fromisoformat(at) if at else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditInvalid("malformed chain head") from exc

    @classmethod
    def after(cls, record: AuditRecord) -> ChainHead:
        """The head once ``record`` (the last one read back from the topic) is appended."""
        checkpoint = record.kind is AuditKind.CHECKPOINT
        return cls(
            chain=record.chain,
            count=record.seq + 1,
            head_hash=record.record_hash,
            last_checkpoint_count=record.seq + 1 if checkpoint else 0,
            last_checkpoint_at=record.decided_at if checkpoint else None,
        )


class AuditChain:
    """Appends decisions to one chain and signs its checkpoints with the broker's key.

    Args:
        head: where the chain stands (a fresh chain: ``ChainHead(chain_id)``).
        signing_key: the broker's Ed25519 key.
        checkpoint_every: records between checkpoints (default 1000).
        checkpoint_interval: time between checkpoints (default one minute),
            measured on the decisions' ``decided_at``.
    """

    def __init__(
        self,
        head: ChainHead,
        signing_key: Ed25519PrivateKey,
        *,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        checkpoint_interval: timedelta = DEFAULT_CHECKPOINT_INTERVAL,
    ) -> None:
        if checkpoint_every < 1:
            raise AuditInvalid("checkpoint_every must be at least 1")
        self._head = head
        self._key = signing_key
        self._every = checkpoint_every
        self._interval = checkpoint_interval

    @property
    def head(self) -> ChainHead:
        return self._head

    def mark(self) -> ChainHead:
        """Where the chain stands now, to ``rollback`` to if what follows is not published."""
        return self._head

    def rollback(self, mark: ChainHead) -> None:
        """Forget the links made since ``mark``: their records were never published.

        Else the next record would link to one absent from the topic, and the
        chain would fail verification from there on.
        """
        self._head = mark

    def recorded_outcome(self, decision_id: str) -> Outcome | None:
        """The outcome this chain already holds for ``decision_id``, if it remembers one.

        A plain chain remembers none; one that records each decision once
        (``broker._chain_recovery.OnceChain``) answers for its recent ones, so a
        decision taken again is not acted on differently from how it was recorded.
        """
        return None

    def _link(self, record: AuditRecord) -> AuditRecord:
        record = replace(
            record,
            chain=self._head.chain,
            seq=self._head.count,
            prev_hash=self._head.head_hash,
            record_hash=b"",
            signature=b"",
        )
        linked = replace(record, record_hash=audit_record_hash(record))
        # Every link is signed, not only checkpoints: a worker rebuilding its head
        # from the topic must tell its own records from a forger's, or its next
        # checkpoint would vouch for whatever was appended while it was down.
        linked = replace(
            linked,
            signature=sign_detached(self._key, SignatureDomain.CHECKPOINT, audit_bytes(linked)),
        )
        self._head = replace(self._head, count=linked.seq + 1, head_hash=linked.record_hash)
        return linked

    def append(
        self, decision: Decision, *, notification_id: str | None = None
    ) -> list[AuditRecord]:
        """Link a decision; returns it, followed by a checkpoint if one is due."""
        record = self._link(
            AuditRecord(
                decision_id=decision.decision_id,
                chain=self._head.chain,
                seq=0,
                kind=AuditKind.DECISION,
                decided_at=decision.decided_at,
                agreement_id=decision.agreement_id,
                outcome=decision.outcome,
                reasons=tuple(r.value for r in decision.reasons),
                subject_tokens=decision.subject_tokens,
                event_ids=decision.event_ids,
                recipients=(decision.recipient,),
                notification_id=notification_id,
                prev_hash=b"",
            )
        )
        if self.checkpoint_due(decision.decided_at):
            return [record, self.checkpoint(decision.decided_at)]
        return [record]

    def append_erasure(
        self, erasure_id: str, subject_tokens: tuple[str, ...], at: datetime
    ) -> AuditRecord:
        """Record that a subject's state was erased (tokens only, no personal data)."""
        return self._link(
            AuditRecord(
                erasure_id,
                self._head.chain,
                0,
                AuditKind.ERASURE,
                at,
                "",
                None,
                ("erasure-requested",),
                tuple(sorted(subject_tokens)),
                (),
                (),
                None,
                b"",
            )
        )

    def checkpoint_due(self, now: datetime) -> bool:
        """Whether enough records or time have passed since the last checkpoint."""
        pending = self._head.count - self._head.last_checkpoint_count
        if pending <= 0:
            return False
        last = self._head.last_checkpoint_at
        return pending >= self._every or (last is not None and now - last >= self._interval)

    def checkpoint(self, now: datetime, *, reason: str = "interval") -> AuditRecord:
        """Sign the current head: ``seq`` = records before it, ``prev_hash`` = head hash.

        Call with ``reason="shutdown"`` when the worker stops.
        """
        record = self._link(
            AuditRecord(
                f"chk-{self._head.chain}-{self._head.count}",
                self._head.chain,
                0,
                AuditKind.CHECKPOINT,
                now,
                "",
                None,
                (reason,),
                (),
                (),
                (),
                None,
                b"",
            )
        )
        _log.info("audit chain %s checkpoint at %d records (%s)", record.chain, record.seq, reason)
        self._head = replace(
            self._head, last_checkpoint_count=self._head.count, last_checkpoint_at=now
        )
        return record

    def start(self, now: datetime) -> None:
        """Start the interval clock (a fresh chain has no checkpoint to measure from)."""
        if self._head.last_checkpoint_at is None:
            self._head = replace(self._head, last_checkpoint_at=now)
