"""The broker's Faust application: the one place its parts are constructed and wired.

Two agents. ``verify`` reads every council's event and consent topics, refuses
what fails (to ``<prefix>.rejected``), and routes each accepted record by every
token it carries to an internal topic, so that everything sharing a token meets
in one partition in order. ``match`` keeps per-token state in changelogged
tables and hands each routed message to the pure ``PartitionCore``; it only
publishes what the core returns: notifications, audit records, rejections.
Every message of both runs inside ``guarded`` (one bad message never stops a
stream), and every timer inside ``_side`` (an error retries with backoff, never
kills the worker). While the directory is expired the agents wait, deciding
nothing, and the reason is logged and shown by ``fedbroker_broker_deciding``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import faust
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker._admission import AdmissionPolicy, Limits, admit
from broker._audit_tail import read_chain_tail
from broker._chain_recovery import OnceChain, recover_chain
from broker._consent_view import ConsentTableView, applied_entries
from broker._directory_watch import DirectoryWatch
from broker._errors import DirectoryNotUsable
from broker._histograms import read_attempts, read_histograms
from broker._kafka_client import cluster_replication, faust_credentials
from broker._matching import Matcher
from broker._metrics import BrokerMetrics
from broker._notifications import seal_notification
from broker._partition import PartitionCore, retention_for
from broker._poison import AttemptCounts, Backoff, guarded
from broker._sightings import Sighting
from broker._state_cache import StateCache
from broker._threshold import ScoreHistogram, choose_threshold, fit_threshold
from broker._topics import ensure_topics
from broker._verify import (
    DEFAULT_MAX_SKEW,
    DEFAULT_OCCURRED_FLOOR,
    DEFAULT_RECORDED_FLOOR,
    Rejected,
    topic_council,
)
from consent import (
    AuditChain,
    ChainHead,
    KafkaSecurity,
    SerialStore,
    load_private_key,
    notify_topic,
)
from schemas import Codec, ConsentRecord, RejectedRecord

__all__ = ["DEFAULT_PARTITIONS", "BrokerSettings", "build_app", "ensure_topics"]

logger = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 3
DEFAULT_TOPIC_PREFIX = "fed"
DEFAULT_DIRECTORY_POLL_S = 5.0
#: Loopback unless asked: a container sets 0.0.0.0 so its Prometheus can scrape it.
DEFAULT_METRICS_BIND = "127.0.0.1"
#: Blocked-pair scores buffered per partition before the histogram table is written.
_SCORE_FLUSH = 50
#: Pending producer sends before Faust pauses the streams to flush (its default: 100).
PRODUCER_BUFFER_MESSAGES = 2000
#: The exit status of a worker stopped while its directory is expired.
EXIT_DIRECTORY_EXPIRED = 3
_TICK = b"\x00tick"  # not a token key: tokens are "domain:epoch:hex"
_CONSENT_VIEW = b"\x00consent"  # a consent record broadcast to every partition's copy


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything ``fedbroker broker run`` needs; the CLI builds it from flags.

    ``recorded_floor`` is the federation's start: no consent is older.
    """

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
    metrics_bind: str = DEFAULT_METRICS_BIND
    data_dir: Path = Path(".fedbroker/broker")
    store: str = "rocksdb://"
    accepted_epochs: frozenset[int] | None = None
    refit_interval_s: float = 30.0
    checkpoint_interval_s: float = 60.0
    directory_poll_s: float = DEFAULT_DIRECTORY_POLL_S
    max_skew: timedelta = DEFAULT_MAX_SKEW
    occurred_floor: datetime = DEFAULT_OCCURRED_FLOOR
    recorded_floor: datetime = DEFAULT_RECORDED_FLOOR
    limits: Limits = field(default_factory=Limits)
    max_attempts: int = 3
    security: KafkaSecurity = KafkaSecurity()

    def policy(self) -> AdmissionPolicy:
        return AdmissionPolicy(
            limits=self.limits,
            max_skew=self.max_skew,
            occurred_floor=self.occurred_floor,
            recorded_floor=self.recorded_floor,
            accepted_epochs=self.accepted_epochs,
        )


