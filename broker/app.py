"""The broker's Faust application: the one place its parts are constructed and wired.

Two agents. ``verify`` reads every council's event and consent topics, refuses
what fails (to ``<prefix>.rejected``), and routes each accepted record by every
token it carries to an internal topic, so that everything sharing a token meets
in one partition in order. ``match`` keeps per-token state in changelogged
tables and hands each routed message to the pure ``PartitionCore``; it only
publishes what the core returns: notifications, audit records, rejections.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker._matching import Matcher
from broker._metrics import BrokerMetrics
from broker._partition import PartitionCore, retention_for
from broker._sightings import Sighting, TokenState
from broker._similarity import DEFAULT_DICE_THRESHOLD
from broker._verify import Rejected, topic_council, verify_record
from consent import (
    AuditChain,
    ChainHead,
    MemberKind,
    TokenConsent,
    load_directory,
    load_private_key,
)
from schemas import (
    CitizenEvent,
    Codec,
    ConsentRecord,
    RejectedRecord,
    SchemaError,
)

__all__ = ["DEFAULT_PARTITIONS", "BrokerSettings", "build_app"]

logger = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 3
DEFAULT_TOPIC_PREFIX = "fed"


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything ``fedbroker broker run`` needs; the CLI builds it from flags."""

    bootstrap: str
    directory: Path
    trust_anchor: Path
    signing_key: Path
    app_id: str = "fedbroker-broker"
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    partitions: int = DEFAULT_PARTITIONS
    replication: int = 1
    threshold: float | None = None
    metrics_port: int = 0
    data_dir: Path = Path(".fedbroker/broker")


def _rejected_id(topic: str, partition: int, offset: int) -> str:
    return hashlib.sha256(f"{topic}/{partition}/{offset}".encode()).hexdigest()[:32]


