"""Released record versions keep their fingerprints when a nested type gains a version."""

from __future__ import annotations

import io
import json
from pathlib import Path

from fastavro import schemaless_reader, schemaless_writer

from schemas import check_compatibility, load_versions

_ENUM = {"type": "enum", "name": "Colour", "namespace": "t", "doc": "c", "default": "UNKNOWN"}


def _parcel(pins: dict[str, int] | None, *extra: dict[str, object]) -> dict[str, object]:
    schema: dict[str, object] = {
        "type": "record", "name": "Parcel", "namespace": "t", "doc": "p",
        "fields": [{"name": "colour", "type": "t.Colour", "doc": "c"}, *extra],
    }  # fmt: skip
    if pins:
        schema["fedbroker.nested"] = pins
    return schema


def _write(root: Path, name: str, version: int, schema: object) -> None:
    (root / name).mkdir(exist_ok=True)
    (root / name / f"v{version}.avsc").write_text(json.dumps(schema))


def test_nested_type_versions_are_pinned(tmp_path: Path):
    before, after = tmp_path / "before", tmp_path / "after"
    for root in (before, after):
        root.mkdir()
        _write(root, "Colour", 1, {**_ENUM, "symbols": ["RED", "UNKNOWN"]})
        _write(root, "Parcel", 1, _parcel(None))
    _write(after, "Colour", 2, {**_ENUM, "symbols": ["RED", "UNKNOWN", "GREEN"]})
    note = {"name": "note", "type": ["null", "string"], "default": None, "doc": "n"}
    _write(after, "Parcel", 2, _parcel({"Colour": 2}, note))

    old = load_versions(before.resolve())["Parcel"]
    new = load_versions(after.resolve())["Parcel"]
    assert new[0].fingerprint == old[0].fingerprint  # v1 still means Colour v1
    assert new[1].fingerprint != new[0].fingerprint
    assert check_compatibility(after.resolve()) == []

    # v1 (RED, UNKNOWN) reads v2's GREEN as the enum default.
    out = io.BytesIO()
    schemaless_writer(out, new[1].parsed, {"colour": "GREEN", "note": None})
    out.seek(0)
    assert schemaless_reader(out, new[1].parsed, new[0].parsed) == {"colour": "UNKNOWN"}


def test_repository_records_are_inlined_at_version_one():
    for versions in load_versions().values():
        assert versions[0].version == 1


def test_reference_implementation_resolves_the_compatible_fixture_both_ways():
    """avro-python3 agrees with fastavro on v1 <-> v2 resolution of the fixture."""
    import avro.io
    import avro.schema

    from schemas._compatibility import sample_datum

    root = (Path(__file__).resolve().parent / "fixtures" / "compatible").resolve()
    v1, v2 = load_versions(root)["Parcel"]
    for writer, reader in ((v1, v2), (v2, v1)):
        datum = sample_datum(writer.inlined)
        out = io.BytesIO()
        schemaless_writer(out, writer.parsed, datum)
        expected = schemaless_reader(io.BytesIO(out.getvalue()), writer.parsed, reader.parsed)
        ref = avro.io.DatumReader(
            avro.schema.Parse(json.dumps(writer.inlined)),
            avro.schema.Parse(json.dumps(reader.inlined)),
        )
        got = ref.read(avro.io.BinaryDecoder(io.BytesIO(out.getvalue())))
        assert got["colour"] == expected["colour"]
        assert got["labels"] == expected["labels"]
        assert got.get("note") == expected.get("note")