def _rejected_id(topic: str, partition: int, offset: int) -> str:
    return hashlib.sha256(f"{topic}/{partition}/{offset}".encode()).hexdigest()[:32]


def _coords(message: Any) -> str:
    return f"{message.topic}/{message.partition}/{message.offset}"


async def _side(
    task: str, backoff: Backoff, metrics: BrokerMetrics, work: Callable[[], Awaitable[None]]
) -> None:
    """Run a timer's work; on any error count it, log its class and back off.

    A side path (a threshold refit, a checkpoint tick, a directory reload) that
    fails must not kill the worker: the next tick retries once the backoff has
    passed (``KafkaConnectionError`` with a node down killed a worker before).
    """
    if not backoff.ready(time.monotonic()):
        return
    try:
        await work()
    except Exception as exc:  # noqa: BLE001 - a side path never kills the worker
        metrics.side_errors.labels(task, type(exc).__name__).inc()
        delay = backoff.failed(time.monotonic())
        logger.warning("%s failed (%s); retrying in %.0f s", task, type(exc).__name__, delay)
    else:
        backoff.succeeded()


def build_app(settings: BrokerSettings) -> faust.App:
    """Load and check keys and the directory, then assemble topics, tables and agents."""
    watch = DirectoryWatch.open(settings.directory, settings.trust_anchor,
                                SerialStore(settings.data_dir / "directory-serials.json"),
                                datetime.now(UTC))  # fmt: skip
    key = load_private_key(settings.signing_key)
    if not isinstance(key, Ed25519PrivateKey):
        raise Rejected("the broker's signing key is not Ed25519", reason="bad-key")
    codec = Codec()
    policy = settings.policy()

    def admission() -> AdmissionPolicy:
        """The policy now: linkage-key epochs from the directory in force unless configured."""
        if settings.accepted_epochs is not None:
            return policy
        return replace(policy, accepted_epochs=watch.current.accepted_epochs)

    threshold = choose_threshold(settings.threshold, None)
    core = PartitionCore(watch.current, Matcher(threshold.threshold), key)
    metrics = BrokerMetrics()
    metrics.threshold.set(threshold.threshold)
    metrics.directory_serial.set(watch.current.serial)
    metrics.deciding.set(1)
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
    councils = sorted(watch.councils)
    source_names = [f"{prefix}.{role}.{gss}" for gss in councils for role in ("events", "consent")]
    attempts_name = f"{prefix}.broker.attempts"
    ensure_topics(
        settings.bootstrap,
        source_names
        + [f"{prefix}.rejected", f"{prefix}.audit", f"{prefix}.broker.matches", attempts_name]
        + [notify_topic(prefix, s.member_id) for s in watch.current.services],
        partitions=settings.partitions,
        replication=replication,
        security=settings.security,
        # Deleting old audit records would break every chain's first link.
        configs={f"{prefix}.audit": {"retention.ms": "-1"},
                 attempts_name: {"cleanup.policy": "compact"}},
    )  # fmt: skip
    sources = app.topic(*source_names, **raw)
    routed = app.topic(
        f"{prefix}.broker.routed", partitions=settings.partitions, internal=True, **raw
    )
    rejected_topic = app.topic(f"{prefix}.rejected", **raw)
    audit_topic = app.topic(f"{prefix}.audit", **raw)
    matches_topic = app.topic(f"{prefix}.broker.matches", **raw)
    attempts_topic = app.topic(attempts_name, **raw)
    notify_topics = {
        s.member_id: app.topic(notify_topic(prefix, s.member_id), **raw)
        for s in watch.current.services
    }
    broker_id = watch.current.broker.member_id
    states = app.Table("token-state", partitions=settings.partitions, default=None, **table)
    # a full copy in every partition, fed by a broadcast (broker/_consent_view.py)
    consent_table = app.Table(
        "consent-by-token", partitions=settings.partitions, default=None, **table
    )
    heads = app.Table("audit-heads", partitions=settings.partitions, default=None, **table)
    histograms = app.Table(
        "score-histograms", partitions=settings.partitions, default=None, **table
    )
    consent_view = ConsentTableView(consent_table)
    chains: dict[str, AuditChain] = {}
    # Read from the metrics thread at each scrape: copy the dict in one (atomic) call.
    metrics.checkpoint_age.track(lambda: {c: chain.head for c, chain in chains.copy().items()})
    state_cache = StateCache()
    pending_scores: dict[int, list[float]] = {}
    renewed = asyncio.Event()

    async def persist_attempt(coords: str, count: int | None) -> None:
        value = None if count is None else str(count).encode()
        await attempts_topic.send(key=coords.encode(), value=value)

    attempts = AttemptCounts.of(
        persist_attempt, read_attempts(settings.bootstrap, attempts_name, settings.security)
    )

    def observe_lag(message: Any) -> None:
        highwater = app.consumer.highwater(message.tp)
        if highwater is not None:
            lag = max(int(highwater) - int(message.offset) - 1, 0)
            metrics.lag.labels(message.topic, str(message.partition)).set(lag)

    async def reject(
        topic: str, partition: int, offset: int, reason: str, event_id: str | None
    ) -> None:
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
        # Counted once written: a send Kafka refused is tried again by ``guarded``.
        metrics.rejected.labels(reason).inc()

    async def until_deciding() -> None:
        """Wait while the directory is expired: deciding on it would trust stale keys.

        Faust waits for the message in hand before it stops or rebalances, and
        that message must not be decided, quarantined or committed. So a worker
        asked to stop (or to give up partitions) while expired exits at once,
        uncommitted, as after a crash; it refuses to start again until a valid
        directory is installed, and the message is read again then.
        """
        while True:
            renewed.clear()
            if watch.usable(datetime.now(UTC)):
                return
            metrics.deciding.set(0)
            if app.should_stop or app.rebalancing:
                logger.error("%s; exiting without committing", watch.why)
                logging.shutdown()
                os._exit(EXIT_DIRECTORY_EXPIRED)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(renewed.wait(), timeout=1.0)

    def guard(message: Any, stage: str, work: Callable[[], Awaitable[None]]) -> Awaitable[None]:
        async def refuse(reason: str) -> None:
            await reject(message.topic, message.partition, message.offset, reason, None)

        return guarded(
            _coords(message), stage, work, attempts=attempts, reject=refuse,
            count_failure=lambda s, e: metrics.failures.labels(s, e).inc(),
            max_attempts=settings.max_attempts,
        )  # fmt: skip

    async def verify_one(message: Any) -> None:
        record = admit(message.value or b"", topic=message.topic, directory=watch.current,
                       codec=codec, now=datetime.now(UTC), policy=admission())  # fmt: skip
        if isinstance(record, ConsentRecord):
            envelope: dict[str, Any] = {
                "kind": "consent",
                "record": base64.b64encode(codec.encode(record)).decode(),
            }
            # To every partition first, so each one's copy of consent holds it
            # before any event routed after it; then by exact and blocking tokens
            # (an erasure forgets the subject's sightings there, and is audited).
            broadcast = json.dumps({**envelope, "kind": "consent-view"}).encode()
            for partition in range(settings.partitions):
                await routed.send(key=_CONSENT_VIEW, value=broadcast, partition=partition)
            tokens = list(dict.fromkeys(t.key() for t in record.tokens + record.blocking_tokens))
        else:
            metrics.events.labels(record.source_council, record.event_type.value).inc()
            sighting = Sighting.from_event(record, retention=retention_for(watch.current, record))
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

    @app.agent(sources)
    async def verify(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            await until_deciding()
            started = time.perf_counter()
            await guard(message, "verify", functools.partial(verify_one, message))
            metrics.processing.labels("verify").observe(time.perf_counter() - started)
            observe_lag(message)

    async def chain_for(partition: int) -> AuditChain:
        """The partition's chain, its head and recent decisions recovered from the audit topic.

        Recovered once per process, before the first append: the topic, not the
        table, is the chain's truth after a crash (``broker._chain_recovery``).
        """
        chain_id = f"{prefix}.broker/{partition}"
        if chain_id not in chains:
            stored = heads.get(chain_id)
            now = datetime.now(UTC)
            window = policy.max_age + policy.max_skew
            tail = await asyncio.get_running_loop().run_in_executor(
                None,
                functools.partial(
                    read_chain_tail, settings.bootstrap, f"{prefix}.audit",
                    chain_id, now - window, settings.security,
                ),
            )  # fmt: skip
            recovered = recover_chain(
                chain_id,
                ChainHead.from_dict(json.loads(stored)) if stored else None,
                tail,
                now=now,
                window=window,
            )
            chains[chain_id] = OnceChain(
                recovered,
                key,
                window=window,
                checkpoint_interval=timedelta(seconds=settings.checkpoint_interval_s),
            )
            chains[chain_id].start(now)
        return chains[chain_id]

    async def forget_chains(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        """A chain whose routed partition leaves is recovered from the topic when it returns.

        Another worker appends to it meanwhile, so a head kept here would fork it.
        """
        for tp in args[0] if args else ():
            if tp.topic == routed.get_topic_name():
                chains.pop(f"{prefix}.broker/{tp.partition}", None)

    app.on_partitions_revoked.connect(forget_chains)

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

    async def match_one(event: Any) -> None:
        token = event.key.decode()
        envelope, routed_sighting = _envelope(event.value)
        partition = event.message.partition
        chain = await chain_for(partition)
        if envelope["kind"] == "tick":
            if chain.checkpoint_due(datetime.now(UTC)):
                checkpoint = chain.checkpoint(datetime.now(UTC), reason="idle")
                heads[chain.head.chain] = json.dumps(chain.head.to_dict()).encode()
                await audit_topic.send(
                    key=chain.head.chain.encode(), value=codec.encode(checkpoint)
                )
            return
        if envelope["kind"] == "consent-view":
            record = codec.decode_as(base64.b64decode(envelope["record"]), ConsentRecord)
            for held_token, entry in applied_entries(consent_view, record).items():
                consent_table[held_token] = entry
            return
        state_bytes = states.get(token)
        state = state_cache.load(token, state_bytes)
        now = datetime.now(UTC)
        if envelope["kind"] == "consent":
            record = codec.decode_as(base64.b64decode(envelope["record"]), ConsentRecord)
            applied = core.on_consent(
                token, record, state, consent_view.ledger_for(record), chain, now,
                forget=frozenset(envelope.get("forget", ())),
            )  # fmt: skip
            if applied.state is not None:
                states[token] = state_cache.encode(token, state, state_bytes, applied.state)
                metrics.sightings.inc(
                    applied.state.sighting_count()
                    - (state.sighting_count() if state is not None else 0)
                )
            audit, notifications = applied.audit, []
            for other, event_ids in applied.cascade.items():
                onward = {**envelope, "forget": sorted(event_ids)}
                await routed.send(key=other.encode(), value=json.dumps(onward).encode())
        else:
            assert routed_sighting is not None
            sighting = routed_sighting
            published = datetime.fromisoformat(envelope["published_at"])
            new_state, effects = core.on_sighting(
                token, sighting, state, consent_view, chain, now,
                origin="/".join(str(c) for c in envelope["coordinates"]),
                seen_until=published + policy.max_age + policy.max_skew,
            )  # fmt: skip
            states[token] = state_cache.encode(token, state, state_bytes, new_state)
            metrics.sightings.inc(
                new_state.sighting_count() - (state.sighting_count() if state is not None else 0)
            )
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
            for _ in notifications:
                metrics.notified_latency.observe((now - published).total_seconds())
        if audit:  # the head moved
            heads[chain.head.chain] = json.dumps(chain.head.to_dict()).encode()
        for notification in notifications:
            metrics.notifications.labels(notification.agreement_id).inc()
            await notify_topics[notification.recipient].send(
                key=notification.notification_id.encode(),
                value=seal_notification(notification, key, broker_id, codec),
            )
        for entry_record in audit:
            await audit_topic.send(key=chain.head.chain.encode(), value=codec.encode(entry_record))

    @app.agent(routed)
    async def match(stream: Any) -> None:
        async for event in stream.events():
            await until_deciding()
            started = time.perf_counter()
            await guard(event.message, "match", functools.partial(match_one, event))
            metrics.processing.labels("match").observe(time.perf_counter() - started)
            observe_lag(event.message)

    tick_backoff = Backoff(base_s=settings.checkpoint_interval_s / 3)

    @app.timer(interval=settings.checkpoint_interval_s / 3)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        """Let every partition's chain sign a checkpoint even when no decision arrives.

        Checkpoints are otherwise written only as decisions are appended, so the
        last records before a quiet spell (or a shutdown) would wait unsigned.
        """

        async def send_ticks() -> None:
            for partition in range(settings.partitions):
                await routed.send(key=_TICK, value=b'{"kind": "tick"}', partition=partition)

        await _side("tick", tick_backoff, metrics, send_ticks)

    refit_backoff = Backoff(base_s=settings.refit_interval_s, cap_s=10 * settings.refit_interval_s)

    async def refit_once() -> None:
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

    @app.timer(interval=settings.refit_interval_s)  # type: ignore[untyped-decorator]
    async def refit() -> None:
        """Refit the Dice threshold from every partition's scores.

        Reads the histograms' changelog, not the table: iterating a RocksDB
        table from a timer stalled a partition's processing in tests.
        """
        if settings.threshold is None:
            await _side("refit", refit_backoff, metrics, refit_once)

    directory_backoff = Backoff(base_s=settings.directory_poll_s)

    async def reload_directory() -> None:
        now = datetime.now(UTC)
        try:
            reloaded = watch.poll(now)
        except DirectoryNotUsable as exc:
            metrics.directory_reloads.labels(exc.reason).inc()
            logger.error("directory change refused (%s); serial %d stays in use",
                         exc.reason, watch.current.serial)  # fmt: skip
            reloaded = None
        if reloaded is not None:
            core.directory = watch.current
            metrics.directory_serial.set(reloaded.serial)
            outcome = "restart-needed" if reloaded.restart_needed else "applied"
            metrics.directory_reloads.labels(outcome).inc()
            renewed.set()
        metrics.directory_expires_in.set(watch.expires_in(now))
        metrics.deciding.set(1 if watch.usable(now) else 0)

    @app.timer(interval=settings.directory_poll_s)  # type: ignore[untyped-decorator]
    async def directory_check() -> None:
        """Apply a changed directory at once, refuse a rollback, and report its expiry."""
        await _side("directory", directory_backoff, metrics, reload_directory)

    metrics.directory_expires_in.set(watch.expires_in(datetime.now(UTC)))
    metrics.serve(settings.metrics_port, settings.metrics_bind)

    return app


@functools.lru_cache(maxsize=4096)
def _envelope(body: bytes) -> tuple[dict[str, Any], Sighting | None]:
    """A routed message, parsed once per worker: an event arrives once per token."""
    envelope = json.loads(body)
    sighting = Sighting.from_dict(envelope["sighting"]) if envelope["kind"] == "event" else None
    return envelope, sighting
