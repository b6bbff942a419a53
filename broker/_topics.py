"""Creating the topics a worker reads and writes before it joins its group.

A worker subscribes to every council's topics at start; a topic created later
would only be seen after a metadata refresh, so they are made up front, and the
worker waits until the brokers report every one of them.
"""

from __future__ import annotations

import logging
import time

from broker._errors import KafkaUnavailable
from broker._kafka_client import replication_configs
from broker._kafka_edge import kafka_errors
from consent import KafkaSecurity

__all__ = ["ensure_topics"]

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
