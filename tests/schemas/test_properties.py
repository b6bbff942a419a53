"""Property tests over every record type: exact round trips, reference-identical bytes."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import avro.io
import avro.schema
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    AuditKind,
    AuditRecord,
    Codec,
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
    UnknownSchema,
    load_versions,
)
from schemas._convert import to_datum
from tests.schemas.conftest import events, typical_event

CODEC = Codec()
CONFLUENT = Codec(registry_ids={name: i for i, name in enumerate(load_versions(), 1)})
_text = st.text(max_size=12)
_ids = st.lists(_text, max_size=3).map(tuple)
_time = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
_token = st.builds(
    LinkageToken, _text, st.integers(0, 2**31 - 1), st.binary(min_size=32, max_size=32)
)
_sealed = st.lists(
    st.builds(SealedPayload, _text, _text, st.binary(max_size=40), st.binary(max_size=60)),
    max_size=2,
).map(tuple)
_long = st.integers(-(2**63), 2**63 - 1)

consents = st.builds(
    ConsentRecord, _text, _text, st.lists(_token, max_size=3).map(tuple), _text,
    st.sampled_from(ConsentState), _time, _time, st.integers(0, 2**31 - 1),
)  # fmt: skip
notifications = st.builds(
    MatchNotification, _text, _text, _text, _text, _time,
    st.lists(st.builds(MatchedEvent, _text, _text, _text, st.sampled_from(EventType), _time),
             max_size=3).map(tuple),
    st.floats(allow_nan=False), _text, _sealed,
)  # fmt: skip
envelopes = st.builds(
    SignedEnvelope, _text, _text, st.integers(0, 2**64 - 1), st.binary(max_size=200),
    st.binary(max_size=64),
)  # fmt: skip
audits = st.builds(
    AuditRecord, _text, _text, _long, st.sampled_from(AuditKind), _time, _text,
    st.none() | st.sampled_from(Outcome), _ids, _ids, _ids, _ids, st.none() | _text,
    st.binary(max_size=32), st.binary(max_size=32), st.binary(max_size=64),
)  # fmt: skip
rejections = st.builds(
    RejectedRecord, _text, _text, st.integers(-(2**31), 2**31 - 1), _long, _text, _text, _time,
    st.none() | _text, st.none() | _text,
)  # fmt: skip
records = st.one_of(events, consents, notifications, audits, rejections, envelopes)
signed_records = st.one_of(events, consents, notifications)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(records)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_every_record_type_round_trips_exactly_in_both_framings(record):
    assert CODEC.decode(CODEC.encode(record)) == record
    framed = CONFLUENT.encode(record)
    assert framed[:1] == b"\x00"
    assert CONFLUENT.decode(framed) == record
    assert CODEC.decode_as(CODEC.encode(record), type(record)) == record


def _micros(value: object) -> object:
    if isinstance(value, datetime):
        return (value - EPOCH) // timedelta(microseconds=1)
    if isinstance(value, dict):
        return {k: _micros(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_micros(v) for v in value]
    return value


_REFERENCE = {
    (name, version.version): avro.schema.Parse(json.dumps(version.inlined))
    for name, versions in load_versions().items()
    for version in versions
}


@given(signed_records)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_an_envelope_body_is_plain_avro_that_any_implementation_reproduces(record):
    """The signed body is schemaless Avro under the latest schema, nothing private to
    fedbroker: the reference implementation writes the same bytes, and the body
    decodes back to the record under the fingerprint it names."""
    name, datum = to_datum(record)
    latest = load_versions()[name][-1]
    fingerprint, body = CODEC.encode_body(record)
    assert fingerprint == latest.fingerprint
    assert schemaless_reader(io.BytesIO(body), latest.parsed) == schemaless_reader(
        io.BytesIO(_write(latest, datum)), latest.parsed
    )
    buffer = io.BytesIO()
    writer = avro.io.DatumWriter(_REFERENCE[(name, latest.version)])
    writer.write(_micros(schemaless_reader(io.BytesIO(body), latest.parsed)),
                 avro.io.BinaryEncoder(buffer))  # fmt: skip
    assert body == buffer.getvalue()
    assert CODEC.decode_body(fingerprint, body, type(record)) == record


def test_bytes_of_an_older_major_line_are_refused_by_name():
    """Release 0.2.0 broke the wire once (CHANGELOG.md): a v2 event is not half-read
    into a v3 record, it is ``unknown-schema``, framed or as an envelope body."""
    import struct

    import pytest

    v2 = load_versions()["CitizenEvent"][1]
    assert v2.version == 2
    datum = {**to_datum(typical_event())[1], "signature": b"s" * 64}
    del datum["encoding"]
    body = _write(v2, datum)
    with pytest.raises(UnknownSchema):
        CODEC.decode(b"\xc3\x01" + struct.pack("<Q", v2.fingerprint) + body)
    with pytest.raises(UnknownSchema):
        CODEC.decode_body(v2.fingerprint, body, type(typical_event()))


def _write(version, datum) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    schemaless_writer(out, version.parsed, datum)
    return out.getvalue()
