"""Verifying audit chains: the first broken link of each chain, and any cut tail.

``verify_audit`` takes records in the order they were read (several chains may
be interleaved, as when a topic's partitions are read together) and, for each
chain, reports the first record that was altered, is missing, is duplicated or is
out of order, and any checkpoint whose signature fails. A tail cut cannot be seen
in the chain alone; it shows against an *anchor*, a signed checkpoint kept from
an earlier verification (the auditor's witness copy): if the chain is now
shorter than an anchor says, or differs at the anchor's position, it was cut or
rewritten. Records after the last checkpoint are reported as unanchored: they
are not yet protected against being cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent._audit import GENESIS_HASH, audit_bytes, audit_record_hash
from consent._envelope import verify_detached
from consent._errors import SignatureInvalid
from schemas import AuditKind, AuditRecord, SignatureDomain

__all__ = ["AuditProblem", "AuditReport", "ChainSummary", "ProblemKind", "verify_audit"]


class ProblemKind(StrEnum):
    ALTERED = "altered"
    MISSING = "missing"
    DUPLICATED = "duplicated"
    REORDERED = "reordered"
    BAD_CHECKPOINT = "bad-checkpoint"
    TRUNCATED = "truncated"


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
    """What verification established about one chain."""

    chain: str
    records: int
    verified: int
    head_hash: bytes
    last_checkpoint: AuditRecord | None
    unanchored: int


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The outcome: ``ok`` when no chain has a problem (an unanchored tail is not one)."""

    problems: tuple[AuditProblem, ...]
    chains: Mapping[str, ChainSummary] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def ok(self) -> bool:
        return not self.problems


def _checkpoint_ok(record: AuditRecord, key: Ed25519PublicKey) -> bool:
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
) -> tuple[AuditProblem | None, ChainSummary]:
    seqs_ahead: dict[int, int] = {}
    for _, record in items:
        seqs_ahead[record.seq] = seqs_ahead.get(record.seq, 0) + 1
    seen: dict[int, bytes] = {}
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
            kind = (
                ProblemKind.DUPLICATED
                if seen.get(record.seq) == record.record_hash
                else ProblemKind.REORDERED
            )
            problem = found(kind, record, position, f"seq {record.seq} after seq {expected - 1}")
        elif record.seq > expected:
            if seqs_ahead.get(expected, 0) > 0:
                problem = found(
                    ProblemKind.REORDERED,
                    record,
                    position,
                    f"seq {record.seq} read before seq {expected}",
                )
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
        elif record.kind is AuditKind.CHECKPOINT and not _checkpoint_ok(record, key):
            problem = found(
                ProblemKind.BAD_CHECKPOINT,
                record,
                position,
                "checkpoint signature does not verify under the broker key",
            )
        if problem is not None:
            break
        seen[record.seq] = record.record_hash
        if record.kind is AuditKind.CHECKPOINT:
            last_checkpoint = record
        expected, prev = record.seq + 1, record.record_hash

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
    summary = ChainSummary(chain, len(items), expected, prev, last_checkpoint, expected - anchored)
    return problem, summary


def verify_audit(
    records: Iterable[AuditRecord],
    broker_public_key: Ed25519PublicKey,
    *,
    anchors: Iterable[AuditRecord] = (),
) -> AuditReport:
    """Verify every chain in ``records`` and report the first problem of each.

    Args:
        records: audit records in read order; chains may be interleaved.
        broker_public_key: the broker's Ed25519 key from the directory.
        anchors: signed checkpoints kept from earlier verifications (default none);
            a chain shorter than its anchor, or different at it, was cut or rewritten.
            Anchors whose signature fails are themselves reported.
    """
    by_chain: dict[str, list[tuple[int, AuditRecord]]] = {}
    for position, record in enumerate(records):
        by_chain.setdefault(record.chain, []).append((position, record))
    problems: list[AuditProblem] = []
    best: dict[str, AuditRecord] = {}
    for anchor in anchors:
        if anchor.record_hash != audit_record_hash(anchor) or not _checkpoint_ok(
            anchor, broker_public_key
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
        problem, summary = _verify_chain(
            chain, by_chain.get(chain, []), broker_public_key, best.get(chain)
        )
        summaries[chain] = summary
        if problem is not None:
            problems.append(problem)
    return AuditReport(tuple(problems), MappingProxyType(summaries))
