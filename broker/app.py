"""The broker's Faust application: the one place its parts are constructed and wired.

Two agents. ``verify`` reads every council's event and consent topics, refuses
what fails (to ``<prefix>.rejected``), and routes each accepted record by every
token it carries to an internal topic, so that everything sharing a token meets
in one partition in order. ``match`` keeps per-token state in changelogged
tables and hands each routed message to the pure ``PartitionCore``; it only
publishes what the core returns: notifications, audit records, rejections.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import faust
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker._histograms import read_histograms
from broker._kafka_client import cluster_replication, faust_credentials, replication_configs
from broker._matching import Matcher
from broker._metrics import BrokerMetrics
from broker._partition import PartitionCore, retention_for
from broker._sightings import Sighting
from broker._state_cache import StateCache
from broker._threshold import ScoreHistogram, choose_threshold, fit_threshold
from broker._verify import Rejected, topic_council, verify_record
from consent import (
    AuditChain,
    ChainHead,
    ConsentLedger,
    KafkaSecurity,
    MemberKind,
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
#: Blocked-pair scores buffered per partition before the histogram table is written.
_SCORE_FLUSH = 50
#: Pending producer sends before Faust pauses the streams to flush (its default: 100).
PRODUCER_BUFFER_MESSAGES = 2000
_TICK = b"\x00tick"  # not a token key: tokens are "domain:epoch:hex"


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
    replication: int | None = None  # None: the cluster's broker count, at most 3
    threshold: float | None = None
    metrics_port: int = 0
    data_dir: Path = Path(".fedbroker/broker")
    store: str = "rocksdb://"
    accepted_epochs: frozenset[int] | None = None
    refit_interval_s: float = 30.0
    checkpoint_interval_s: float = 60.0
    security: KafkaSecurity = KafkaSecurity()


def _rejected_id(topic: str, partition: int, offset: int) -> str:
    return hashlib.sha256(f"{topic}/{partition}/{offset}".encode()).hexdigest()[:32]


def ensure_topics(
    bootstrap: str,
    names: list[str],
    *,
    partitions: int,
    replication: int,
    configs: dict[str, dict[str, str]] | None = None,
    security: KafkaSecurity = KafkaSecurity(),  # noqa: B008 - frozen, never mutated
) -> None:
    """Create the federation's topics the broker reads or writes, if missing.

    A worker subscribes to every council's topics at start; a topic created later
    would only be seen after a metadata refresh, so they are made up front.
    ``configs`` gives per-topic settings (the audit topic keeps records for ever).
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    configs = configs or {}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **security.kafka_python())
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(
                n,
                partitions,
                replication,
                topic_configs=replication_configs(replication) | configs.get(n, {}),
            )
            for n in names
            if n not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                logger.info("another worker created the topics first")
    finally:
        admin.close()
    _await_metadata(bootstrap, set(names), security=security)


def _await_metadata(
    bootstrap: str,
    names: set[str],
    timeout: float = 30.0,
    *,
    security: KafkaSecurity = KafkaSecurity(),  # noqa: B008 - frozen, never mutated
) -> None:
    """Wait until the brokers report every topic with its partitions.

    Topics another worker has just created may not be in this client's metadata
    yet; joining the group only once they are means the worker subscribes to
    every council's topics from its first assignment.
    """
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **security.kafka_python())
    deadline = time.monotonic() + timeout
    try:
        while True:
            unseen = {n for n in names if not consumer.partitions_for_topic(n)}
            if not unseen:
                return
            if time.monotonic() > deadline:
                raise Rejected(
                    f"topics not visible after {timeout:.0f} s: {sorted(unseen)[:3]}",
                    reason="topics-missing",
                )
            time.sleep(0.5)
    finally:
        consumer.close()


