"""Interoperability with Apache Avro's reference implementation (avro-python3).

For every record schema, bytes written by fastavro are read by avro-python3 and
bytes written by avro-python3 are read by fastavro: unions, enums, maps, arrays,
bytes, fixed and timestamps included.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import avro.io
import avro.schema
import pytest
from fastavro import schemaless_reader, schemaless_writer

from schemas import AVRO_DIR, load_versions
from schemas._convert import to_datum
from tests.schemas.conftest import every_record

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: Any) -> Any:
    """avro-python3 1.10 carries timestamp-micros as the bare long: compare on the wire value."""
    if isinstance(value, datetime):
        return (value - EPOCH) // timedelta(microseconds=1)
    if isinstance(value, dict):
        return {k: _micros(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_micros(v) for v in value]
    return value


LATEST = {name: versions[-1] for name, versions in load_versions(AVRO_DIR).items()}
RECORDS = every_record()


def _reference(name: str) -> avro.schema.Schema:
    return avro.schema.Parse(json.dumps(LATEST[name].inlined))


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_fastavro_bytes_read_by_reference(record):
    name, datum = to_datum(record)
    out = io.BytesIO()
    schemaless_writer(out, LATEST[name].parsed, datum)
    reader = avro.io.DatumReader(_reference(name))
    decoded = reader.read(avro.io.BinaryDecoder(io.BytesIO(out.getvalue())))
    assert decoded == _micros(datum)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_reference_bytes_read_by_fastavro(record):
    name, datum = to_datum(record)
    buffer = io.BytesIO()
    avro.io.DatumWriter(_reference(name)).write(_micros(datum), avro.io.BinaryEncoder(buffer))
    buffer.seek(0)
    assert schemaless_reader(buffer, LATEST[name].parsed, LATEST[name].parsed) == datum


def test_every_record_schema_is_covered():
    assert {type(r).__name__ for r in RECORDS} == {
        "CitizenEvent", "ConsentRecord", "MatchNotification", "AuditRecord", "RejectedRecord",
        "SignedEnvelope",
    }  # fmt: skip
