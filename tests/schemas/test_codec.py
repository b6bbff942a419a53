"""The codec: exact round trips, both framings, and hostile bytes met with typed errors only."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    BadMarker,
    CitizenEvent,
    Codec,
    ConsentRecord,
    DecodeError,
    EncodeError,
    InvalidUtf8,
    MessageTooLarge,
    SchemaError,
    SignedEnvelope,
    TrailingBytes,
    TruncatedMessage,
    UnknownSchema,
    WrongRecordType,
    crc64_avro,
)
from tests.schemas.conftest import events, every_record, typical_event

CODEC = Codec()


@pytest.mark.parametrize("record", every_record(), ids=lambda r: type(r).__name__)
def test_every_record_type_round_trips_exactly(record):
    data = CODEC.encode(record)
    assert data[:2] == b"\xc3\x01"
    assert CODEC.decode(data) == record


def test_crc64_avro_matches_the_specification_vectors():
    # The Avro specification's fingerprint of the schema "null" (Parsing Canonical Form).
    assert crc64_avro(b'"null"') == 0x63DD24E7CC258F8A


def test_confluent_framing_when_a_registry_mapping_is_configured():
    codec = Codec(registry_ids={"CitizenEvent": 42})
    data = codec.encode(typical_event())
    assert data[:5] == b"\x00" + struct.pack(">I", 42)
    assert codec.decode(data) == typical_event()
    with pytest.raises(UnknownSchema):
        codec.decode(b"\x00" + struct.pack(">I", 7) + data[5:])


def test_decode_as_insists_on_the_record_type():
    with pytest.raises(WrongRecordType):
        CODEC.decode_as(CODEC.encode(typical_event()), ConsentRecord)
    assert CODEC.decode_as(CODEC.encode(typical_event()), CitizenEvent) == typical_event()


def test_an_envelope_body_is_the_unframed_record_under_its_latest_schema():
    event = typical_event()
    fingerprint, body = CODEC.encode_body(event)
    assert CODEC.encode(event) == b"\xc3\x01" + struct.pack("<Q", fingerprint) + body
    assert CODEC.encode_body(typical_event(source_ref="changed"))[1] != body
    reordered = typical_event(attributes=dict(reversed(list(event.attributes.items()))))
    assert CODEC.encode_body(reordered)[1] == body  # one writer, one byte string
    assert CODEC.decode_body(fingerprint, body, CitizenEvent) == event


def test_a_body_is_decoded_only_as_the_record_its_fingerprint_names():
    fingerprint, body = CODEC.encode_body(typical_event())
    with pytest.raises(WrongRecordType):
        CODEC.decode_body(fingerprint, body, ConsentRecord)
    with pytest.raises(UnknownSchema):
        CODEC.decode_body(fingerprint ^ 1, body, CitizenEvent)
    with pytest.raises(TrailingBytes):
        CODEC.decode_body(fingerprint, body + b"\x00", CitizenEvent)
    with pytest.raises(TruncatedMessage):
        CODEC.decode_body(fingerprint, body[:-3], CitizenEvent)
    small = Codec(max_message_bytes=len(body) - 1)
    with pytest.raises(MessageTooLarge):
        small.decode_body(fingerprint, body, CitizenEvent)


@pytest.mark.parametrize(
    ("mutate", "error", "reason"),
    [
        (lambda d: d[:-3], TruncatedMessage, "truncated"),
        (lambda d: d[:6], TruncatedMessage, "truncated"),
        (lambda d: b"", TruncatedMessage, "truncated"),
        (lambda d: b"\xc3\x02" + d[2:], BadMarker, "bad-marker"),
        (lambda d: b"\xc3\x01" + b"\xff" * 8 + d[10:], UnknownSchema, "unknown-schema"),
        (lambda d: d + b"\x00", TrailingBytes, "trailing-bytes"),
        (lambda d: d[:10] + b"\x04\xff\xfe" + d[13:], InvalidUtf8, "invalid-utf8"),
        # A huge length prefix for the first string: must not allocate beyond the message.
        (lambda d: d[:10] + b"\xfe\xff\xff\xff\x0f" + d[10:], DecodeError, None),
        # A negative length prefix (zig-zag 1 = -1).
        (lambda d: d[:10] + b"\x01" + d[11:], DecodeError, None),
    ],
)
def test_hostile_bytes_raise_typed_errors(mutate, error, reason):
    data = CODEC.encode(typical_event(event_id="ab"))
    with pytest.raises(error) as caught:
        CODEC.decode(mutate(data))
    if reason is not None:
        assert caught.value.reason == reason


def test_size_limit_applies_both_ways():
    small = Codec(max_message_bytes=100)
    with pytest.raises(MessageTooLarge):
        small.encode(typical_event())
    with pytest.raises(MessageTooLarge) as caught:
        small.decode(CODEC.encode(typical_event()))
    assert caught.value.reason == "too-large"


@given(events)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_random_events_round_trip(event):
    assert CODEC.decode(CODEC.encode(event)) == event


@given(st.binary(max_size=600))
@settings(max_examples=300)
def test_random_bytes_only_raise_schema_errors(data):
    for candidate in (data, b"\xc3\x01" + CODEC.encode(typical_event())[2:10] + data):
        try:
            CODEC.decode(candidate)
        except SchemaError:
            pass


@given(st.data())
@settings(max_examples=200)
def test_mutated_messages_only_raise_schema_errors(data):
    message = bytearray(CODEC.encode(typical_event()))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(10, len(message) - 1))
        message[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(10, len(message)))
    try:
        CODEC.decode(bytes(message[:cut]))
    except SchemaError:
        pass


@pytest.mark.parametrize("fingerprint", [-1, 2**64])
def test_an_envelope_fingerprint_out_of_range_is_an_encode_error_not_an_overflow(fingerprint):
    envelope = SignedEnvelope("fedbroker/event/v3", "E08000003", fingerprint, b"", b"\x00" * 64)
    with pytest.raises(EncodeError):
        Codec().encode(envelope)
