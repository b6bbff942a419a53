"""Property tests over every record type: exact round trips, reference-identical bytes."""

from __future__ import annotations

import io
import json
from dataclasses import replace
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
    canonical_bytes,
    canonical_version,
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
    st.sampled_from(ConsentState), _time, _time, st.integers(0, 2**31 - 1), st.binary(max_size=64),
)  # fmt: skip
notifications = st.builds(
    MatchNotification, _text, _text, _text, _ids, _time,
    st.lists(st.builds(MatchedEvent, _text, _text, _text, st.sampled_from(EventType), _time),
             max_size=3).map(tuple),
    st.floats(allow_nan=False), _text, _sealed, st.binary(max_size=64),
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
records = st.one_of(events, consents, notifications, audits, rejections)
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


@given(records)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_canonical_bytes_equal_the_reference_implementations_bytes(record):
    """canonical_bytes is plain Avro: any Avro implementation reproduces it exactly,
    under the version ``canonical_version`` names, and loses nothing of the record."""
    blank = record if isinstance(record, RejectedRecord) else replace(record, signature=b"")
    if isinstance(blank, AuditRecord):
        blank = replace(blank, record_hash=b"")
    name, datum = to_datum(blank)
    chosen = canonical_version(record)
    latest = load_versions()[name][-1]
    ours = canonical_bytes(record)
    assert schemaless_reader(io.BytesIO(ours), chosen.parsed, latest.parsed) == datum
    shaped = schemaless_reader(io.BytesIO(ours), chosen.parsed)
    buffer = io.BytesIO()
    writer = avro.io.DatumWriter(_REFERENCE[(name, chosen.version)])
    writer.write(_micros(shaped), avro.io.BinaryEncoder(buffer))
    assert ours == buffer.getvalue()


def test_a_record_using_nothing_new_is_signed_as_the_oldest_release_wrote_it():
    """Councils upgrade one at a time: a v1 connector's signature must verify at a
    broker whose latest schemas are newer, and the reverse."""
    from schemas import SealedPayload

    event = typical_event()
    plain = replace(event, sealed=(SealedPayload("r", "a", b"e", b"c"),))
    listed = replace(event, sealed=(SealedPayload("r", "a", b"e", b"c", ("postcode",)),))
    assert canonical_version(plain).version == 1
    assert canonical_version(listed).version == 2
    v1 = load_versions()["CitizenEvent"][0]
    _, datum = to_datum(replace(plain, signature=b""))
    assert canonical_bytes(plain) == _write(v1, datum)
    assert canonical_bytes(listed) != canonical_bytes(plain)


def _write(version, datum) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    schemaless_writer(out, version.parsed, datum)
    return out.getvalue()


@given(audits, st.binary(max_size=32), st.binary(max_size=64))
@settings(max_examples=30)
def test_audit_canonical_bytes_ignore_hash_and_signature(record, other_hash, other_signature):
    changed = replace(record, record_hash=other_hash, signature=other_signature)
    assert canonical_bytes(changed) == canonical_bytes(record)
