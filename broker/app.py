"""The broker's Faust application: the one place its parts are constructed and wired.

Two agents (``broker._agents``): ``verify`` reads every council's event and
consent topics in batches, refuses what fails (to ``<prefix>.rejected``), and
sends one routed batch per target partition (``broker._routed``), so that
everything sharing a token meets in one partition in order; ``match`` keeps
per-token state in changelogged tables and hands each routed item to the pure
``PartitionCore``, publishing only what the core returns. Timers
(``broker._timers``) tick the audit chains, refit the threshold and watch the
directory. This module only builds and connects them, on one injected clock.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker._agents import install_agents
from broker._consumer import StallFreeApp
from broker._directory_watch import DirectoryWatch
from broker._errors import BrokerError
from broker._gc_policy import FrozenHeap
from broker._histograms import read_attempts
from broker._kafka_client import cluster_replication, faust_credentials
from broker._matching import Matcher
from broker._metrics import BrokerMetrics
from broker._partition import PartitionCore
from broker._parts import EXIT_DIRECTORY_EXPIRED, Parts
from broker._poison import AttemptCounts
from broker._settings import (
    DEFAULT_METRICS_BIND,
    DEFAULT_PARTITIONS,
    FAUST_TUNING,
    PRODUCER_BUFFER_MESSAGES,
    SESSION_TIMEOUT_S,
    BrokerSettings,
)
from broker._table import BrokerTable
from broker._threshold import choose_threshold
from broker._timers import Clock, install_timers
from broker._timers import side as _side
from broker._topics import declare_topics, ensure_topics
from broker._verify import Rejected
from consent import SerialStore, load_private_key, public_key_b64
from schemas import Codec

__all__ = [
    "DEFAULT_METRICS_BIND",
    "DEFAULT_PARTITIONS",
    "EXIT_DIRECTORY_EXPIRED",
    "FAUST_TUNING",
    "PRODUCER_BUFFER_MESSAGES",
    "SESSION_TIMEOUT_S",
    "BrokerSettings",
    "build_app",
    "ensure_topics",
]

logger = logging.getLogger(__name__)

_ = _side  # ``broker.app._side``: the timers' guard, as tests have always imported it


def make_faust_app(settings: BrokerSettings, replication: int) -> faust.App:
    """The ``faust.App`` with the broker's client settings (the bench's baseline uses them)."""
    # faust.App with the start-up stall's two upstream faults worked around
    app = StallFreeApp(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store=settings.store,
        topic_partitions=settings.partitions,
        topic_replication_factor=replication,
        broker_credentials=faust_credentials(settings.security),
        web_enabled=False,
        # Faust names its RocksDB files by table, not by app id: a worker started
        # under another --app-id on the same data dir would read the other
        # group's stored offsets and stop with a ConsistencyError.
        datadir=str(settings.data_dir / settings.app_id),
        producer_acks=-1,
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=SESSION_TIMEOUT_S / 5,
        consumer_auto_offset_reset="earliest",
        Table=BrokerTable,
        **FAUST_TUNING,
    )
    # Faust pauses every stream once 100 table and topic writes await sending.
    app.producer.buffer.max_messages = PRODUCER_BUFFER_MESSAGES
    return app


def build_app(settings: BrokerSettings, *, clock: Clock | None = None) -> faust.App:
    """Load and check keys and the directory, then assemble topics, tables and agents."""
    clock = clock or Clock()
    key = load_private_key(settings.signing_key)
    if not isinstance(key, Ed25519PrivateKey):
        raise Rejected("the broker's signing key is not Ed25519", reason="bad-key")
    watch = DirectoryWatch.open(settings.directory, settings.trust_anchor,
                                SerialStore(settings.data_dir / "directory-serials.json"),
                                clock.now(), signing_key=key.public_key())  # fmt: skip
    listed = watch.current.broker
    if listed.signing_key is None or public_key_b64(listed.signing_key) != public_key_b64(key):
        # every notification and checkpoint signed with it would be refused downstream
        raise BrokerError(
            f"{settings.signing_key} is not the key the directory lists for "
            f"broker '{listed.member_id}'",
            reason="broker-key-mismatch",
        )
    unsigned = (settings.accepted_epochs or frozenset()) - watch.current.accepted_epochs
    if unsigned:
        raise BrokerError(
            f"--key-epoch {', '.join(map(str, sorted(unsigned)))}: not accepted by directory "
            f"serial {watch.current.serial}; the directory decides which epochs are in force",
            reason="key-epoch-not-in-directory",
        )
    threshold = choose_threshold(settings.threshold, None)
    metrics = BrokerMetrics()
    metrics.threshold.set(threshold.threshold)
    metrics.directory_serial.set(watch.current.serial)
    metrics.deciding.set(1)
    logger.info("matching at %s", threshold.describe())
    replication = cluster_replication(settings.bootstrap, settings.security, settings.replication)
    app = make_faust_app(settings, replication)
    topics = declare_topics(
        app, prefix=settings.topic_prefix, councils=sorted(watch.councils),
        services=[s.member_id for s in watch.current.services],
        partitions=settings.partitions, replication=replication,
        security=settings.security, bootstrap=settings.bootstrap,
    )  # fmt: skip
    table: dict[str, Any] = {"key_type": str, "value_type": bytes, "default": None,
                             "partitions": settings.partitions}  # fmt: skip

    async def persist_attempt(coords: str, count: int | None) -> None:
        value = None if count is None else str(count).encode()
        await topics.attempts.send(key=coords.encode(), value=value)

    parts = Parts(
        app=app, settings=settings, watch=watch,
        core=PartitionCore(watch.current, Matcher(threshold.threshold), key),
        key=key, codec=Codec(), metrics=metrics, clock=clock, topics=topics,
        states=app.Table("token-state", **table),
        # a full copy in every partition, fed by a broadcast (broker/_consent_view.py)
        consent_table=app.Table("consent-by-token", **table),
        heads=app.Table("audit-heads", **table),
        histograms=app.Table("score-histograms", **table),
        attempts=AttemptCounts.of(persist_attempt, read_attempts(
            settings.bootstrap, topics.attempts_name, settings.security)),
        policy=settings.policy(),
    )  # fmt: skip
    # Read from the metrics thread at each scrape: copy the dict in one (atomic) call.
    metrics.checkpoint_age.track(
        lambda: {c: chain.head for c, chain in parts.chains.copy().items()}
    )
    install_agents(parts)
    install_timers(parts)
    pauses = [metrics.gc_pauses.labels(str(generation)) for generation in range(3)]
    heap = FrozenHeap(observe=lambda generation, seconds: pauses[generation].observe(seconds))
    metrics.gc_frozen.set_function(heap.frozen)

    @app.task  # type: ignore[untyped-decorator]
    async def freeze_survivors() -> None:
        """In the worker process only (a test building the app leaves ``gc`` alone)."""
        heap.install()

    async def forget_chains(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        """A chain whose routed partition leaves, or is assigned, is recovered from the topic.

        Forgetting on assignment too re-establishes every head from the topic
        whatever the revocation path (issue 15 item 4).
        """
        for tp in args[0] if args else ():
            if tp.topic == topics.routed.get_topic_name():
                parts.forget_chain(tp.partition)

    app.on_partitions_revoked.connect(forget_chains)
    app.on_partitions_assigned.connect(forget_chains)
    metrics.directory_expires_in.set(watch.expires_in(clock.now()))
    metrics.serve(settings.metrics_port, settings.metrics_bind)
    return app
