"""The resolution rules at depth: nested fields, enum order, docs, both directions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from schemas import check_compatibility
from schemas._resolution import house_rules, resolution_problems

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def _record(*fields: dict[str, object]) -> dict[str, object]:
    return {"type": "record", "name": "R", "namespace": "t", "doc": "d", "fields": list(fields)}


def test_nested_map_value_change_is_named_with_its_path():
    result = subprocess.run(
        [str(REPO / ".venv/bin/fedbroker"), "schemas", "check", "--root",
         str(FIXTURES / "incompatible")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Parcel v1 -> v2: field 'labels{}': newer reading older: type changed" in result.stderr
    assert "Parcel v1 -> v2: field 'colour': enum symbols may only be appended" in result.stderr


def test_compatible_parcel_appends_an_enum_symbol_and_an_optional_field():
    assert [p for p in check_compatibility(FIXTURES / "compatible") if p.schema == "Parcel"] == []


def test_narrowing_is_one_directional_but_full_compatibility_needs_both():
    wide = _record({"name": "n", "type": "long", "doc": "n"})
    narrow = _record({"name": "n", "type": "int", "doc": "n"})
    assert resolution_problems(narrow, wide) == []  # int data promotes to long
    assert resolution_problems(wide, narrow) == [
        ("n", "type changed from long to int (narrowed or incompatible)")
    ]


def test_nested_record_field_without_default_is_named():
    inner = {"type": "record", "name": "In", "fields": [{"name": "a", "type": "int"}]}
    inner2 = {**inner, "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "int"}]}
    old = _record({"name": "x", "type": {"type": "array", "items": inner}, "doc": "x"})
    new = _record({"name": "x", "type": {"type": "array", "items": inner2}, "doc": "x"})
    assert resolution_problems(old, new) == [
        ("x[].b", "absent from the writer and has no default in the reader")
    ]
    assert resolution_problems(new, old) == []


def test_unknown_enum_symbol_needs_a_reader_default():
    old = {"type": "enum", "name": "E", "symbols": ["A"]}
    new = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    assert resolution_problems(new, old)
    assert resolution_problems(new, {**old, "default": "A"}) == []


def test_logical_type_and_fixed_size_changes_are_caught():
    micros = _record({"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}})
    millis = _record({"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}})
    assert "logical type changed" in resolution_problems(micros, millis)[0][1]
    f32 = _record({"name": "f", "type": {"type": "fixed", "name": "F", "size": 32}})
    f16 = _record({"name": "f", "type": {"type": "fixed", "name": "F", "size": 16}})
    assert "fixed size changed" in resolution_problems(f32, f16)[0][1]


def test_union_reader_without_a_matching_branch():
    old = _record({"name": "u", "type": ["null", "string"]})
    new = _record({"name": "u", "type": ["null", "int"]})
    assert resolution_problems(old, new)[0][0] == "u"


def test_house_rules_want_docs_and_enum_defaults(tmp_path: Path):
    schema = _record(
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A"]}},
    )
    assert house_rules(schema) == [
        ("e", "field has no doc"),
        ("e", "enum t.E has no default symbol"),
    ]
    folder = tmp_path / "R"
    folder.mkdir()
    folder.joinpath("v1.avsc").write_text(json.dumps(schema))
    assert {p.field for p in check_compatibility(tmp_path)} == {"e"}