def build_app(settings: BrokerSettings) -> faust.App:
    """Load and check keys and the directory, then assemble topics, tables and agents."""
    directory = load_directory(
        settings.directory, trust_anchor=settings.trust_anchor, now=datetime.now(UTC)
    )
    key = load_private_key(settings.signing_key)
    if not isinstance(key, Ed25519PrivateKey):
        raise Rejected("the broker's signing key is not Ed25519", reason="bad-key")
    codec = Codec()
    threshold = choose_threshold(settings.threshold, None)
    core = PartitionCore(directory, Matcher(threshold.threshold), key)
    metrics = BrokerMetrics()
    metrics.threshold.set(threshold.threshold)
    logger.info("matching at %s", threshold.describe())
    prefix = settings.topic_prefix
    replication = cluster_replication(settings.bootstrap, settings.security, settings.replication)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store=settings.store,
        topic_partitions=settings.partitions,
        topic_replication_factor=replication,
        broker_credentials=faust_credentials(settings.security),
        web_enabled=False,
        datadir=str(settings.data_dir),
        producer_acks=-1,
        # A killed worker's partitions move to the survivors after this, not a minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        consumer_auto_offset_reset="earliest",
    )
    # Faust pauses every stream once 100 table and topic writes await sending;
    # each routed message writes at least one, so that cap throttled the broker.
    app.producer.buffer.max_messages = PRODUCER_BUFFER_MESSAGES
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    table: dict[str, Any] = {"key_type": str, "value_type": bytes}
    councils = sorted(m for m, v in directory.members.items() if v.kind is MemberKind.COUNCIL)
    source_names = [f"{prefix}.{role}.{gss}" for gss in councils for role in ("events", "consent")]
    ensure_topics(
        settings.bootstrap,
        source_names
        + [f"{prefix}.rejected", f"{prefix}.audit", f"{prefix}.broker.matches"]
        + [f"{prefix}.match.{a}" for a in directory.agreements],
        partitions=settings.partitions,
        replication=replication,
        security=settings.security,
        # Deleting old audit records would break every chain's first link.
        configs={f"{prefix}.audit": {"retention.ms": "-1"}},
    )
    sources = app.topic(*source_names, **raw)
    routed = app.topic(
        f"{prefix}.broker.routed", partitions=settings.partitions, internal=True, **raw
    )
    rejected_topic = app.topic(f"{prefix}.rejected", **raw)
    audit_topic = app.topic(f"{prefix}.audit", **raw)
    matches_topic = app.topic(f"{prefix}.broker.matches", **raw)
    match_topics = {a: app.topic(f"{prefix}.match.{a}", **raw) for a in directory.agreements}
    states = app.Table("token-state", partitions=settings.partitions, default=None, **table)
    consents = app.Table("token-consent", partitions=settings.partitions, default=None, **table)
    heads = app.Table("audit-heads", partitions=settings.partitions, default=None, **table)
    histograms = app.Table(
        "score-histograms", partitions=settings.partitions, default=None, **table
    )
    chains: dict[str, AuditChain] = {}
    state_cache = StateCache()
    pending_scores: dict[int, list[float]] = {}

    def observe_lag(message: Any) -> None:
        highwater = app.consumer.highwater(message.tp)
        if highwater is not None:
            lag = max(int(highwater) - int(message.offset) - 1, 0)
            metrics.lag.labels(message.topic, str(message.partition)).set(lag)

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
            started = time.perf_counter()
            try:
                record = codec.decode(message.value or b"")
                if not isinstance(record, CitizenEvent | ConsentRecord):
                    raise Rejected("not an event or consent record", reason="wrong-record-type")
                verify_record(
                    record,
                    topic=message.topic,
                    directory=directory,
                    now=datetime.now(UTC),
                    accepted_epochs=settings.accepted_epochs,
                )
            except (SchemaError, Rejected) as exc:
                await reject(message.topic, message.partition, message.offset, exc.reason, None)
                continue
            if isinstance(record, ConsentRecord):
                envelope: dict[str, Any] = {
                    "kind": "consent",
                    "record": base64.b64encode(message.value).decode(),
                }
                # By blocking tokens too: fuzzy matches are decided in those partitions.
                tokens = list(
                    dict.fromkeys(t.key() for t in record.tokens + record.blocking_tokens)
                )
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
            metrics.processing.labels("verify").observe(time.perf_counter() - started)
            observe_lag(message)

    def chain_for(partition: int) -> AuditChain:
        chain_id = f"{prefix}.broker/{partition}"
        if chain_id not in chains:
            stored = heads.get(chain_id)
            head = ChainHead.from_dict(json.loads(stored)) if stored else ChainHead(chain_id)
            chains[chain_id] = AuditChain(
                head, key, checkpoint_interval=timedelta(seconds=settings.checkpoint_interval_s)
            )
            chains[chain_id].start(datetime.now(UTC))
        return chains[chain_id]

    def keep_scores(partition: int, scores: tuple[float, ...]) -> None:
        """Add blocked-pair scores to this partition's histogram, in batches."""
        buffer = pending_scores.setdefault(partition, [])
        buffer.extend(scores)
        if len(buffer) >= _SCORE_FLUSH:
            name = f"scores/{partition}"
            stored = histograms.get(name)
            held = ScoreHistogram.from_dict(json.loads(stored)) if stored else ScoreHistogram()
            histograms[name] = json.dumps(held.add(buffer).to_dict()).encode()
            buffer.clear()

    @app.agent(routed)
    async def match(stream: Any) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            token = event.key.decode()
            envelope, routed_sighting = _envelope(event.value)
            partition = event.message.partition
            chain = chain_for(partition)
            if envelope["kind"] == "tick":
                if chain.checkpoint_due(datetime.now(UTC)):
                    checkpoint = chain.checkpoint(datetime.now(UTC), reason="idle")
                    heads[chain.head.chain] = json.dumps(chain.head.to_dict()).encode()
                    await audit_topic.send(
                        key=chain.head.chain.encode(), value=codec.encode(checkpoint)
                    )
                continue
            state_bytes, consent_bytes = states.get(token), consents.get(token)
            state = state_cache.load(token, state_bytes)
            consent = _ledger(consent_bytes)
            now = datetime.now(UTC)
            if envelope["kind"] == "consent":
                record = codec.decode_as(base64.b64decode(envelope["record"]), ConsentRecord)
                applied = core.on_consent(
                    token, record, state, consent, chain, now,
                    forget=frozenset(envelope.get("forget", ())),
                )  # fmt: skip
                consents[token] = json.dumps(applied.consent.to_dict()).encode()
                if applied.state is not None:
                    states[token] = state_cache.encode(token, state, state_bytes, applied.state)
                    metrics.sightings.inc(len(applied.state) - (len(state) if state else 0))
                audit, notifications = applied.audit, []
                for other, event_ids in applied.cascade.items():
                    onward = {**envelope, "forget": sorted(event_ids)}
                    await routed.send(key=other.encode(), value=json.dumps(onward).encode())
            else:
                assert routed_sighting is not None
                sighting = routed_sighting
                new_state, effects = core.on_sighting(token, sighting, state, consent, chain, now)
                states[token] = state_cache.encode(token, state, state_bytes, new_state)
                metrics.sightings.inc(len(new_state) - (len(state) if state else 0))
                if effects.duplicate and token == sighting.all_tokens()[0]:
                    topic, source_partition, offset = envelope["coordinates"]
                    await reject(topic, source_partition, offset, "duplicate", sighting.event_id)
                audit, notifications = effects.audit, effects.notifications
                if effects.scores and not effects.duplicate:
                    keep_scores(partition, effects.scores)
                for pair in effects.matches:
                    metrics.matches.labels(pair.method).inc()
                    await matches_topic.send(
                        key=pair.pair_id.encode(), value=json.dumps(pair.to_dict()).encode()
                    )
                for agreement_id, outcome in effects.decisions:
                    metrics.decisions.labels(agreement_id, outcome.value).inc()
                published = datetime.fromisoformat(envelope["published_at"])
                for _ in notifications:
                    metrics.notified_latency.observe((now - published).total_seconds())
            if audit:  # the head moved
                heads[chain.head.chain] = json.dumps(chain.head.to_dict()).encode()
            for notification in notifications:
                metrics.notifications.labels(notification.agreement_id).inc()
                await match_topics[notification.agreement_id].send(
                    key=notification.notification_id.encode(), value=codec.encode(notification)
                )
            for entry in audit:
                await audit_topic.send(key=chain.head.chain.encode(), value=codec.encode(entry))
            metrics.processing.labels("match").observe(time.perf_counter() - started)
            observe_lag(event.message)

    @app.timer(interval=settings.checkpoint_interval_s / 3)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        """Let every partition's chain sign a checkpoint even when no decision arrives.

        Checkpoints are otherwise written only as decisions are appended, so the
        last records before a quiet spell (or a shutdown) would wait unsigned.
        """
        for partition in range(settings.partitions):
            await routed.send(key=_TICK, value=b'{"kind": "tick"}', partition=partition)

    @app.timer(interval=settings.refit_interval_s)  # type: ignore[untyped-decorator]
    async def refit() -> None:
        """Refit the Dice threshold from every partition's scores.

        Reads the histograms' changelog, not the table: iterating a RocksDB
        table from a timer stalled a partition's processing in tests.
        """
        if settings.threshold is not None:
            return
        merged = await asyncio.get_running_loop().run_in_executor(
            None,
            read_histograms,
            settings.bootstrap,
            histograms.changelog_topic.get_topic_name(),
            settings.security,
        )
        fit = choose_threshold(None, fit_threshold(merged))
        if fit.source == "fitted" and fit.threshold != core.matcher.threshold:
            logger.warning("Dice threshold now %s", fit.describe())
            core.matcher = Matcher(fit.threshold)
            metrics.threshold.set(fit.threshold)

    metrics.serve(settings.metrics_port)

    return app


@functools.lru_cache(maxsize=4096)
def _envelope(body: bytes) -> tuple[dict[str, Any], Sighting | None]:
    """A routed message, parsed once per worker: an event arrives once per token."""
    envelope = json.loads(body)
    sighting = Sighting.from_dict(envelope["sighting"]) if envelope["kind"] == "event" else None
    return envelope, sighting


def _ledger(stored: bytes | None) -> ConsentLedger | None:
    return ConsentLedger.from_dict(json.loads(stored)) if stored else None
