"""The Avro specification's schema-resolution rules, walked field by field.

The round trips in ``_compatibility`` prove that two versions interoperate on
sample data; this walk explains *where* they do not, at any depth (a field of a
nested record, the items of an array, a branch of a union), and covers cases a
sample may miss: a narrowed type, a changed logical type or fixed size, an enum
symbol a reader cannot map, a renamed named type. Also the house rules that
Avro does not enforce: every field has a ``doc``, every enum a ``default``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from schemas._registry import NAMESPACE

__all__ = ["house_rules", "named_types", "resolution_problems"]

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_NAMED = ("record", "enum", "fixed")


def _full(schema: Mapping[str, Any], space: str = NAMESPACE) -> str:
    """A named type's full name; without a namespace it takes the enclosing one."""
    name = str(schema["name"])
    return name if "." in name else f"{schema.get('namespace', space)}.{name}"


def named_types(
    schema: Any, named: dict[str, Any] | None = None, space: str = NAMESPACE
) -> dict[str, Any]:
    """Every named definition in an inlined schema, by full name."""
    named = {} if named is None else named
    if isinstance(schema, list):
        for branch in schema:
            named_types(branch, named, space)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in _NAMED:
            full = _full(schema, space)
            named[full] = schema
            space = full.rpartition(".")[0]
        if kind == "record":
            for field in schema["fields"]:
                named_types(field["type"], named, space)
        elif kind == "array":
            named_types(schema["items"], named, space)
        elif kind == "map":
            named_types(schema["values"], named, space)
        elif isinstance(kind, dict | list):
            named_types(kind, named, space)
    return named


def _deref(schema: Any, named: Mapping[str, Any]) -> Any:
    while True:
        if isinstance(schema, str) and schema in named:
            schema = named[schema]
        elif isinstance(schema, str) and f"{NAMESPACE}.{schema}" in named:
            schema = named[f"{NAMESPACE}.{schema}"]
        elif isinstance(schema, dict) and (
            isinstance(schema.get("type"), dict | list) or schema.get("type") in named
        ):
            schema = schema["type"]
        else:
            return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    return str(schema["type"]) if isinstance(schema, dict) else str(schema)


def _logical(schema: Any) -> str | None:
    return schema.get("logicalType") if isinstance(schema, dict) else None


class _Resolver:
    def __init__(self, wnamed: Mapping[str, Any], rnamed: Mapping[str, Any]) -> None:
        self.wnamed, self.rnamed = wnamed, rnamed
        self.seen: set[tuple[str, str]] = set()

    def _reads(self, writer: Any, reader: Any, path: str) -> bool:
        return not list(self.walk(writer, reader, path))

    def walk(self, writer: Any, reader: Any, path: str) -> Iterator[tuple[str, str]]:
        w, r = _deref(writer, self.wnamed), _deref(reader, self.rnamed)
        wk, rk = _kind(w), _kind(r)
        if wk == "union":
            for branch in w:
                yield from self.walk(branch, r, path)
        elif rk == "union":
            if not any(self._reads(w, b, path) for b in r):
                yield path, f"no branch of the reader's union reads a {wk}"
        elif wk in _NAMED and wk == rk and _full(w) != _full(r):
            yield path, f"named type renamed from {_full(w)} to {_full(r)}"
        elif wk == "record" and rk == "record":
            yield from self._record(w, r, path)
        elif wk == "enum" and rk == "enum":
            unknown = [s for s in w["symbols"] if s not in r["symbols"]]
            if unknown and "default" not in r:
                yield path, f"enum symbols {unknown} unknown to the reader, which has no default"
        elif wk == "fixed" and rk == "fixed":
            if w["size"] != r["size"]:
                yield path, f"fixed size changed from {w['size']} to {r['size']}"
        elif wk == "array" and rk == "array":
            yield from self.walk(w["items"], r["items"], f"{path}[]")
        elif wk == "map" and rk == "map":
            yield from self.walk(w["values"], r["values"], f"{path}{{}}")
        elif wk == rk or rk in _PROMOTIONS.get(wk, set()):
            if _logical(w) != _logical(r):
                yield path, f"logical type changed from {_logical(w)} to {_logical(r)}"
        else:
            yield path, f"type changed from {wk} to {rk} (narrowed or incompatible)"

    def _record(
        self, w: Mapping[str, Any], r: Mapping[str, Any], path: str
    ) -> Iterator[tuple[str, str]]:
        key = (_full(w), path)
        if key in self.seen:
            return
        self.seen.add(key)
        wfields = {f["name"]: f for f in w["fields"]}
        for field in r["fields"]:
            sub = f"{path}.{field['name']}" if path else field["name"]
            match = wfields.get(field["name"])
            for alias in field.get("aliases", ()):
                match = match or wfields.get(alias)
            if match is None:
                if "default" not in field:
                    yield sub, "absent from the writer and has no default in the reader"
            else:
                yield from self.walk(match["type"], field["type"], sub)


def resolution_problems(writer: Any, reader: Any) -> list[tuple[str, str]]:
    """(field path, why) for each place a reader schema cannot read a writer's data."""
    resolver = _Resolver(named_types(writer), named_types(reader))
    return list(resolver.walk(writer, reader, ""))


def house_rules(schema: Any) -> list[tuple[str, str]]:
    """(field path, why) for each field without a doc and each enum without a default."""
    named = named_types(schema)
    full = {id(definition): name for name, definition in named.items()}
    seen: set[str] = set()
    found: list[tuple[str, str]] = []

    def walk(s: Any, path: str) -> None:
        s = _deref(s, named)
        kind = _kind(s)
        if kind == "union":
            for branch in s:
                walk(branch, path)
        elif kind in _NAMED and full[id(s)] in seen:
            return
        elif kind == "record":
            seen.add(full[id(s)])
            for field in s["fields"]:
                sub = f"{path}.{field['name']}" if path else field["name"]
                if not field.get("doc"):
                    found.append((sub, "field has no doc"))
                walk(field["type"], sub)
        elif kind == "enum":
            seen.add(full[id(s)])
            if "default" not in s:
                found.append((path, f"enum {full[id(s)]} has no default symbol"))
        elif kind == "array":
            walk(s["items"], f"{path}[]")
        elif kind == "map":
            walk(s["values"], f"{path}{{}}")

    walk(schema, "")
    return found
