"""How one council source's columns become a citizen event or a consent record.

A council writes one mapping YAML per source (its column names, date formats,
which event type a row is). It is checked once, at start, so that a typo is a
clear refusal naming the key rather than thousands of quarantined rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from connectors._errors import MappingInvalid
from schemas import EVENT_CATALOGUE, ConsentState, EventType

__all__ = [
    "DEFAULT_TIMEZONE",
    "IDENTITY_FIELDS",
    "ColumnOrFixed",
    "RecordKind",
    "SourceMapping",
    "load_mapping",
    "parse_mapping",
]

RecordKind = Literal["event", "consent"]

IDENTITY_FIELDS = frozenset(
    {"given_name", "family_name", "date_of_birth", "postcode", "uprn", "nhs_number", "nino"}
)
DEFAULT_DATE_FORMAT = "%Y-%m-%d"
DEFAULT_TIMESTAMP_FORMAT = "iso"
#: Where a source time without an offset was written: council systems keep wall-clock time.
DEFAULT_TIMEZONE = ZoneInfo("Europe/London")
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ColumnOrFixed:
    """A value that is either fixed for the source or read from a column (and mapped)."""

    column: str | None = None
    fixed: str | None = None
    values: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    format: str | None = None

    def read(self, row: Mapping[str, str | None]) -> str | None:
        if self.column is None:
            return self.fixed
        raw = row.get(self.column)
        if raw is None or raw.strip() == "":
            return None
        raw = raw.strip()
        return self.values.get(raw, raw) if self.values else raw


@dataclass(frozen=True, slots=True)
class SourceMapping:
    """The compiled mapping of one source; see ``docs/concepts/mapping.md`` for the YAML."""

    system: str
    record: RecordKind
    identity: Mapping[str, str]
    extra: Mapping[str, str]
    free_text: frozenset[str]
    date_of_birth_format: tuple[str, ...]
    reference: str
    occurred_at: ColumnOrFixed
    event_type: ColumnOrFixed | None = None
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    payload: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    scope: ColumnOrFixed | None = None
    state: ColumnOrFixed | None = None
    two_digit_year_pivot: int | None = None
    timezone: ZoneInfo = DEFAULT_TIMEZONE

    @property
    def columns(self) -> frozenset[str]:
        """Every source column the mapping reads (a file must have them all)."""
        named = [*self.identity.values(), *self.extra.values(), self.reference]
        named += [*self.attributes.values(), *self.payload.values()]
        for value in (self.occurred_at, self.event_type, self.scope, self.state):
            if value is not None and value.column is not None:
                named.append(value.column)
        return frozenset(named)


def load_mapping(path: Path) -> SourceMapping:
    """Read and check a mapping file.

    Raises:
        MappingInvalid: the file is missing, not YAML, or a key is wrong; the
            message names the file and the key.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MappingInvalid(f"{path}: cannot read mapping ({type(exc).__name__})") from exc
    return parse_mapping(document, origin=str(path))


def parse_mapping(document: Any, *, origin: str = "mapping") -> SourceMapping:
    """Compile an authored mapping (a parsed YAML document) into a ``SourceMapping``."""
    check = _Checker(origin)
    doc = check.mapping(document, "(top level)")
    known = {
        "system", "record", "identity", "date_of_birth_format", "free_text", "reference",
        "occurred_at", "event_type", "attributes", "payload", "scope", "state",
        "two_digit_year_pivot", "timezone",
    }  # fmt: skip
    for key in doc:
        if key not in known:
            check.fail(str(key), f"unknown key (expected one of {sorted(known)})")
    record = doc.get("record", "event")
    if record not in ("event", "consent"):
        check.fail("record", "must be 'event' or 'consent'")
    identity_doc = dict(check.mapping(doc.get("identity"), "identity"))
    extra = check.str_map(identity_doc.pop("extra", {}), "identity.extra")
    for name in extra:  # read under an identifier's name, it replaced that identifier's column
        if name in IDENTITY_FIELDS:
            check.fail(f"identity.extra.{name}", "is an identifier's name: map it under identity")
    identity = check.str_map(identity_doc, "identity")
    for name in identity:
        if name not in IDENTITY_FIELDS:
            check.fail(f"identity.{name}", f"unknown identifier (use {sorted(IDENTITY_FIELDS)})")
    if not identity:
        check.fail("identity", "name at least one identifier column")
    free_text = doc.get("free_text", [])
    if not isinstance(free_text, list) or not all(isinstance(f, str) for f in free_text):
        check.fail("free_text", "must be a list of identifier names")
    for name in free_text:
        if name not in identity and name not in extra:
            check.fail(f"free_text.{name}", "is not an identifier named under identity")
    mapping = SourceMapping(
        system=check.text(doc.get("system"), "system"),
        record=record,
        identity=MappingProxyType(identity),
        extra=MappingProxyType(extra),
        free_text=frozenset(free_text),
        date_of_birth_format=check.formats(
            doc.get("date_of_birth_format", DEFAULT_DATE_FORMAT), "date_of_birth_format"
        ),
        two_digit_year_pivot=check.pivot(doc.get("two_digit_year_pivot"), "two_digit_year_pivot"),
        reference=check.text(doc.get("reference"), "reference"),
        occurred_at=check.column_or_fixed(doc.get("occurred_at"), "occurred_at"),
        timezone=check.timezone(doc.get("timezone"), "timezone"),
        attributes=MappingProxyType(check.str_map(doc.get("attributes", {}), "attributes")),
        payload=MappingProxyType(check.str_map(doc.get("payload", {}), "payload")),
    )
    if record == "event":
        return _with_event_type(mapping, doc, check)
    return _with_consent(mapping, doc, check)


