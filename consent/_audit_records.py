"""Audit records as plain JSON, and the subject-access query over them.

Auditors keep checkpoints between verifications (the anchors that reveal a cut
tail) and read reports; both want a form a person can open, so checkpoints are
stored as JSON here rather than as Avro. ``decisions_concerning`` answers a
subject-access request: every decision whose subject tokens include any of the
person's tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from consent._errors import AuditInvalid
from schemas import AuditKind, AuditRecord, Outcome

__all__ = ["audit_record_from_dict", "audit_record_to_dict", "decisions_concerning"]


def audit_record_to_dict(record: AuditRecord) -> dict[str, Any]:
    """Every field, with bytes as hex and times as ISO 8601."""
    return {
        "decision_id": record.decision_id,
        "chain": record.chain,
        "seq": record.seq,
        "kind": record.kind.value,
        "decided_at": record.decided_at.isoformat(),
        "agreement_id": record.agreement_id,
        "outcome": record.outcome.value if record.outcome is not None else None,
        "reasons": list(record.reasons),
        "subject_tokens": list(record.subject_tokens),
        "event_ids": list(record.event_ids),
        "recipients": list(record.recipients),
        "notification_id": record.notification_id,
        "prev_hash": record.prev_hash.hex(),
        "record_hash": record.record_hash.hex(),
        "signature": record.signature.hex(),
    }


def audit_record_from_dict(data: Mapping[str, Any]) -> AuditRecord:
    """The inverse of ``audit_record_to_dict``.

    Raises:
        AuditInvalid: a field is missing or malformed.
    """
    try:
        outcome = data["outcome"]
        return AuditRecord(
            decision_id=str(data["decision_id"]),
            chain=str(data["chain"]),
            seq=int(data["seq"]),
            kind=AuditKind(data["kind"]),
            decided_at=datetime.fromisoformat(data["decided_at"]),
            agreement_id=str(data["agreement_id"]),
            outcome=Outcome(outcome) if outcome is not None else None,
            reasons=tuple(str(r) for r in data["reasons"]),
            subject_tokens=tuple(str(t) for t in data["subject_tokens"]),
            event_ids=tuple(str(e) for e in data["event_ids"]),
            recipients=tuple(str(r) for r in data["recipients"]),
            notification_id=data["notification_id"],
            prev_hash=bytes.fromhex(data["prev_hash"]),
            record_hash=bytes.fromhex(data["record_hash"]),
            signature=bytes.fromhex(data["signature"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditInvalid("malformed audit record") from exc


def decisions_concerning(
    records: Iterable[AuditRecord], tokens: Iterable[str]
) -> list[AuditRecord]:
    """Decision and erasure records naming any of ``tokens``, in the order given.

    Args:
        records: audit records (any chains, any order).
        tokens: the person's token keys (``LinkageToken.key()``), every domain and epoch.
    """
    wanted = set(tokens)
    return [
        record
        for record in records
        if record.kind is not AuditKind.CHECKPOINT and wanted.intersection(record.subject_tokens)
    ]