def ensure_topics(bootstrap: str, names: list[str], *, partitions: int, replication: int) -> None:
    """Create the federation's topics the broker reads or writes, if missing.

    A worker subscribes to every council's topics at start; a topic created later
    would only be seen after a metadata refresh, so they are made up front.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(n, partitions, replication) for n in names if n not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                logger.info("another worker created the topics first")
    finally:
        admin.close()


def build_app(settings: BrokerSettings) -> faust.App:
    """Load and check keys and the directory, then assemble topics, tables and agents."""
    directory = load_directory(
        settings.directory, trust_anchor=settings.trust_anchor, now=datetime.now(UTC)
    )
    key = load_private_key(settings.signing_key)
    if not isinstance(key, Ed25519PrivateKey):
        raise Rejected("the broker's signing key is not Ed25519", reason="bad-key")
    codec = Codec()
    core = PartitionCore(directory, Matcher(settings.threshold or DEFAULT_DICE_THRESHOLD), key)
    metrics = BrokerMetrics()
    prefix = settings.topic_prefix
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        web_enabled=False,
        datadir=str(settings.data_dir),
        producer_acks=-1,
        # A killed worker's partitions move to the survivors after this, not a minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        consumer_auto_offset_reset="earliest",
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    table: dict[str, Any] = {"key_type": str, "value_type": bytes}
    councils = sorted(m for m, v in directory.members.items() if v.kind is MemberKind.COUNCIL)
    ensure_topics(
        settings.bootstrap,
        [f"{prefix}.{role}.{gss}" for gss in councils for role in ("events", "consent")]
        + [f"{prefix}.rejected", f"{prefix}.audit"]
        + [f"{prefix}.match.{a}" for a in directory.agreements],
        partitions=settings.partitions,
        replication=settings.replication,
    )
    sources = app.topic(
        *[f"{prefix}.{role}.{gss}" for gss in councils for role in ("events", "consent")], **raw
    )
    routed = app.topic(
        f"{prefix}.broker.routed", partitions=settings.partitions, internal=True, **raw
    )
    rejected_topic = app.topic(f"{prefix}.rejected", **raw)
    audit_topic = app.topic(f"{prefix}.audit", **raw)
    match_topics = {a: app.topic(f"{prefix}.match.{a}", **raw) for a in directory.agreements}
    states = app.Table("token-state", partitions=settings.partitions, default=None, **table)
    consents = app.Table("token-consent", partitions=settings.partitions, default=None, **table)
    heads = app.Table("audit-heads", partitions=settings.partitions, default=None, **table)
    chains: dict[str, AuditChain] = {}

    async def reject(
        topic: str, partition: int, offset: int, reason: str, event_id: str | None
    ) -> None:
        metrics.rejected.labels(reason).inc()
        record = RejectedRecord(
            rejected_id=_rejected_id(topic, partition, offset),
            topic=topic,
            partition=partition,
            offset=offset,
            reason=reason,
            detail="",
            rejected_at=datetime.now(UTC),
            event_id=event_id,
            source_council=topic_council(topic),
        )
        await rejected_topic.send(key=record.rejected_id.encode(), value=codec.encode(record))

    @app.agent(sources)
    async def verify(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                record = codec.decode(message.value or b"")
                if not isinstance(record, CitizenEvent | ConsentRecord):
                    raise Rejected("not an event or consent record", reason="wrong-record-type")
                verify_record(
                    record, topic=message.topic, directory=directory, now=datetime.now(UTC)
                )
            except (SchemaError, Rejected) as exc:
                await reject(message.topic, message.partition, message.offset, exc.reason, None)
                continue
            if isinstance(record, ConsentRecord):
                envelope: dict[str, Any] = {
                    "kind": "consent",
                    "record": base64.b64encode(message.value).decode(),
                }
                tokens = [t.key() for t in record.tokens]
            else:
                metrics.events.labels(record.source_council, record.event_type.value).inc()
                sighting = Sighting.from_event(record, retention=retention_for(directory, record))
                envelope = {
                    "kind": "event",
                    "sighting": sighting.to_dict(),
                    "coordinates": [message.topic, message.partition, message.offset],
                    "published_at": record.published_at.isoformat(),
                }
                tokens = list(sighting.all_tokens())
            body = json.dumps(envelope).encode()
            for token in tokens:
                await routed.send(key=token.encode(), value=body)

    def chain_for(partition: int) -> AuditChain:
        chain_id = f"{prefix}.broker/{partition}"
        if chain_id not in chains:
            stored = heads.get(chain_id)
            head = ChainHead.from_dict(json.loads(stored)) if stored else ChainHead(chain_id)
            chains[chain_id] = AuditChain(head, key)
            chains[chain_id].start(datetime.now(UTC))
        return chains[chain_id]

    @app.agent(routed)
    async def match(stream: Any) -> None:
        async for event in stream.events():
            token = event.key.decode()
            envelope = json.loads(event.value)
            chain = chain_for(event.message.partition)
            state_bytes, consent_bytes = states.get(token), consents.get(token)
            state = TokenState.from_bytes(state_bytes) if state_bytes else None
            consent = TokenConsent.from_bytes(consent_bytes) if consent_bytes else None
            now = datetime.now(UTC)
            if envelope["kind"] == "consent":
                record = codec.decode_as(base64.b64decode(envelope["record"]), ConsentRecord)
                new_state, consent, audit = core.on_consent(
                    token, record, state, consent, chain, now
                )
                consents[token] = consent.to_bytes()
                if new_state is not None:
                    states[token] = new_state.to_bytes()
                notifications = []
            else:
                sighting = Sighting.from_dict(envelope["sighting"])
                new_state, effects = core.on_sighting(token, sighting, state, consent, chain, now)
                states[token] = new_state.to_bytes()
                if effects.duplicate and token == sighting.all_tokens()[0]:
                    topic, partition, offset = envelope["coordinates"]
                    await reject(topic, partition, offset, "duplicate", sighting.event_id)
                audit, notifications = effects.audit, effects.notifications
                for agreement_id, outcome in effects.decisions:
                    metrics.decisions.labels(agreement_id, outcome.value).inc()
                published = datetime.fromisoformat(envelope["published_at"])
                for _ in notifications:
                    metrics.notified_latency.observe((now - published).total_seconds())
            metrics.sightings.set(len(states))
            heads[chain.head.chain] = json.dumps(chain.head.to_dict()).encode()
            for notification in notifications:
                metrics.notifications.labels(notification.agreement_id).inc()
                await match_topics[notification.agreement_id].send(
                    key=notification.notification_id.encode(), value=codec.encode(notification)
                )
            for entry in audit:
                await audit_topic.send(key=chain.head.chain.encode(), value=codec.encode(entry))

    metrics.serve(settings.metrics_port)

    return app
