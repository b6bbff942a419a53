"""The connector's configuration file: who the council is, its keys, its sources.

Relative paths are taken from the config file's folder, so a council can keep
one folder with config, mappings and keys. The linkage keys may instead come
from the environment (``FEDBROKER_LINKAGE_KEYS``), so no secret need be on disk.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml

from connectors._errors import ConfigInvalid
from connectors._timestamps import DEFAULT_MAX_SKEW, TimeBounds
from consent import KafkaSecurity, KeyInvalid

__all__ = [
    "DEFAULT_DIRECTORY_SERIALS_NAME",
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_METRICS_BIND",
    "DEFAULT_POLL_INTERVAL_S",
    "DEFAULT_TOPIC_PREFIX",
    "LINKAGE_KEYS_ENV",
    "MAX_BUILD_WORKERS_PER_CORE",
    "ConnectorConfig",
    "SourceConfig",
    "SourceKind",
    "load_config",
]

SourceKind = Literal["csv", "jsonl", "postgres"]
DEFAULT_TOPIC_PREFIX = "fed"
DEFAULT_POLL_INTERVAL_S = 2.0
#: Loopback unless the config says otherwise (0.0.0.0 in a container, for Prometheus).
DEFAULT_METRICS_BIND = "127.0.0.1"
LINKAGE_KEYS_ENV = "FEDBROKER_LINKAGE_KEYS"
#: Below Kafka's default max.message.bytes (1 MiB) with room for the batch
#: header: a bigger record is refused at the row, not left to wedge the outbox.
DEFAULT_MAX_RECORD_BYTES = 1_000_000


def _usable_cores() -> int:
    """The cores this process may run on (``taskset``, a container's cpuset), which
    may be far fewer than the machine's ``os.cpu_count()``."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


#: Building records is CPU-bound: one worker process per usable core by default.
DEFAULT_BUILD_WORKERS = _usable_cores()
#: Workers beyond this many per usable core only cost memory (each is a forked copy
#: of the connector); a config asking for more is a typo (5000 for 50), refused.
MAX_BUILD_WORKERS_PER_CORE = 8
#: The serial store's file name in the outbox's folder when the config names none.
DEFAULT_DIRECTORY_SERIALS_NAME = "directory-serials.json"


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One source: a watched folder (csv, jsonl) or a table (postgres), and its mapping."""

    name: str
    kind: SourceKind
    mapping: Path
    path: Path | None = None
    dsn: str | None = None
    table: str | None = None
    high_water_column: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """Everything ``fedbroker connector run`` needs, checked before anything starts."""

    council: str
    directory: Path
    trust_anchor: Path
    signing_key: Path
    linkage_keys: Path | None
    outbox: Path
    bootstrap: str
    sources: tuple[SourceConfig, ...]
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    metrics_port: int = 0
    metrics_bind: str = DEFAULT_METRICS_BIND
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    time_bounds: TimeBounds = TimeBounds()
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    #: processes building records (``connectors._build_pool``); default: one per core
    build_workers: int = DEFAULT_BUILD_WORKERS
    #: where the highest accepted directory serial is kept (None: beside the outbox)
    directory_serials: Path | None = None

    @property
    def serials_path(self) -> Path:
        """The serial store: kept with the outbox, which survives restarts as it must."""
        if self.directory_serials is not None:
            return self.directory_serials
        return self.outbox.parent / DEFAULT_DIRECTORY_SERIALS_NAME

    security: KafkaSecurity = KafkaSecurity()

    def topic(self, role: Literal["events", "consent"]) -> str:
        return f"{self.topic_prefix}.{role}.{self.council}"


_TOP_KEYS = frozenset({
    "council", "directory", "trust_anchor", "signing_key", "linkage_keys", "outbox", "kafka",
    "metrics_port", "metrics_bind", "poll_interval_s", "max_clock_skew_s", "occurred_at_floor",
    "recorded_at_floor", "max_record_bytes", "build_workers", "directory_serials", "sources",
})  # fmt: skip
_KAFKA_KEYS = frozenset({"bootstrap", "topic_prefix", "security"})
_SOURCE_KEYS = frozenset({"name", "kind", "mapping", "path", "dsn", "table", "high_water_column"})
#: The characters Kafka allows in a topic name.
_TOPIC_PART = re.compile(r"[A-Za-z0-9._-]+")


def _fail(origin: Path, key: str, problem: str) -> NoReturn:
    raise ConfigInvalid(f"{origin}: {key}: {problem}")


def _known(origin: Path, doc: dict[Any, Any], known: frozenset[str], prefix: str = "") -> None:
    """A key the loader does not read is a typo, and would leave its setting at the default."""
    for key in doc:
        if key not in known:
            _fail(origin, f"{prefix}{key}", f"unknown key (expected one of {sorted(known)})")


def _optional_text(
    origin: Path, doc: dict[str, Any], key: str, name: str | None = None
) -> str | None:
    """A text value or None; anything else (a list, a mapping, a number) is refused
    here, never made text with ``str()`` (which also expands a YAML alias bomb)."""
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        _fail(origin, name or key, "must be text")
    return value


def load_config(path: Path, *, bootstrap: str | None = None) -> ConnectorConfig:
    """Read and check a connector config; ``bootstrap`` overrides the file's Kafka address.

    Raises:
        ConfigInvalid: naming the file and the key that is wrong.
    """
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigInvalid(f"{path}: cannot read ({type(exc).__name__})") from exc
    if not isinstance(doc, dict):
        _fail(path, "(top level)", "must be a mapping")
    _known(path, doc, _TOP_KEYS)
    base = path.parent

    def required(key: str) -> str:
        value = doc.get(key)
        if not isinstance(value, str | int) or str(value).strip() == "":
            _fail(path, key, "is required")
        return str(value)

    def local(value: str) -> Path:
        candidate = Path(value)
        return candidate if candidate.is_absolute() else base / candidate

    kafka = doc.get("kafka", {})
    if not isinstance(kafka, dict):
        _fail(path, "kafka", "must be a mapping with 'bootstrap' and optional 'topic_prefix'")
    _known(path, kafka, _KAFKA_KEYS, "kafka.")
    resolved_bootstrap = (  # a flag beats the file; the file beats the environment
        bootstrap
        or _optional_text(path, kafka, "bootstrap", "kafka.bootstrap")
        or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    )
    topic_prefix = _optional_text(path, kafka, "topic_prefix", "kafka.topic_prefix")
    if topic_prefix is not None and not _TOPIC_PART.fullmatch(topic_prefix):
        _fail(path, "kafka.topic_prefix", "may hold only letters, digits, '.', '_' and '-'")
    if not resolved_bootstrap:
        _fail(path, "kafka.bootstrap", "is required (or set KAFKA_BOOTSTRAP_SERVERS)")
    try:  # the file's kafka.security beats FEDBROKER_KAFKA_* (docs/operations.md)
        raw_security = kafka.get("security")
        security = (
            KafkaSecurity.from_mapping(raw_security, base=base)
            if isinstance(raw_security, dict)
            else KafkaSecurity.from_env(os.environ)
        )
    except KeyInvalid as exc:
        _fail(path, "kafka.security", str(exc))
    linkage = _optional_text(path, doc, "linkage_keys")
    if linkage is None and LINKAGE_KEYS_ENV not in os.environ:
        _fail(path, "linkage_keys", f"is required unless {LINKAGE_KEYS_ENV} is set")
    raw_sources = doc.get("sources")
    if not isinstance(raw_sources, list) or not raw_sources:
        _fail(path, "sources", "must list at least one source")
    sources = tuple(_source(path, i, s, local) for i, s in enumerate(raw_sources))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        _fail(path, "sources", "source names must be unique")
    watched: set[tuple[str, Path]] = set()
    for index, source in enumerate(sources):  # the first would take every file of both
        if source.path is not None:
            folder = (source.kind, Path(os.path.realpath(source.path)))
            if folder in watched:
                _fail(path, f"sources[{index}].path", "another source watches this folder")
            watched.add(folder)
    return ConnectorConfig(
        council=required("council"),
        directory=local(required("directory")),
        trust_anchor=local(required("trust_anchor")),
        signing_key=local(required("signing_key")),
        linkage_keys=None if linkage is None else local(linkage),
        outbox=local(required("outbox")),
        bootstrap=str(resolved_bootstrap),
        sources=sources,
        topic_prefix=topic_prefix or DEFAULT_TOPIC_PREFIX,
        metrics_port=_port(path, doc, "metrics_port"),
        metrics_bind=_optional_text(path, doc, "metrics_bind") or DEFAULT_METRICS_BIND,
        poll_interval_s=_interval(path, doc, "poll_interval_s", DEFAULT_POLL_INTERVAL_S),
        time_bounds=_time_bounds(path, doc),
        max_record_bytes=_positive_int(path, doc, "max_record_bytes", DEFAULT_MAX_RECORD_BYTES),
        build_workers=_build_workers(path, doc),
        directory_serials=(
            None
            if (serials := _optional_text(path, doc, "directory_serials")) is None
            else local(serials)
        ),  # fmt: skip
        security=security,
    )


def _port(origin: Path, doc: dict[str, Any], key: str) -> int:
    value = doc.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        _fail(origin, key, "must be a port number from 0 (off) to 65535")
    return value


def _interval(origin: Path, doc: dict[str, Any], key: str, default: float) -> float:
    """A pause in seconds: more than zero (none would read the sources in a busy loop)."""
    value = doc.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        _fail(origin, key, "must be a number of seconds above zero")
    return float(value)


def _build_workers(origin: Path, doc: dict[str, Any]) -> int:
    workers = _positive_int(origin, doc, "build_workers", DEFAULT_BUILD_WORKERS)
    most = MAX_BUILD_WORKERS_PER_CORE * max(_usable_cores(), 1)
    if workers > most:
        _fail(origin, "build_workers", f"at most {most} ({MAX_BUILD_WORKERS_PER_CORE} per core)")
    return workers


def _positive_int(origin: Path, doc: dict[str, Any], key: str, default: int) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        _fail(origin, key, "must be a positive whole number")
    return value


def _floor(origin: Path, doc: dict[str, Any], key: str, default: datetime) -> datetime:
    value = doc.get(key)
    if value is None:
        return default
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp itself
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            _fail(origin, key, "must be a date (YYYY-MM-DD) or an ISO timestamp")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    _fail(origin, key, "must be a date (YYYY-MM-DD) or an ISO timestamp")


def _time_bounds(origin: Path, doc: dict[str, Any]) -> TimeBounds:
    """``max_clock_skew_s``, ``occurred_at_floor`` and ``recorded_at_floor`` (see TimeBounds)."""
    default = TimeBounds()
    skew = doc.get("max_clock_skew_s", DEFAULT_MAX_SKEW.total_seconds())
    if isinstance(skew, bool) or not isinstance(skew, int | float) or skew < 0:
        _fail(origin, "max_clock_skew_s", "must be a number of seconds, zero or more")
    return TimeBounds(
        max_skew=timedelta(seconds=skew),
        occurred_at_floor=_floor(origin, doc, "occurred_at_floor", default.occurred_at_floor),
        recorded_at_floor=_floor(origin, doc, "recorded_at_floor", default.recorded_at_floor),
    )


def _source(origin: Path, index: int, raw: Any, local: Any) -> SourceConfig:
    key = f"sources[{index}]"
    if not isinstance(raw, dict):
        _fail(origin, key, "must be a mapping")
    _known(origin, raw, _SOURCE_KEYS, f"{key}.")
    text = {name: _optional_text(origin, raw, name, f"{key}.{name}") for name in _SOURCE_KEYS}
    kind = raw.get("kind")
    if kind not in ("csv", "jsonl", "postgres"):
        _fail(origin, f"{key}.kind", "must be csv, jsonl or postgres")
    for needed in ("name", "mapping"):
        if not raw.get(needed):
            _fail(origin, f"{key}.{needed}", "is required")
    if kind == "postgres":
        for needed in ("dsn", "table", "high_water_column"):
            if not raw.get(needed):
                _fail(origin, f"{key}.{needed}", "is required for a postgres source")
    elif not raw.get("path"):
        _fail(origin, f"{key}.path", "is required (the watched folder)")
    return SourceConfig(
        name=str(text["name"]),
        kind=kind,
        mapping=local(str(text["mapping"])),
        path=local(text["path"]) if text["path"] else None,
        dsn=text["dsn"],
        table=text["table"],
        high_water_column=text["high_water_column"],
    )
