"""The released Avro schemas on disk, every version, indexed by name and by fingerprint.

Layout: ``schemas/avro/<Name>/v<N>.avsc``, one named type per file. A record
refers to other named types by full name; loading inlines them (at version 1,
or the version the record pins in its ``"fedbroker.nested"`` map, e.g.
``{"EventType": 2}``), so each file stays one record and each released record
version keeps its fingerprint when a nested type gains a version. The
fingerprint is CRC-64-AVRO of the Parsing Canonical Form of the fully inlined
schema, as the single-object encoding requires.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

__all__ = [
    "AVRO_DIR",
    "MAJOR_MARK",
    "NAMESPACE",
    "NESTED_PINS",
    "SchemaVersion",
    "crc64_avro",
    "current_line",
    "load_versions",
    "major_lines",
]

AVRO_DIR = Path(__file__).resolve().parent / "avro"
NAMESPACE = "uk.gov.fedbroker"
_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _crc_table()


def crc64_avro(data: bytes) -> int:
    """The Rabin fingerprint the Avro specification calls CRC-64-AVRO."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One released version of one top-level schema, parsed and fingerprinted."""

    name: str
    version: int
    inlined: Mapping[str, Any]
    parsed: Any
    fingerprint: int
    opens_major: str | None = None
    """The release whose documented break this version opens (``"fedbroker.major"``)."""

    @property
    def full_name(self) -> str:
        return f"{NAMESPACE}.{self.name}"


def _inline(schema: Any, named: Mapping[str, Any], seen: set[str]) -> Any:
    """Replace references to named types with their definitions (first use only)."""
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            seen.add(schema)
            return _inline(named[schema], named, seen)
        return schema
    if isinstance(schema, list):
        return [_inline(s, named, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed"):
        seen.add(f"{schema.get('namespace', NAMESPACE)}.{schema['name']}")
    result = dict(schema)
    if kind == "record":
        result["fields"] = [
            {**field, "type": _inline(field["type"], named, seen)} for field in schema["fields"]
        ]
    elif kind == "array":
        result["items"] = _inline(schema["items"], named, seen)
    elif kind == "map":
        result["values"] = _inline(schema["values"], named, seen)
    elif isinstance(kind, dict | list) or (isinstance(kind, str) and kind in named):
        result["type"] = _inline(kind, named, seen)
    return result


NESTED_PINS = "fedbroker.nested"
MAJOR_MARK = "fedbroker.major"
"""A version carrying this key opens a new major line: it need not read or be read
by the versions before it. Only breaks recorded in ``_compatibility.RECORDED_BREAKS``
(and CHANGELOG.md) are accepted by ``check_compatibility``."""


def _pinned_named(root: Path, pins: Mapping[str, int]) -> dict[str, Any]:
    """Named types at the versions a record pins (``"fedbroker.nested"``), else v1.

    A released record version must keep its fingerprint for ever, so it cannot
    follow the newest version of a type it refers to: when ``EventType`` gains a
    v2, ``CitizenEvent`` v1 still means ``EventType`` v1, and a new
    ``CitizenEvent`` v2 pins ``{"EventType": 2}``. Pins apply transitively.
    """
    named: dict[str, Any] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        chosen = folder / f"v{pins.get(folder.name, 1)}.avsc"
        if not chosen.exists():
            chosen = min(folder.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
        schema = json.loads(chosen.read_text())
        named[f"{schema.get('namespace', NAMESPACE)}.{schema['name']}"] = schema
    return named


def _version(root: Path, path: Path) -> SchemaVersion:
    schema = json.loads(path.read_text())
    named = _pinned_named(root, schema.get(NESTED_PINS, {}))
    inlined = _inline(schema, named, set())
    canonical = to_parsing_canonical_form(inlined)
    return SchemaVersion(
        name=schema["name"],
        version=int(path.stem[1:]),
        inlined=inlined,
        # Parsed once with fastavro's hint: without it every read and write parses
        # the schema again (about two thirds of an event's encoding time, issue 12).
        parsed=parse_schema(inlined),
        fingerprint=crc64_avro(canonical.encode("utf-8")),
        opens_major=schema.get(MAJOR_MARK),
    )


def major_lines(versions: tuple[SchemaVersion, ...]) -> list[tuple[SchemaVersion, ...]]:
    """A record's versions split where a version opens a new major line, oldest first."""
    lines: list[list[SchemaVersion]] = []
    for version in versions:
        if not lines or version.opens_major is not None:
            lines.append([])
        lines[-1].append(version)
    return [tuple(line) for line in lines]


def current_line(versions: tuple[SchemaVersion, ...]) -> tuple[SchemaVersion, ...]:
    """The versions a current reader accepts: the latest major line."""
    return major_lines(versions)[-1]


@cache
def load_versions(root: Path = AVRO_DIR) -> Mapping[str, tuple[SchemaVersion, ...]]:
    """Every version of every record schema under ``root``, oldest first."""
    versions: dict[str, tuple[SchemaVersion, ...]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
        if json.loads(files[0].read_text()).get("type") != "record":
            continue
        versions[folder.name] = tuple(_version(root, f) for f in files)
    return versions
