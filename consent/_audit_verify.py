"""Verifying audit chains: the first broken link of each chain, and any cut tail.

``verify_audit`` takes records in the order they were read (several chains may
be interleaved, as when a topic's partitions are read together) and, for each
chain, reports the first record that was altered, is missing, is duplicated or is
out of order, or forked (two different records the broker signed at one
sequence number), and any checkpoint whose signature fails. A tail cut cannot be seen
in the chain alone; it shows against an *anchor*, a signed checkpoint kept from
an earlier verification (the auditor's witness copy): if the chain is now
shorter than an anchor says, or differs at the anchor's position, it was cut or
rewritten.

Records after the last signed checkpoint are *unvouched*: anyone who can write
the topic could have deleted them. They cannot have been rewritten or invented:
the broker signs every record, and each one after the last checkpoint must
verify (one that does not is ``altered``). Given ``now``, verification judges
whether they are overdue a checkpoint. The broker signs a checkpoint at least
every checkpoint interval while records are pending, so a tail is only
legitimately unvouched until the last checkpoint's own (signed) time plus the
interval and a margin; after that it is a problem (``unvouched``), before it
the tail is ``pending`` (a problem only under ``strict``). The deadline is
measured from the signed checkpoint, never from the tail's own
``decided_at``. A chain with records but no signed checkpoint at all vouches
for nothing and is a problem (``no-checkpoint``), whatever its times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent._audit import (
    DEFAULT_CHECKPOINT_INTERVAL,
    GENESIS_HASH,
    audit_bytes,
    audit_record_hash,
)
from consent._envelope import verify_detached
from consent._errors import SignatureInvalid
from schemas import AuditKind, AuditRecord, SignatureDomain

__all__ = [
    "DEFAULT_VOUCH_MARGIN",
    "AuditProblem",
    "AuditReport",
    "ChainSummary",
    "ProblemKind",
    "verify_audit",
]

DEFAULT_VOUCH_MARGIN = timedelta(minutes=2)
"""Slack past the checkpoint interval (the broker's idle timer, clock skew) before a tail fails."""


class ProblemKind(StrEnum):
    ALTERED = "altered"
    MISSING = "missing"
    DUPLICATED = "duplicated"
    REORDERED = "reordered"
    BAD_CHECKPOINT = "bad-checkpoint"
    TRUNCATED = "truncated"
    NO_CHECKPOINT = "no-checkpoint"
    UNVOUCHED = "unvouched"
    PENDING = "pending"
    REPEATED_DECISION = "repeated-decision"
    FORKED = "forked"


_FORGED = "not signed by the broker key: written by someone else"

_VOUCHING = frozenset({ProblemKind.NO_CHECKPOINT, ProblemKind.UNVOUCHED, ProblemKind.PENDING})


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One finding: which chain, which sequence number, at which input position, why."""

    kind: ProblemKind
    chain: str
    seq: int
    position: int
    detail: str

    def __str__(self) -> str:
        where = f"position {self.position}" if self.position >= 0 else "end of chain"
        return f"chain {self.chain}: {self.kind} at seq {self.seq} ({where}): {self.detail}"


@dataclass(frozen=True, slots=True)
class ChainSummary:
    """What verification established about one chain.

    ``unanchored`` counts the records after the last signed checkpoint;
    ``vouch_deadline`` is when they must be vouched for (None if none are pending).
    """

    chain: str
    records: int
    verified: int
    head_hash: bytes
    last_checkpoint: AuditRecord | None
    unanchored: int
    vouch_deadline: datetime | None = None
    key: Ed25519PublicKey | None = None
    """The broker key the chain was verified under (one of ``verify_audit``'s keys)."""


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The outcome: ``ok`` when no chain has a problem.

    Judged with ``now``, a chain with no checkpoint and an overdue unvouched tail
    are problems (a pending one only under ``strict``); without it, only links are.
    """

    problems: tuple[AuditProblem, ...]
    chains: Mapping[str, ChainSummary] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def ok(self) -> bool:
        return not self.problems

    def intact(self, chain: str) -> bool:
        """Whether ``chain``'s links, checkpoints and anchor all held (vouching aside)."""
        return not any(p.chain == chain and p.kind not in _VOUCHING for p in self.problems)


@dataclass(frozen=True, slots=True)
class _Vouching:
    now: datetime
    interval: timedelta
    margin: timedelta
    strict: bool

    def judge(
        self, chain: str, verified: int, last: AuditRecord | None
    ) -> tuple[AuditProblem | None, datetime | None]:
        if verified == 0:
            return None, None
        if last is None:
            detail = f"{verified} record(s) and no signed checkpoint: nothing vouches for them"
            return AuditProblem(ProblemKind.NO_CHECKPOINT, chain, 0, -1, detail), None
        pending = verified - (last.seq + 1)
        if pending <= 0:
            return None, None
        after = f"{pending} record(s) after the last signed checkpoint (seq {last.seq})"
        if self.now - last.decided_at >= self.interval + self.margin:
            due = (last.decided_at + self.interval + self.margin).isoformat()  # <= now: fits
            detail = f"{after} unvouched; a checkpoint was due by {due}"
            return AuditProblem(ProblemKind.UNVOUCHED, chain, last.seq + 1, -1, detail), None
        try:
            deadline = last.decided_at + self.interval + self.margin
        except OverflowError:  # a checkpoint dated near year 9999: still only pending
            deadline = datetime.max.replace(tzinfo=UTC)
        if self.strict:
            detail = f"{after} pending until {deadline.isoformat()} (--strict)"
            return AuditProblem(ProblemKind.PENDING, chain, last.seq + 1, -1, detail), deadline
        return None, deadline


def _signed(record: AuditRecord, key: Ed25519PublicKey) -> bool:
    try:
        verify_detached(key, SignatureDomain.CHECKPOINT, audit_bytes(record), record.signature)
    except SignatureInvalid:
        return False
    return True


def _verify_chain(
    chain: str,
    items: list[tuple[int, AuditRecord]],
    key: Ed25519PublicKey,
    anchor: AuditRecord | None,
    vouching: _Vouching | None,
) -> tuple[AuditProblem | None, ChainSummary]:
    seqs_ahead: dict[int, int] = {}
    for _, record in items:
        seqs_ahead[record.seq] = seqs_ahead.get(record.seq, 0) + 1
    seen: dict[int, bytes] = {}
    accepted: dict[int, tuple[int, AuditRecord]] = {}
    decided: set[str] = set()  # an auditor must see each decision once (DESIGN section 10)
    expected, prev = 0, GENESIS_HASH
    last_checkpoint: AuditRecord | None = None
    problem: AuditProblem | None = None

    def found(kind: ProblemKind, record: AuditRecord, position: int, detail: str) -> AuditProblem:
        return AuditProblem(kind, chain, record.seq, position, detail)

    for position, record in items:
        seqs_ahead[record.seq] -= 1
        if record.record_hash != audit_record_hash(record):
            problem = found(ProblemKind.ALTERED, record, position, "record hash does not match")
        elif record.seq < expected:
            at, earlier = accepted.get(record.seq, (-1, None))
            if earlier is not None and earlier.record_hash == record.record_hash:
                problem = found(
                    ProblemKind.DUPLICATED,
                    record,
                    position,
                    f"seq {record.seq} after seq {expected - 1}",
                )
            # Two records at one place: the one the broker did not sign is the forgery.
            elif not _signed(record, key):
                problem = found(ProblemKind.ALTERED, record, position, _FORGED)
            elif earlier is not None and not _signed(earlier, key):
                problem = found(ProblemKind.ALTERED, earlier, at, _FORGED)
            elif earlier is not None:
                # Both genuine: the chain was continued twice from one place (a
                # worker that kept appending after its partition moved), not reordered.
                problem = found(
                    ProblemKind.FORKED,
                    record,
                    position,
                    f"two different records signed by the broker at seq {record.seq} "
                    f"(position {at} and position {position}): the chain was continued twice",
                )
            else:
                problem = found(
                    ProblemKind.REORDERED,
                    record,
                    position,
                    f"seq {record.seq} after seq {expected - 1}",
                )
        elif record.seq > expected:
            if seqs_ahead.get(expected, 0) > 0:
                problem = found(
                    ProblemKind.REORDERED,
                    record,
                    position,
                    f"seq {record.seq} read before seq {expected}",
                )
            elif not _signed(record, key):
                # A record the broker never signed makes no gap: it was appended, not
                # left behind by deleted ones (it may claim any seq it likes).
                problem = found(ProblemKind.ALTERED, record, position, _FORGED)
            else:
                missing = (
                    f"{expected}"
                    if record.seq == expected + 1
                    else (f"{expected}..{record.seq - 1}")
                )
                problem = AuditProblem(
                    ProblemKind.MISSING, chain, expected, position, f"record(s) {missing} absent"
                )
        elif record.prev_hash != prev:
            problem = AuditProblem(
                ProblemKind.ALTERED,
                chain,
                max(expected - 1, 0),
                position,
                "link to the previous record is broken: it was replaced or altered",
            )
        elif record.kind is AuditKind.CHECKPOINT and not _signed(record, key):
            problem = found(
                ProblemKind.BAD_CHECKPOINT,
                record,
                position,
                "checkpoint signature does not verify under the broker key",
            )
        elif record.kind is not AuditKind.CHECKPOINT and record.decision_id in decided:
            problem = found(
                ProblemKind.REPEATED_DECISION,
                record,
                position,
                f"decision {record.decision_id} was already recorded in this chain",
            )
        if problem is not None:
            break
        if record.kind is not AuditKind.CHECKPOINT:
            decided.add(record.decision_id)
        seen[record.seq] = record.record_hash
        accepted[record.seq] = (position, record)
        if record.kind is AuditKind.CHECKPOINT:
            last_checkpoint = record
        expected, prev = record.seq + 1, record.record_hash

    if problem is None:
        # The broker signs every link; a checkpoint's signature vouches for those
        # before it, so only the records after the last one are checked one by
        # one. One that does not verify was written by someone else.
        after = last_checkpoint.seq if last_checkpoint is not None else -1
        for position, record in items:
            if record.seq > after and not _signed(record, key):
                problem = found(ProblemKind.ALTERED, record, position, _FORGED)
                break
    if problem is None and anchor is not None:
        if anchor.seq >= expected:
            problem = AuditProblem(
                ProblemKind.TRUNCATED,
                chain,
                expected,
                -1,
                f"tail cut: chain ends at {expected} record(s) but a signed "
                f"checkpoint vouched for {anchor.seq + 1}",
            )
        elif seen.get(anchor.seq) != anchor.record_hash:
            problem = AuditProblem(
                ProblemKind.ALTERED,
                chain,
                anchor.seq,
                -1,
                "record differs from the signed anchor checkpoint",
            )
    anchored = last_checkpoint.seq + 1 if last_checkpoint is not None else 0
    deadline: datetime | None = None
    if problem is None and vouching is not None:
        problem, deadline = vouching.judge(chain, expected, last_checkpoint)
    summary = ChainSummary(
        chain, len(items), expected, prev, last_checkpoint, expected - anchored, deadline, key
    )
    return problem, summary


def _chain_key(
    items: list[tuple[int, AuditRecord]],
    anchor: AuditRecord | None,
    keys: tuple[Ed25519PublicKey, ...],
) -> Ed25519PublicKey:
    """The key a chain is verified under: the one its first intact record is signed with.

    The broker starts a new chain under a new key (``broker`` names its chains
    by key), so each chain has exactly one; none verifying, the current key
    (``keys[0]``) is used and the chain's problems are reported under it.
    """
    for _, record in items:
        if record.record_hash == audit_record_hash(record):
            for key in keys:
                if _signed(record, key):
                    return key
            break
    if anchor is not None:
        for key in keys:
            if _signed(anchor, key):
                return key
    return keys[0]


def verify_audit(
    records: Iterable[AuditRecord],
    broker_public_key: Ed25519PublicKey,
    *,
    previous_keys: Iterable[Ed25519PublicKey] = (),
    anchors: Iterable[AuditRecord] = (),
    now: datetime | None = None,
    checkpoint_interval: timedelta = DEFAULT_CHECKPOINT_INTERVAL,
    margin: timedelta = DEFAULT_VOUCH_MARGIN,
    strict: bool = False,
) -> AuditReport:
    """Verify every chain in ``records`` and report the first problem of each.

    Args:
        records: audit records in read order; chains may be interleaved.
        broker_public_key: the broker's Ed25519 key from the directory.
        previous_keys: keys the broker signed with before a rotation (default
            none). Each chain is verified under the one key its first record is
            signed with; a chain the broker continued under two keys fails.
        anchors: signed checkpoints kept from earlier verifications (default none);
            a chain shorter than its anchor, or different at it, was cut or rewritten.
            Anchors whose signature fails are themselves reported.
        now: the verifier's clock (default None: links only, for a process checking
            a chain it built itself). Given, every chain must be vouched for: one
            with no signed checkpoint fails, and records after the last checkpoint
            fail once ``now`` passes that checkpoint's time plus
            ``checkpoint_interval`` plus ``margin``. ``fedbroker audit verify``
            always passes it.
        checkpoint_interval: the broker's checkpoint interval (default one minute,
            the broker's ``checkpoint_interval_s``).
        margin: slack past the interval (default two minutes).
        strict: also fail on a pending tail, one whose deadline has not yet passed.
    """
    vouching = _Vouching(now, checkpoint_interval, margin, strict) if now is not None else None
    by_chain: dict[str, list[tuple[int, AuditRecord]]] = {}
    for position, record in enumerate(records):
        by_chain.setdefault(record.chain, []).append((position, record))
    keys = (broker_public_key, *previous_keys)
    problems: list[AuditProblem] = []
    best: dict[str, AuditRecord] = {}
    for anchor in anchors:
        if anchor.record_hash != audit_record_hash(anchor) or not any(
            _signed(anchor, key) for key in keys
        ):
            problems.append(
                AuditProblem(
                    ProblemKind.BAD_CHECKPOINT,
                    anchor.chain,
                    anchor.seq,
                    -1,
                    "anchor checkpoint does not verify",
                )
            )
            continue
        if anchor.chain not in best or anchor.seq > best[anchor.chain].seq:
            best[anchor.chain] = anchor
    summaries: dict[str, ChainSummary] = {}
    for chain in sorted(set(by_chain) | set(best)):
        items, held = by_chain.get(chain, []), best.get(chain)
        key = _chain_key(items, held, keys) if len(keys) > 1 else broker_public_key
        problem, summary = _verify_chain(chain, items, key, held, vouching)
        summaries[chain] = summary
        if problem is not None:
            problems.append(problem)
    return AuditReport(tuple(problems), MappingProxyType(summaries))
