"""The direct writers write fastavro's bytes, or step aside for the generic path.

Written as a reviewer who distrusts a second Avro writer: for any event or
envelope, including values of the wrong type or out of range, the codec's
output (bytes or error) equals what fastavro makes of ``to_datum``.
"""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    Codec,
    EncodeError,
    EventType,
    LinkageToken,
    MessageTooLarge,
    SealedPayload,
    SignedEnvelope,
    load_versions,
)
from schemas._convert import to_datum
from schemas._direct_writers import (
    CITIZEN_EVENT_FINGERPRINT,
    SIGNED_ENVELOPE_FINGERPRINT,
    write_citizen_event,
    write_signed_envelope,
)
from tests.schemas.conftest import events, typical_event

CODEC = Codec()
LATEST = {name: versions[-1] for name, versions in load_versions().items()}
SYMBOLS = {
    name: i
    for i, name in enumerate(
        next(f for f in LATEST["CitizenEvent"].inlined["fields"] if f["name"] == "event_type")[
            "type"
        ]["symbols"]
    )
}


def _generic(record: object) -> bytes | type[Exception]:
    """fastavro's bytes of the record's datum, or the type of what the codec raised."""
    try:
        name, datum = to_datum(record)  # type: ignore[arg-type]
        out = io.BytesIO()
        schemaless_writer(out, LATEST[name].parsed, datum)
    except Exception as exc:  # noqa: BLE001 - the kind is what is compared
        return type(exc)
    return out.getvalue()


def _fields(record: object) -> dict[str, object]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}  # type: ignore[arg-type]


_odd_text = st.text(max_size=8) | st.just("\ud800") | st.integers() | st.binary(max_size=4)
_odd_int = st.integers(-(2**70), 2**70) | st.booleans() | st.just("1")
_odd_time = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.none() | st.just(UTC) | st.just(timezone(timedelta(hours=-5))),
) | st.integers(0, 2**40)
_odd_bytes = st.binary(max_size=40) | st.none() | st.text(max_size=3)
_odd_token = st.builds(LinkageToken, _odd_text, _odd_int, _odd_bytes)
_odd_payload = st.builds(
    SealedPayload,
    _odd_text,
    _odd_text,
    _odd_bytes,
    _odd_bytes,
    st.lists(_odd_text, max_size=2).map(tuple) | st.lists(st.text(max_size=3), max_size=2),
)
odd_events = events.flatmap(
    lambda event: st.builds(
        lambda changes: type(event)(**{**_fields(event), **changes}),
        st.fixed_dictionaries(
            {},
            optional={
                "event_id": _odd_text,
                "event_type": st.sampled_from(EventType) | st.just("address-change"),
                "occurred_at": _odd_time,
                "published_at": _odd_time,
                "key_epoch": _odd_int,
                "tokens": st.lists(_odd_token, max_size=2).map(tuple),
                "blocking_tokens": st.lists(_odd_token, max_size=2).map(tuple) | st.just([]),
                "fuzzy": _odd_bytes,
                "attributes": st.dictionaries(_odd_text, _odd_text, max_size=2)
                | st.just([("a", "b")]),
                "sealed": st.lists(_odd_payload, max_size=2).map(tuple),
                "encoding": _odd_text,
            },
        ),
    )
)
odd_envelopes = st.builds(
    SignedEnvelope,
    _odd_text,
    _odd_text,
    _odd_int | st.integers(0, 2**64 - 1),
    _odd_bytes,
    _odd_bytes,
)


GENERIC = Codec()
GENERIC._event_symbols = None  # the codec as it was before the direct writers
GENERIC._direct_envelope = False


def _outcome(codec: Codec, record: object, *, framed: bool = False) -> object:
    """What the codec makes of the record: its bytes, or its error's type and text."""
    try:
        if framed:
            return codec.encode(record)  # type: ignore[arg-type]
        return codec.encode_body(record)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - the kind and text are what is compared
        return type(exc), str(exc)


def test_the_writers_are_pinned_to_the_latest_schemas():
    # A new schema version turns a direct writer off; update or remove it then.
    assert LATEST["CitizenEvent"].fingerprint == CITIZEN_EVENT_FINGERPRINT
    assert LATEST["SignedEnvelope"].fingerprint == SIGNED_ENVELOPE_FINGERPRINT


@given(events)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_a_valid_event_is_written_directly_with_fastavros_bytes(event):
    direct = write_citizen_event(event, SYMBOLS)
    assert direct is not None
    assert direct == _generic(event)


@given(odd_events)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_any_event_encodes_as_the_generic_path_would(event):
    assert _outcome(CODEC, event) == _outcome(GENERIC, event)
    assert _outcome(CODEC, event, framed=True) == _outcome(GENERIC, event, framed=True)
    direct = write_citizen_event(event, SYMBOLS)
    assert direct is None or direct == _generic(event)


@given(odd_envelopes)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_any_envelope_encodes_as_the_generic_path_would(envelope):
    assert _outcome(CODEC, envelope) == _outcome(GENERIC, envelope)
    assert _outcome(CODEC, envelope, framed=True) == _outcome(GENERIC, envelope, framed=True)
    direct = write_signed_envelope(envelope)
    assert direct is None or direct == _generic(envelope)


def test_a_typical_event_and_its_envelope_take_the_direct_path():
    event = typical_event(attributes={"tenure": "council", "band": "C"})
    body = write_citizen_event(event, SYMBOLS)
    assert body is not None and body == _generic(event)
    envelope = SignedEnvelope("fedbroker/event/v3", "E08000006", 2**64 - 1, body, b"s" * 64)
    assert write_signed_envelope(envelope) == _generic(envelope)


def test_the_size_limit_holds_on_the_direct_path():
    event = typical_event(fuzzy=b"x" * 2048)
    small = Codec(max_message_bytes=1024)
    with pytest.raises(MessageTooLarge):
        small.encode_body(event)
    envelope = SignedEnvelope("fedbroker/event/v3", "E08000006", 1, b"b" * 2048, b"s" * 64)
    with pytest.raises(MessageTooLarge):
        small.encode(envelope)


def test_confluent_framing_uses_the_direct_bytes_behind_its_own_header():
    registry = Codec(registry_ids={"SignedEnvelope": 7})
    envelope = SignedEnvelope("fedbroker/event/v3", "E08000006", 1, b"body", b"s" * 64)
    assert registry.encode(envelope) == b"\x00\x00\x00\x00\x07" + _generic(envelope)  # type: ignore[operator]
    with pytest.raises(EncodeError):
        registry.encode(typical_event())
