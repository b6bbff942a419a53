"""Full compatibility between every released version of every schema.

A connector on last year's release and a broker on this year's must still
understand each other, in both directions. So each newer version must read data
written by every earlier one (backward) and every earlier one must read data
written by the newer (forward). Both are proved by real round trips through
fastavro's schema resolution, and the Avro rules that make them hold are checked
by name so that a failure says which field to fix.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from schemas._registry import AVRO_DIR, SchemaVersion, load_versions, major_lines
from schemas._resolution import house_rules, named_types, resolution_problems

__all__ = ["RECORDED_BREAKS", "CompatibilityProblem", "check_compatibility", "sample_datum"]

RECORDED_BREAKS: frozenset[str] = frozenset({"0.2.0"})
"""Releases allowed to open a new major line (``"fedbroker.major"`` in a schema).

One entry, the 0.2.0 wire release of DESIGN section 10, recorded in CHANGELOG.md.
A version marked with any other release is a problem: a break is a decision, not
a way round a failing check."""


@dataclass(frozen=True, slots=True)
class CompatibilityProblem:
    """One reason two versions of a schema cannot read each other's data."""

    schema: str
    older: int
    newer: int
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.schema} v{self.older} -> v{self.newer}: field '{self.field}': {self.problem}"


def sample_datum(schema: Any, named: dict[str, Any] | None = None) -> Any:
    """A small valid datum for an inlined schema, exercising every field.

    A named type is defined at its first use and referred to by full name after
    that (as Avro requires), so definitions are remembered as they are met.
    """
    named = {} if named is None else named
    if isinstance(schema, list):
        branches = [s for s in schema if s != "null"]
        return sample_datum(branches[0], named) if branches else None
    if isinstance(schema, str):
        primitives = {
            "null": None, "boolean": True, "int": 1, "long": 1, "float": 1.0, "double": 1.0,
            "bytes": b"x", "string": "x",
        }  # fmt: skip
        return primitives[schema] if schema in primitives else sample_datum(named[schema], named)
    kind = schema["type"]
    if "name" in schema and kind in ("record", "enum", "fixed"):
        name = schema["name"]
        full = name if "." in name else f"{schema.get('namespace', 'uk.gov.fedbroker')}.{name}"
        named.setdefault(full, schema)
    if schema.get("logicalType", "").startswith("timestamp"):
        return datetime(2026, 1, 1, tzinfo=UTC)
    if kind == "record":
        return {f["name"]: sample_datum(f["type"], named) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "fixed":
        return bytes(schema["size"])
    if kind == "array":
        return [sample_datum(schema["items"], named)]
    if kind == "map":
        return {"k": sample_datum(schema["values"], named)}
    return sample_datum(kind, named)


def _round_trip(writer: SchemaVersion, reader: SchemaVersion) -> str | None:
    out = io.BytesIO()
    try:
        schemaless_writer(out, writer.parsed, sample_datum(writer.inlined))
        out.seek(0)
        schemaless_reader(out, writer.parsed, reader.parsed)
    except Exception as exc:  # noqa: BLE001 - any failure to resolve is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def _fields(schema: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {f["name"]: f for f in schema.get("fields", [])}


def _enum_problems(old: Any, new: Any, path: str) -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict) and old.get("type") == "enum":
        if new["symbols"][: len(old["symbols"])] != old["symbols"]:
            yield f"{path}: enum symbols may only be appended"
        if "default" not in new:
            yield f"{path}: enum has no default symbol"


def _pair_problems(old: SchemaVersion, new: SchemaVersion) -> Iterator[CompatibilityProblem]:
    def problem(field: str, text: str) -> CompatibilityProblem:
        return CompatibilityProblem(new.name, old.version, new.version, field, text)

    old_fields, new_fields = _fields(old.inlined), _fields(new.inlined)
    for name, field in new_fields.items():
        if name not in old_fields and "default" not in field:
            yield problem(name, "added without a default (old data cannot be read)")
    for name, field in old_fields.items():
        if name not in new_fields and "default" not in field:
            yield problem(name, "removed but has no default in the older version")
    for name in old_fields.keys() & new_fields.keys():
        for text in _enum_problems(old_fields[name]["type"], new_fields[name]["type"], name):
            yield problem(name, text.split(": ", 1)[1])
    yield from _deep_problems(old, new, problem)
    backward, forward = _round_trip(old, new), _round_trip(new, old)
    for direction, failure in (("newer reading older", backward), ("older reading newer", forward)):
        if failure is not None:
            yield problem("(record)", f"{direction} fails: {failure}")


def _deep_problems(
    old: SchemaVersion, new: SchemaVersion, problem: Any
) -> Iterator[CompatibilityProblem]:
    """The resolution rules at every depth, both directions; top-level add/remove is above."""
    for direction, writer, reader in (
        ("newer reading older", old, new),
        ("older reading newer", new, old),
    ):
        for path, why in resolution_problems(writer.inlined, reader.inlined):
            if "." in path or "[" in path or "{" in path or "default" not in why:
                yield problem(path or "(record)", f"{direction}: {why}")
    onamed, nnamed = named_types(old.inlined), named_types(new.inlined)
    direct = [f["type"] for f in old.inlined.get("fields", [])]  # checked by _enum_problems
    for name, definition in onamed.items():
        if definition.get("type") == "enum" and name in nnamed and definition not in direct:
            before, after = definition["symbols"], nnamed[name]["symbols"]
            if after[: len(before)] != before:
                yield problem(name, "enum symbols may only be appended")


def check_compatibility(root: Path = AVRO_DIR) -> list[CompatibilityProblem]:
    """Every problem between any two released versions of each schema under ``root``.

    Checked: the round trips both ways on sample data, the resolution rules at
    every depth (naming the field path), enum symbols only appended, and on
    every version the house rules (each field has a doc, each enum a default).
    Pairs are compared within a major line only; a version that opens a line
    must name a release in ``RECORDED_BREAKS``.
    """
    problems: list[CompatibilityProblem] = list(_enum_versions(root))
    for versions in load_versions(root).values():
        for sv in versions:
            for path, why in house_rules(sv.inlined):
                problems.append(CompatibilityProblem(sv.name, sv.version, sv.version, path, why))
            if sv.opens_major is not None and sv.opens_major not in RECORDED_BREAKS:
                problems.append(
                    CompatibilityProblem(
                        sv.name, sv.version, sv.version, "(record)",
                        f"opens major line {sv.opens_major!r}, which is not a recorded break",
                    )
                )  # fmt: skip
        for line in major_lines(versions):
            for i, older in enumerate(line):
                for newer in line[i + 1 :]:
                    problems.extend(_pair_problems(older, newer))
    return problems


def _enum_versions(root: Path) -> Iterator[CompatibilityProblem]:
    """Enums are released on their own; each version may only append symbols."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
        schemas = [json.loads(f.read_text()) for f in files]
        if not schemas or schemas[0].get("type") != "enum":
            continue
        for number, (older, newer) in enumerate(zip(schemas, schemas[1:], strict=False), 1):
            for text in _enum_problems(older, newer, "symbols"):
                problem = text.split(": ", 1)[1]
                yield CompatibilityProblem(folder.name, number, number + 1, "symbols", problem)
