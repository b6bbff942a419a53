"""Test helpers for reading the 0.2.0 wire format off real topics.

Tests that check signatures use ``consent.open_envelope`` themselves; these
helpers are for tests that only need to see what a topic holds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from consent import Directory, notify_topic, open_envelope
from schemas import (
    AuditKind,
    AuditRecord,
    Codec,
    MatchNotification,
    SignatureDomain,
    SignedEnvelope,
)
from tests.connectors.conftest import read_topic

_T = TypeVar("_T")


def body_of(codec: Codec, value: bytes, kind: type[_T]) -> _T:
    """The record inside a signed envelope, decoded without checking the signature."""
    envelope = codec.decode_as(value, SignedEnvelope)
    return codec.decode_body(envelope.writer_fingerprint, envelope.body, kind)


def read_notifications(
    bootstrap: str, prefix: str, directory: Directory
) -> list[MatchNotification]:
    """Every notification on every service's topic, each verified as its service would."""
    codec, broker = Codec(), directory.broker
    found: list[MatchNotification] = []
    for service in directory.services:
        for _, value in read_topic(bootstrap, notify_topic(prefix, service.member_id)):
            record, _ = open_envelope(
                value,
                SignatureDomain.NOTIFICATION,
                lambda signer: broker.signing_key if signer == broker.member_id else None,
                codec=codec,
            )
            assert isinstance(record, MatchNotification)
            assert record.recipient == service.member_id, "a notification on another's topic"
            found.append(record)
    return found


def decision_reasons(
    bootstrap: str, prefix: str, agreement: str, person_of_event: Mapping[str, str]
) -> dict[str, set[str]]:
    """Each person's decision reasons under ``agreement``, from the audit topic."""
    codec = Codec()
    reasons: dict[str, set[str]] = defaultdict(set)
    for _, value in read_topic(bootstrap, f"{prefix}.audit"):
        record = codec.decode_as(value, AuditRecord)
        if record.kind is AuditKind.DECISION and record.agreement_id == agreement:
            (person,) = {person_of_event[e] for e in record.event_ids}
            reasons[person].update(record.reasons)
    return dict(reasons)


def table_key(key: bytes | None) -> str:
    """A Faust table's key as its changelog holds it (JSON-quoted or raw)."""
    text = (key or b"").decode()
    return str(json.loads(text)) if text.startswith('"') else text


def live_rows(records: Iterable[Any]) -> dict[tuple[str, int], bytes]:
    """What a compacted changelog keeps: each (key, partition)'s last value, tombstones gone."""
    last: dict[tuple[str, int], bytes | None] = {}
    for record in records:
        last[(table_key(record.key), record.partition)] = record.value
    return {where: value for where, value in last.items() if value is not None}


def is_row(key: str) -> bool:
    """Whether a token-state table key is a sighting's row (``event/digest/partition``),
    not a token's state (``domain:epoch:hex``)."""
    return "/" in key.rsplit(":", 1)[-1]
