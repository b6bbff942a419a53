"""Why a message failed to decode: a bounds-checked walk of the writer schema.

fastavro reports corrupt input as whatever went wrong inside it (an ``EOFError``
for a negative length, for example), which is not the reason an operator needs.
This walker runs only after fastavro has failed, so the hot path pays nothing:
it reads the same bytes under the same writer schema, checking every length and
count against the bytes that remain, and names the first fault it finds.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from schemas._errors import BadLength, DecodeError, InvalidUtf8, TruncatedMessage

__all__ = ["diagnose"]

_NAMESPACE = "uk.gov.fedbroker"
_FIXED_SIZES = {"boolean": 1, "float": 4, "double": 8}


def _full(schema: Mapping[str, Any]) -> str:
    name = str(schema["name"])
    return name if "." in name else f"{schema.get('namespace', _NAMESPACE)}.{name}"


def _collect(schema: Any, named: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, named)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            named[_full(schema)] = schema
        if kind == "record":
            for field in schema["fields"]:
                _collect(field["type"], named)
        elif kind == "array":
            _collect(schema["items"], named)
        elif kind == "map":
            _collect(schema["values"], named)
        elif isinstance(kind, dict | list):
            _collect(kind, named)


class _Walker:
    def __init__(self, data: bytes, pos: int, named: Mapping[str, Any], limit: int) -> None:
        self.data, self.pos, self.named, self.limit = data, pos, named, limit

    def _beyond(self, size: int, what: str) -> DecodeError:
        """Past the end: a cut message if the size is plausible, else a forged length."""
        if size > self.limit:
            return BadLength(f"{what} length larger than any message")
        return TruncatedMessage(f"message ends inside a {what}")

    def _long(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.data):
                raise TruncatedMessage("message ends inside a number")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
            if shift > 63:
                raise BadLength("a number is longer than 10 bytes")

    def _take(self, size: int, what: str) -> bytes:
        if size < 0:
            raise BadLength(f"negative {what} length")
        if size > len(self.data) - self.pos:
            raise self._beyond(size, what)
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def _count(self, what: str) -> int:
        count = self._long()
        if count < 0:
            self._long()  # block size in bytes follows a negative count
            count = -count
        if count > len(self.data) - self.pos:
            raise self._beyond(count, f"{what} count")
        return count

    def walk(self, schema: Any) -> None:
        if isinstance(schema, str) and schema in self.named:
            schema = self.named[schema]
        if isinstance(schema, list):
            index = self._long()
            if not 0 <= index < len(schema):
                raise BadLength("union branch index out of range")
            self.walk(schema[index])
            return
        kind = schema if isinstance(schema, str) else schema["type"]
        if isinstance(kind, dict | list):
            self.walk(kind)
        elif kind in ("int", "long"):
            self._long()
        elif kind in _FIXED_SIZES:
            self._take(_FIXED_SIZES[kind], kind)
        elif kind == "bytes":
            self._take(self._long(), "bytes")
        elif kind == "string":
            try:
                self._take(self._long(), "string").decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidUtf8("a string is not valid UTF-8") from exc
        elif kind == "fixed":
            self._take(schema["size"], "fixed")
        elif kind == "enum":
            if not 0 <= self._long() < len(schema["symbols"]):
                raise BadLength("enum symbol index out of range")
        elif kind == "record":
            for field in schema["fields"]:
                self.walk(field["type"])
        elif kind in ("array", "map"):
            self._blocks(schema, kind)
        elif isinstance(kind, str) and kind in self.named:
            self.walk(self.named[kind])

    def _blocks(self, schema: Mapping[str, Any], kind: str) -> None:
        while count := self._count(kind):
            for _ in range(count):
                if kind == "map":
                    self.walk("string")
                    self.walk(schema["values"])
                else:
                    self.walk(schema["items"])


def diagnose(schema: Any, data: bytes, start: int, limit: int) -> DecodeError | None:
    """The typed error for a message fastavro could not read, or None if none is found.

    A length or count past the end is ``truncated`` when it is at most ``limit``
    (the codec's size limit: a message cut short) and ``bad-length`` beyond it.
    """
    named: dict[str, Any] = {}
    _collect(schema, named)
    try:
        _Walker(data, start, named, limit).walk(schema)
    except DecodeError as exc:
        return exc
    except (RecursionError, struct.error, KeyError, TypeError):
        return None
    return None
