"""Records to Avro datums and back: the only place that knows both shapes.

Enum values travel as Avro symbols (``ADDRESS_CHANGE``) because Avro symbols
cannot hold hyphens; the records keep the readable values (``address-change``).
Attribute maps are sorted so that equal records always encode to equal bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from schemas._catalogue import EventType
from schemas._records import (
    AuditKind,
    AuditRecord,
    CitizenEvent,
    ConsentRecord,
    ConsentState,
    LinkageToken,
    MatchedEvent,
    MatchNotification,
    Outcome,
    RejectedRecord,
    SealedPayload,
    SignedEnvelope,
)

__all__ = ["RECORD_TYPES", "Record", "from_datum", "to_datum"]

Record = (
    CitizenEvent | ConsentRecord | MatchNotification | AuditRecord | RejectedRecord | SignedEnvelope
)
RECORD_TYPES: Mapping[str, type[Any]] = MappingProxyType(
    {
        "CitizenEvent": CitizenEvent,
        "ConsentRecord": ConsentRecord,
        "MatchNotification": MatchNotification,
        "AuditRecord": AuditRecord,
        "RejectedRecord": RejectedRecord,
        "SignedEnvelope": SignedEnvelope,
    }
)


def _tokens(tokens: tuple[LinkageToken, ...]) -> list[dict[str, Any]]:
    return [{"domain": t.domain, "epoch": t.epoch, "value": t.value} for t in tokens]


def _sealed(sealed: tuple[SealedPayload, ...]) -> list[dict[str, Any]]:
    return [
        {"recipient": s.recipient, "agreement_id": s.agreement_id, "enc": s.enc,
         "ciphertext": s.ciphertext, "fields": list(s.fields)}
        for s in sealed
    ]  # fmt: skip


def _event_to(r: CitizenEvent) -> dict[str, Any]:
    return {
        "event_id": r.event_id,
        "source_council": r.source_council,
        "source_system": r.source_system,
        "event_type": r.event_type.name,
        "occurred_at": r.occurred_at,
        "published_at": r.published_at,
        "key_epoch": r.key_epoch,
        "source_ref": r.source_ref,
        "tokens": _tokens(r.tokens),
        "blocking_tokens": _tokens(r.blocking_tokens),
        "fuzzy": r.fuzzy,
        "attributes": dict(sorted(r.attributes.items())),
        "sealed": _sealed(r.sealed),
        "encoding": r.encoding,
    }


def _consent_to(r: ConsentRecord) -> dict[str, Any]:
    return {
        "record_id": r.record_id,
        "council": r.council,
        "tokens": _tokens(r.tokens),
        "blocking_tokens": _tokens(r.blocking_tokens),
        "scope": r.scope,
        "state": r.state.name,
        "recorded_at": r.recorded_at,
        "published_at": r.published_at,
        "key_epoch": r.key_epoch,
    }


def _notification_to(r: MatchNotification) -> dict[str, Any]:
    return {
        "notification_id": r.notification_id,
        "agreement_id": r.agreement_id,
        "purpose": r.purpose,
        "recipient": r.recipient,
        "created_at": r.created_at,
        "events": [
            {
                "event_id": e.event_id,
                "source_council": e.source_council,
                "source_ref": e.source_ref,
                "event_type": e.event_type.name,
                "occurred_at": e.occurred_at,
            }
            for e in r.events
        ],  # fmt: skip
        "score": r.score,
        "method": r.method,
        "sealed": _sealed(r.sealed),
    }


def _envelope_to(r: SignedEnvelope) -> dict[str, Any]:
    return {
        "domain": r.domain,
        "signer": r.signer,
        "writer_fingerprint": r.writer_fingerprint.to_bytes(8, "little"),
        "body": r.body,
        "signature": r.signature,
    }


def _audit_to(r: AuditRecord) -> dict[str, Any]:
    return {
        "decision_id": r.decision_id,
        "chain": r.chain,
        "seq": r.seq,
        "kind": r.kind.name,
        "decided_at": r.decided_at,
        "agreement_id": r.agreement_id,
        "outcome": None if r.outcome is None else r.outcome.name,
        "reasons": list(r.reasons),
        "subject_tokens": list(r.subject_tokens),
        "event_ids": list(r.event_ids),
        "recipients": list(r.recipients),
        "notification_id": r.notification_id,
        "prev_hash": r.prev_hash,
        "record_hash": r.record_hash,
        "signature": r.signature,
    }


def _rejected_to(r: RejectedRecord) -> dict[str, Any]:
    return {
        "rejected_id": r.rejected_id,
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "reason": r.reason,
        "detail": r.detail,
        "rejected_at": r.rejected_at,
        "event_id": r.event_id,
        "source_council": r.source_council,
    }


_TO: Mapping[type[Any], Callable[[Any], dict[str, Any]]] = MappingProxyType(
    {
        CitizenEvent: _event_to,
        ConsentRecord: _consent_to,
        MatchNotification: _notification_to,
        AuditRecord: _audit_to,
        RejectedRecord: _rejected_to,
        SignedEnvelope: _envelope_to,
    }
)


def to_datum(record: Record) -> tuple[str, dict[str, Any]]:
    """The schema name and Avro datum of a record."""
    return type(record).__name__, _TO[type(record)](record)


_new = object.__new__
_token_slots: Any = LinkageToken  # the class's slot descriptors, which mypy does not model
_set_domain = _token_slots.domain.__set__
_set_epoch = _token_slots.epoch.__set__
_set_value = _token_slots.value.__set__


def _token_from(t: dict[str, Any]) -> LinkageToken:
    """A token built through its slots: the frozen ``__init__`` costs twice as much.

    Safe because LinkageToken has no ``__post_init__``; a decoded event carries
    seven or so tokens, so this is a measurable share of the hot path.
    """
    token: LinkageToken = _new(LinkageToken)
    _set_domain(token, t["domain"])
    _set_epoch(token, t["epoch"])
    _set_value(token, t["value"])
    return token


def _tokens_from(items: list[dict[str, Any]]) -> tuple[LinkageToken, ...]:
    return tuple(map(_token_from, items))


def _sealed_from(items: list[dict[str, Any]]) -> tuple[SealedPayload, ...]:
    return tuple(
        SealedPayload(
            s["recipient"], s["agreement_id"], s["enc"], s["ciphertext"], tuple(s["fields"])
        )
        for s in items
    )


def from_datum(name: str, d: dict[str, Any]) -> Record:
    """Rebuild the record that ``to_datum`` encoded (after schema resolution)."""
    if name == "CitizenEvent":
        return CitizenEvent(
            event_id=d["event_id"],
            source_council=d["source_council"],
            source_system=d["source_system"],
            event_type=EventType[d["event_type"]],
            occurred_at=d["occurred_at"],
            published_at=d["published_at"],
            key_epoch=d["key_epoch"],
            source_ref=d["source_ref"],
            tokens=_tokens_from(d["tokens"]),
            blocking_tokens=_tokens_from(d["blocking_tokens"]),
            fuzzy=d["fuzzy"],
            attributes=MappingProxyType(dict(d["attributes"])),
            sealed=_sealed_from(d["sealed"]),
            encoding=d["encoding"],
        )
    if name == "ConsentRecord":
        return ConsentRecord(
            record_id=d["record_id"],
            council=d["council"],
            tokens=_tokens_from(d["tokens"]),
            scope=d["scope"],
            state=ConsentState[d["state"]],
            recorded_at=d["recorded_at"],
            published_at=d["published_at"],
            key_epoch=d["key_epoch"],
            blocking_tokens=_tokens_from(d["blocking_tokens"]),
        )
    if name == "MatchNotification":
        return MatchNotification(
            notification_id=d["notification_id"],
            agreement_id=d["agreement_id"],
            purpose=d["purpose"],
            recipient=d["recipient"],
            created_at=d["created_at"],
            events=tuple(
                MatchedEvent(
                    e["event_id"],
                    e["source_council"],
                    e["source_ref"],
                    EventType[e["event_type"]],
                    e["occurred_at"],
                )
                for e in d["events"]
            ),  # fmt: skip
            score=d["score"],
            method=d["method"],
            sealed=_sealed_from(d["sealed"]),
        )
    if name == "SignedEnvelope":
        return SignedEnvelope(
            domain=d["domain"],
            signer=d["signer"],
            writer_fingerprint=int.from_bytes(d["writer_fingerprint"], "little"),
            body=d["body"],
            signature=d["signature"],
        )
    if name == "AuditRecord":
        return AuditRecord(
            decision_id=d["decision_id"],
            chain=d["chain"],
            seq=d["seq"],
            kind=AuditKind[d["kind"]],
            decided_at=d["decided_at"],
            agreement_id=d["agreement_id"],
            outcome=None if d["outcome"] is None else Outcome[d["outcome"]],
            reasons=tuple(d["reasons"]),
            subject_tokens=tuple(d["subject_tokens"]),
            event_ids=tuple(d["event_ids"]),
            recipients=tuple(d["recipients"]),
            notification_id=d["notification_id"],
            prev_hash=d["prev_hash"],
            record_hash=d["record_hash"],
            signature=d["signature"],
        )
    return RejectedRecord(
        rejected_id=d["rejected_id"],
        topic=d["topic"],
        partition=d["partition"],
        offset=d["offset"],
        reason=d["reason"],
        detail=d["detail"],
        rejected_at=d["rejected_at"],
        event_id=d["event_id"],
        source_council=d["source_council"],
    )
