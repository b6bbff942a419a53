"""From an agreement as people write it (YAML) to a checked, compiled ``Agreement``.

The loader reads through YAML's node graph so every problem names its line, and
it gathers *every* problem before raising one ``AgreementInvalid``: an
information-governance officer fixes a draft in one pass, not ten.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType

import yaml

from consent._agreement import Agreement, ConsentModel, LawfulBasis, MatchRule, Routing
from consent._durations import parse_duration
from consent._errors import AgreementInvalid
from consent._yamlnodes import NodeReader, compose
from schemas import EVENT_CATALOGUE, EventType

__all__ = ["compile_agreement", "load_agreement", "parse_agreement"]

_FIELDS = frozenset(
    {
        "id",
        "version",
        "title",
        "purpose",
        "lawful_basis",
        "controllers",
        "recipients",
        "routing",
        "disclose",
        "match",
        "consent_model",
        "valid_from",
        "valid_until",
        "retention",
    }
)
_BASIS_FIELDS = frozenset({"article_6", "article_9", "statutory_power", "notes"})
_MATCH_FIELDS = frozenset({"event_types", "distinct_sources_min", "count_min", "window"})
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_ART6 = re.compile(r"^6\(1\)\([a-f]\)")
_ART9 = re.compile(r"^9\(2\)\([a-j]\)")


def load_agreement(
    path: Path | str,
    *,
    councils: Collection[str] | None = None,
    services: Collection[str] | None = None,
) -> Agreement:
    """Load and validate one agreement file.

    Args:
        path: the YAML file.
        councils: GSS codes of the directory's councils; controllers must be among
            them (default None: not checked, e.g. before a directory exists).
        services: the directory's service ids; recipients must be among them
            (default None: not checked).

    Raises:
        AgreementInvalid: listing every problem, each with its line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgreementInvalid(str(path), ["line 0: cannot read the file"]) from exc
    return parse_agreement(text, source=str(path), councils=councils, services=services)


def parse_agreement(
    text: str,
    *,
    source: str = "<agreement>",
    councils: Collection[str] | None = None,
    services: Collection[str] | None = None,
) -> Agreement:
    """Like ``load_agreement`` for YAML text; ``source`` names it in messages."""
    try:
        node = compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise AgreementInvalid(source, [f"line {line}: not valid YAML"]) from exc
    reader = NodeReader()
    agreement = compile_agreement(node, reader, councils=councils, services=services)
    if reader.problems or agreement is None:
        raise AgreementInvalid(source, reader.problems or ["line 0: empty document"])
    return agreement


def _date(
    reader: NodeReader, node: yaml.Node | None, key: str, *, end_of_day: bool = False
) -> datetime | None:
    """A UTC datetime; a bare date means its start, or with ``end_of_day`` the next day's."""
    if node is None:
        return None
    value = str(node.value).strip() if isinstance(node, yaml.ScalarNode) else ""
    try:
        if len(value) == 10:
            start = datetime.combine(date.fromisoformat(value), time(), UTC)
            return start + timedelta(days=1) if end_of_day else start
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            reader.problem(node, f"'{key}' needs a timezone (e.g. Z or +00:00)")
            return None
        return parsed.astimezone(UTC)
    except ValueError:
        reader.problem(node, f"'{key}' must be a date (YYYY-MM-DD) or an ISO datetime")
        return None
    except OverflowError:  # 9999-12-31 ends in year 10000, past what a datetime holds
        reader.problem(node, f"'{key}' is out of range: use 9999-12-30 or earlier")
        return None


def _duration(reader: NodeReader, node: yaml.Node | None, key: str) -> timedelta | None:
    if node is None:
        return None
    if not isinstance(node, yaml.ScalarNode):
        reader.problem(node, f"bad duration for '{key}': must be text like 30d")
        return None
    try:
        return parse_duration(str(node.value))
    except ValueError as exc:
        reader.problem(node, f"bad duration for '{key}': {exc}")
        return None


