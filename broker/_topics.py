"""The topics a worker reads and writes: their names, their creation, their Faust handles.

A worker subscribes to every council's topics at start; a topic created later
would only be seen after a metadata refresh, so they are made up front, and the
worker waits until the brokers report every one of them. ``declare_topics``
names every topic once (``BrokerTopics``), so the agents and timers share one
set of handles and ``build_app`` only wires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broker._errors import KafkaUnavailable
from broker._kafka_client import replication_configs
from broker._kafka_edge import kafka_errors
from consent import KafkaSecurity, notify_topic

__all__ = ["ROUTED_SUFFIX", "BrokerTopics", "declare_topics", "ensure_topics"]

#: The routed topic (batches since issue 15: the per-token JSON messages of the
#: previous release do not decode, so state is rebuilt once, docs/broker.md).
ROUTED_SUFFIX = "broker.routed"
_RAW: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}


@dataclass(frozen=True, slots=True)
class BrokerTopics:
    """The Faust topic handles of one worker (all raw bytes: the codecs are ours)."""

    sources: Any
    routed: Any
    rejected: Any
    audit: Any
    matches: Any
    attempts: Any
    attempts_name: str
    notify: dict[str, Any]


def declare_topics(
    app: Any,
    *,
    prefix: str,
    councils: Sequence[str],
    services: Sequence[str],
    partitions: int,
    replication: int,
    security: KafkaSecurity,
    bootstrap: str,
) -> BrokerTopics:
    """Create (if missing) and declare every topic a worker uses; returns the handles."""
    sources = [f"{prefix}.{role}.{gss}" for gss in councils for role in ("events", "consent")]
    attempts = f"{prefix}.broker.attempts"
    routed = f"{prefix}.{ROUTED_SUFFIX}"
    notify = {s: notify_topic(prefix, s) for s in services}
    # The routed topic too, though Faust would declare it: a worker that joined
    # before it was in the brokers' metadata ignored it and never consumed it
    # (nor anything else: the demo's broker sat idle for its whole run).
    ensure_topics(
        bootstrap,
        sources + [routed, f"{prefix}.rejected", f"{prefix}.audit", f"{prefix}.broker.matches",
                   attempts] + list(notify.values()),
        partitions=partitions,
        replication=replication,
        security=security,
        # Deleting old audit records would break every chain's first link.
        configs={f"{prefix}.audit": {"retention.ms": "-1"},
                 attempts: {"cleanup.policy": "compact"}},
    )  # fmt: skip
    return BrokerTopics(
        sources=app.topic(*sources, **_RAW),
        routed=app.topic(routed, partitions=partitions, internal=True, **_RAW),
        rejected=app.topic(f"{prefix}.rejected", **_RAW),
        audit=app.topic(f"{prefix}.audit", **_RAW),
        matches=app.topic(f"{prefix}.broker.matches", **_RAW),
        attempts=app.topic(attempts, **_RAW),
        attempts_name=attempts,
        notify={member: app.topic(name, **_RAW) for member, name in notify.items()},
    )


logger = logging.getLogger(__name__)

_METADATA_TIMEOUT_S = 30.0


def ensure_topics(
    bootstrap: str,
    names: list[str],
    *,
    partitions: int,
    replication: int,
    configs: dict[str, dict[str, str]] | None = None,
    security: KafkaSecurity = KafkaSecurity(),  # noqa: B008 - frozen, never mutated
) -> None:
    """Create the named topics if missing, then wait until all are visible.

    ``configs`` gives per-topic settings (the audit topic keeps records for ever).

    Raises:
        KafkaUnavailable: Kafka refused or timed out (reason ``kafka-unavailable``),
            or the topics stayed invisible (reason ``topics-missing``).
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    configs = configs or {}
    with kafka_errors("creating topics"):
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
    timeout: float = _METADATA_TIMEOUT_S,
    *,
    security: KafkaSecurity = KafkaSecurity(),  # noqa: B008 - frozen, never mutated
) -> None:
    """Wait until the brokers report every topic with its partitions.

    Topics another worker has just created may not be in this client's metadata
    yet; joining the group only once they are means the worker subscribes to
    every council's topics from its first assignment.
    """
    from kafka import KafkaConsumer

    with kafka_errors("reading topic metadata"):
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, **security.kafka_python())
        deadline = time.monotonic() + timeout
        try:
            while True:
                unseen = {n for n in names if not consumer.partitions_for_topic(n)}
                if not unseen:
                    return
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(
                        f"{len(unseen)} topics not visible after {timeout:.0f} s",
                        reason="topics-missing",
                    )
                time.sleep(0.5)  # polling the brokers' metadata: the condition is re-checked
        finally:
            consumer.close()