def _with_event_type(
    mapping: SourceMapping, doc: Mapping[str, Any], check: _Checker
) -> SourceMapping:
    event_type = check.column_or_fixed(doc.get("event_type"), "event_type")
    possible = [event_type.fixed] if event_type.column is None else list(event_type.values.values())
    types = []
    for value in possible:
        try:
            types.append(EventType(value or ""))
        except ValueError:
            check.fail("event_type", f"{value!r} is not an event type in the catalogue")
    if event_type.column is not None and not event_type.values:
        check.fail("event_type.values", "map the column's codes to catalogue event types")
    for name in mapping.attributes:
        if not any(name in EVENT_CATALOGUE[t].attributes for t in types):
            check.fail(f"attributes.{name}", "is not an attribute of the mapped event type(s)")
    # Attributes travel in clear: a column the mapping itself treats as personal
    # (an identifier, the local reference, a sealed field) must not be one.
    personal = {*mapping.identity.values(), *mapping.extra.values(), mapping.reference,
                *mapping.payload.values()}  # fmt: skip
    for name, column in sorted(mapping.attributes.items()):
        if column in personal:
            check.fail(f"attributes.{name}", "reads a column mapped as an identifier, the "
                       "reference or a payload field, and attributes travel in clear")  # fmt: skip
    for name in mapping.payload:
        if not any(name in EVENT_CATALOGUE[t].payload_fields for t in types):
            check.fail(f"payload.{name}", "is not a payload field of the mapped event type(s)")
    return replace(mapping, event_type=event_type)


def _with_consent(mapping: SourceMapping, doc: Mapping[str, Any], check: _Checker) -> SourceMapping:
    scope = check.column_or_fixed(doc.get("scope"), "scope")
    state = check.column_or_fixed(doc.get("state"), "state")
    states = [state.fixed] if state.column is None else list(state.values.values())
    for value in states:
        if value not in {s.value for s in ConsentState}:
            check.fail("state", f"{value!r} is not a consent state")
    return replace(mapping, scope=scope, state=state)


class _Checker:
    """Raises ``MappingInvalid`` naming the file and the offending key."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, key: str, problem: str) -> NoReturn:
        raise MappingInvalid(f"{self.origin}: {key}: {problem}")

    def mapping(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(key, "must be a mapping")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "is required and must be text")
        return str(value)

    def formats(self, value: Any, key: str) -> tuple[str, ...]:
        """One strptime format or a list of them, tried in order."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            self.fail(key, "must be a strptime format or a list of them")
        for index, item in enumerate(items):
            self.text(item, f"{key}[{index}]")
            if "%" not in item:
                self.fail(f"{key}[{index}]", "is not a strptime format (no % directive)")
        return tuple(items)

    def pivot(self, value: Any, key: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 99:
            self.fail(key, "must be a whole number from 0 to 99")
        return value

    def timezone(self, value: Any, key: str) -> ZoneInfo:
        if value is None:
            return DEFAULT_TIMEZONE
        try:
            return ZoneInfo(self.text(value, key))
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(key, "is not an IANA time zone name (such as Europe/London or UTC)")

    def str_map(self, value: Any, key: str) -> dict[str, str]:
        value = self.mapping(value, key)
        for name, column in value.items():
            if not isinstance(name, str) or not isinstance(column, str) or not column:
                self.fail(f"{key}.{name}", "must map a name to a column name")
        return dict(value)

    def column_or_fixed(self, value: Any, key: str) -> ColumnOrFixed:
        if isinstance(value, str) and value:
            return ColumnOrFixed(fixed=value)
        doc = self.mapping(value, key)
        unknown = set(doc) - {"column", "fixed", "values", "format"}
        if unknown:
            self.fail(f"{key}.{sorted(unknown)[0]}", "unknown key")
        if ("column" in doc) == ("fixed" in doc):
            self.fail(key, "give exactly one of 'column' or 'fixed'")
        for name in ("column", "fixed"):
            if name in doc:  # a list or number here failed later, or at every file
                self.text(doc[name], f"{key}.{name}")
        values = self.str_map(doc.get("values", {}), f"{key}.values")
        fmt = doc.get("format")
        if fmt is not None and not isinstance(fmt, str):
            self.fail(f"{key}.format", "must be a strftime format or 'iso'")
        return ColumnOrFixed(
            column=doc.get("column"),
            fixed=doc.get("fixed"),
            values=MappingProxyType(values),
            format=fmt,
        )