def _count(reader: NodeReader, node: yaml.Node | None, key: str) -> int | None:
    if node is None:
        return None
    value = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        reader.problem(node, f"'{key}' must be a whole number of at least 1")
        return None
    return int(value)


def _event_type(reader: NodeReader, name: str, node: yaml.Node) -> EventType | None:
    try:
        return EventType(name)
    except ValueError:
        reader.problem(node, f"unknown event type '{name}'")
        return None


def _lawful_basis(
    reader: NodeReader, parent: yaml.Node, fields: dict[str, yaml.Node]
) -> tuple[LawfulBasis | None, yaml.Node | None]:
    node = fields.get("lawful_basis")
    if node is None:
        reader.problem(parent, "missing lawful basis: 'lawful_basis' is required")
        return None, None
    basis = reader.mapping(node, "lawful_basis")
    reader.unknown_keys(basis, _BASIS_FIELDS, "lawful_basis")
    art6 = reader.text(node, basis, "article_6", required=False)
    if art6 is None:
        reader.problem(node, "missing lawful basis: 'article_6' (a UK GDPR art 6(1) basis)")
    elif not _ART6.match(art6):
        reader.problem(basis["article_6"], "lawful basis 'article_6' must start 6(1)(a)..(f)")
    power = reader.text(node, basis, "statutory_power", required=False)
    if power is None:
        reader.problem(node, "missing lawful basis: 'statutory_power' (the empowering Act)")
    art9 = reader.text(node, basis, "article_9", required=False)
    if art9 is not None and not _ART9.match(art9):
        reader.problem(basis["article_9"], "'article_9' must start 9(2)(a)..(j)")
    notes = reader.text(node, basis, "notes", required=False) or ""
    if art6 is None or power is None:
        return None, node
    return LawfulBasis(article_6=art6, statutory_power=power, article_9=art9, notes=notes), node


def compile_agreement(
    node: yaml.Node | None,
    reader: NodeReader,
    *,
    councils: Collection[str] | None = None,
    services: Collection[str] | None = None,
) -> Agreement | None:
    """Check one agreement node, adding problems to ``reader``; None if any were found."""
    before = len(reader.problems)
    fields = reader.mapping(node, "agreement")
    if node is None or not fields:
        return None
    reader.unknown_keys(fields, _FIELDS, "agreement")
    agreement_id = reader.text(node, fields, "id")
    if agreement_id is not None and not _ID.match(agreement_id):
        reader.problem(fields["id"], "'id' must be lower-case letters, digits and hyphens")
    title = reader.text(node, fields, "title")
    purpose = reader.text(node, fields, "purpose")
    version = _count(reader, fields.get("version"), "version") if "version" in fields else 1
    basis, basis_node = _lawful_basis(reader, node, fields)

    controllers = reader.text_list(node, fields, "controllers")
    for name, item in controllers:
        if councils is not None and name not in councils:
            reader.problem(item, f"controller '{name}' is not a council in the directory")
    recipients = reader.text_list(node, fields, "recipients")
    for name, item in recipients:
        if services is not None and name not in services:
            reader.problem(item, f"recipient '{name}' is not a service in the directory")

    routing = Routing.ALL
    routing_text = reader.text(node, fields, "routing", required=False)
    if routing_text is not None:
        try:
            routing = Routing(routing_text)
        except ValueError:
            choices = ", ".join(r.value for r in Routing)
            reader.problem(fields["routing"], f"'routing' must be one of {choices}")

    consent_model: ConsentModel | None = None
    model_text = reader.text(node, fields, "consent_model")
    if model_text is not None:
        try:
            consent_model = ConsentModel(model_text)
        except ValueError:
            choices = ", ".join(m.value for m in ConsentModel)
            reader.problem(fields["consent_model"], f"'consent_model' must be one of {choices}")

    match, match_types = _match(reader, node, fields)
    disclosures = _disclosures(reader, node, fields, match_types)

    involved = set(match_types) | set(disclosures)
    special = sorted(t.value for t in involved if EVENT_CATALOGUE[t].special_category)
    if special and basis is not None and basis.article_9 is None:
        reader.problem(
            basis_node,
            f"special-category event type(s) {', '.join(special)} need an article 9 "
            "condition: add lawful_basis.article_9",
        )

    valid_from = _date(reader, fields.get("valid_from"), "valid_from")
    if "valid_from" not in fields:
        reader.problem(node, "missing required field 'valid_from'")
    valid_until = _date(reader, fields.get("valid_until"), "valid_until", end_of_day=True)
    if valid_from and valid_until and valid_until <= valid_from:
        reader.problem(fields["valid_until"], "'valid_until' must be after 'valid_from'")
    retention = _duration(reader, fields.get("retention"), "retention")
    if "retention" not in fields:
        reader.problem(node, "missing required field 'retention'")

    if len(reader.problems) > before:
        return None
    assert agreement_id and title and purpose and basis and consent_model and match
    assert valid_from is not None and retention is not None and version is not None
    return Agreement(
        agreement_id=agreement_id,
        title=title,
        purpose=purpose,
        lawful_basis=basis,
        controllers=frozenset(name for name, _ in controllers),
        recipients=frozenset(name for name, _ in recipients),
        disclosures=MappingProxyType(disclosures),
        match=match,
        consent_model=consent_model,
        valid_from=valid_from,
        valid_until=valid_until,
        retention=retention,
        routing=routing,
        version=version,
    )


