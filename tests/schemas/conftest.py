"""Record factories for schema tests: typical and randomly generated records."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from schemas import (
    AuditKind,
    AuditRecord,
    CitizenEvent,
    ConsentRecord,
    ConsentState,
    EventType,
    LinkageToken,
    MatchedEvent,
    MatchNotification,
    Outcome,
    RejectedRecord,
    SealedPayload,
    SignedEnvelope,
)

WHEN = datetime(2026, 9, 7, 10, 30, 15, 123456, tzinfo=UTC)


def typical_event(**changes: object) -> CitizenEvent:
    fields: dict[str, object] = {
        "event_id": "0f" * 16,
        "source_council": "E08000006",
        "source_system": "revenues",
        "event_type": EventType.ADDRESS_CHANGE,
        "occurred_at": WHEN,
        "published_at": WHEN,
        "key_epoch": 3,
        "source_ref": "ab" * 16,
        "tokens": (LinkageToken("nhs", 3, b"\x01" * 32), LinkageToken("name+dob", 3, b"\x02" * 32)),
        "blocking_tokens": tuple(LinkageToken(f"b{i}", 3, bytes([i]) * 32) for i in range(5)),
        "fuzzy": bytes(range(128)),
        "attributes": {"tenure": "owner", "move_direction": "in"},
        "sealed": (
            SealedPayload("E08000009.revenues", "gm-cross-boundary-move", b"e" * 32, b"c" * 160),
        ),
        "encoding": "clk-v1",
    }
    fields.update(changes)
    return CitizenEvent(**fields)  # type: ignore[arg-type]


def every_record() -> list[object]:
    return [
        typical_event(),
        typical_event(fuzzy=None, attributes={}, sealed=(), tokens=()),
        ConsentRecord("r" * 32, "E08000006", (LinkageToken("nhs", 1, b"\x05" * 32),),
                      "purpose:x", ConsentState.OBJECTED, WHEN, WHEN, 1),
        MatchNotification("n" * 32, "gm-cross-boundary-move", "p", "svc.a", WHEN,
                          (MatchedEvent("e" * 32, "E08000006", "ref", EventType.DEATH_REGISTERED,
                                        WHEN),), 0.93, "fuzzy", ()),
        SignedEnvelope("fedbroker/event/v3", "E08000006", 2**64 - 1, b"body", b"s" * 64),
        AuditRecord("d" * 32, "fed.audit/0", 7, AuditKind.DECISION, WHEN, "a", Outcome.DENIED,
                    ("consent-withdrawn",), ("nhs:1:ff",), ("e" * 32,), ("svc.a",), None,
                    b"p" * 32, b"h" * 32, b""),
        AuditRecord("c" * 32, "fed.audit/0", 8, AuditKind.CHECKPOINT, WHEN, "", None, (), (), (),
                    (), "n" * 32, b"p" * 32, b"h" * 32, b"s" * 64),
        RejectedRecord("x" * 32, "fed.events.E08000006", 2, 99, "bad-signature", "", WHEN),
        RejectedRecord("x" * 32, "t", 0, 0, "truncated", "at byte 10", WHEN, "e" * 32, "E08000006"),
    ]  # fmt: skip


_text = st.text(max_size=20)
_token = st.builds(
    LinkageToken, _text, st.integers(0, 2**31 - 1), st.binary(min_size=32, max_size=32)
)
_time = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)

events = st.builds(
    CitizenEvent,
    event_id=_text,
    source_council=_text,
    source_system=_text,
    event_type=st.sampled_from(EventType),
    occurred_at=_time,
    published_at=_time,
    key_epoch=st.integers(0, 2**31 - 1),
    source_ref=_text,
    tokens=st.lists(_token, max_size=4).map(tuple),
    blocking_tokens=st.lists(_token, max_size=4).map(tuple),
    fuzzy=st.none() | st.binary(max_size=200),
    attributes=st.dictionaries(_text, _text, max_size=4),
    sealed=st.lists(
        st.builds(SealedPayload, _text, _text, st.binary(max_size=40), st.binary(max_size=80)),
        max_size=3,
    ).map(tuple),
    encoding=_text,
)
