"""The connector's configuration file: who the council is, its keys, its sources.

Relative paths are taken from the config file's folder, so a council can keep
one folder with config, mappings and keys. The linkage keys may instead come
from the environment (``FEDBROKER_LINKAGE_KEYS``), so no secret need be on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml

from connectors._errors import ConfigInvalid
from consent import KafkaSecurity, KeyInvalid

__all__ = [
    "DEFAULT_POLL_INTERVAL_S",
    "DEFAULT_TOPIC_PREFIX",
    "LINKAGE_KEYS_ENV",
    "ConnectorConfig",
    "SourceConfig",
    "SourceKind",
    "load_config",
]

SourceKind = Literal["csv", "jsonl", "postgres"]
DEFAULT_TOPIC_PREFIX = "fed"
DEFAULT_POLL_INTERVAL_S = 2.0
LINKAGE_KEYS_ENV = "FEDBROKER_LINKAGE_KEYS"


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
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    security: KafkaSecurity = KafkaSecurity()

    def topic(self, role: Literal["events", "consent"]) -> str:
        return f"{self.topic_prefix}.{role}.{self.council}"


def _fail(origin: Path, key: str, problem: str) -> NoReturn:
    raise ConfigInvalid(f"{origin}: {key}: {problem}")


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
    resolved_bootstrap = (  # a flag beats the file; the file beats the environment
        bootstrap or kafka.get("bootstrap") or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    )
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
    linkage = doc.get("linkage_keys")
    if linkage is None and LINKAGE_KEYS_ENV not in os.environ:
        _fail(path, "linkage_keys", f"is required unless {LINKAGE_KEYS_ENV} is set")
    raw_sources = doc.get("sources")
    if not isinstance(raw_sources, list) or not raw_sources:
        _fail(path, "sources", "must list at least one source")
    sources = tuple(_source(path, i, s, local) for i, s in enumerate(raw_sources))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        _fail(path, "sources", "source names must be unique")
    return ConnectorConfig(
        council=required("council"),
        directory=local(required("directory")),
        trust_anchor=local(required("trust_anchor")),
        signing_key=local(required("signing_key")),
        linkage_keys=None if linkage is None else local(str(linkage)),
        outbox=local(required("outbox")),
        bootstrap=str(resolved_bootstrap),
        sources=sources,
        topic_prefix=str(kafka.get("topic_prefix", DEFAULT_TOPIC_PREFIX)),
        metrics_port=int(doc.get("metrics_port", 0)),
        poll_interval_s=float(doc.get("poll_interval_s", DEFAULT_POLL_INTERVAL_S)),
        security=security,
    )


def _source(origin: Path, index: int, raw: Any, local: Any) -> SourceConfig:
    key = f"sources[{index}]"
    if not isinstance(raw, dict):
        _fail(origin, key, "must be a mapping")
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
        name=str(raw["name"]),
        kind=kind,
        mapping=local(str(raw["mapping"])),
        path=local(str(raw["path"])) if raw.get("path") else None,
        dsn=raw.get("dsn"),
        table=raw.get("table"),
        high_water_column=raw.get("high_water_column"),
    )