def _match(
    reader: NodeReader, parent: yaml.Node, fields: dict[str, yaml.Node]
) -> tuple[MatchRule | None, set[EventType]]:
    node = fields.get("match")
    if node is None:
        reader.problem(parent, "missing required field 'match'")
        return None, set()
    rule = reader.mapping(node, "match")
    reader.unknown_keys(rule, _MATCH_FIELDS, "match")
    types: set[EventType] = set()
    for name, item in reader.text_list(node, rule, "event_types"):
        event_type = _event_type(reader, name, item)
        if event_type is not None:
            types.add(event_type)
    sources = _count(reader, rule.get("distinct_sources_min"), "distinct_sources_min")
    count = _count(reader, rule.get("count_min"), "count_min")
    window = _duration(reader, rule.get("window"), "window")
    for key in ("distinct_sources_min", "count_min", "window"):
        if key not in rule:
            reader.problem(node, f"match: missing required field '{key}'")
    if sources is not None and count is not None and count < sources:
        reader.problem(rule["count_min"], "'count_min' cannot be below 'distinct_sources_min'")
    if not types or sources is None or count is None or window is None:
        return None, types
    return MatchRule(frozenset(types), sources, count, window), types


def _disclosures(
    reader: NodeReader,
    parent: yaml.Node,
    fields: dict[str, yaml.Node],
    match_types: set[EventType],
) -> dict[EventType, frozenset[str]]:
    node = fields.get("disclose")
    if node is None:
        reader.problem(parent, "missing required field 'disclose'")
        return {}
    result: dict[EventType, frozenset[str]] = {}
    for name, value in reader.mapping(node, "disclose").items():
        event_type = _event_type(reader, name, value)
        if event_type is None:
            continue
        if match_types and event_type not in match_types:
            reader.problem(value, f"disclosed event type '{name}' is not in match.event_types")
        allowed = EVENT_CATALOGUE[event_type].payload_fields
        names: set[str] = set()
        items = value.value if isinstance(value, yaml.SequenceNode) else None
        if items is None:
            reader.problem(value, f"disclose.{name} must be a list of field names")
            continue
        for item in items:
            field_name = str(item.value) if isinstance(item, yaml.ScalarNode) else ""
            if field_name not in allowed:
                reader.problem(
                    item,
                    f"unknown field '{field_name}' for event type '{name}'",
                )
            else:
                names.add(field_name)
        result[event_type] = frozenset(names)
    return result
