"""What one subscriber needs to know, settled before it starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from consent import KafkaSecurity, notify_topic
from subscriber._webhook import Backoff

__all__ = [
    "DEFAULT_MAX_UNEXPECTED_ATTEMPTS",
    "DEFAULT_PREFIX",
    "DEFAULT_RETRY_BACKOFF",
    "SubscriberSettings",
    "default_group",
]

DEFAULT_PREFIX = "fed"
DEFAULT_MAX_UNEXPECTED_ATTEMPTS = 3
DEFAULT_RETRY_BACKOFF = Backoff(initial=0.5, factor=2.0, maximum=30.0, attempts=0)
"""Between hand-overs that failed: grows to 30 s, never gives up (``attempts`` unused)."""


def default_group(prefix: str, service: str) -> str:
    """The service's consumer group unless told otherwise: ``<prefix>.subscriber.<service>``."""
    return f"{prefix}.subscriber.{service}"


@dataclass(frozen=True, slots=True)
class SubscriberSettings:
    """Where to read, where to keep state, and how hard to retry.

    Args:
        bootstrap: Kafka bootstrap servers (``KAFKA_BOOTSTRAP_SERVERS`` in the CLI).
        service: this service's id in the directory.
        store: the delivered-id store (SQLite); one per service and group.
        dead_letters: the dead-letter file (JSON Lines).
        prefix: topic prefix (default ``DEFAULT_PREFIX``).
        topic: the topic to read (default None: ``notify_topic(prefix, service)``).
        group: the group id offsets are committed under (default None:
            ``<prefix>.subscriber.<service>``); one process per group.
        agreement: hand over only this agreement's notifications; the others are
            passed by (default None: every agreement).
        max_unexpected_attempts: tries of a message that raises an unexpected
            error, counted across restarts, before it is dead-lettered (default 3).
        retry_backoff: waits between failed hand-overs (default
            ``DEFAULT_RETRY_BACKOFF``: up to 30 s, forever).
        poll_timeout: seconds one poll waits for messages (default 0.5).
        security: the service's Kafka credentials (default: an unsecured client;
            the CLI reads ``FEDBROKER_KAFKA_*``).
    """

    bootstrap: str
    service: str
    store: Path
    dead_letters: Path
    prefix: str = DEFAULT_PREFIX
    topic: str | None = None
    group: str | None = None
    agreement: str | None = None
    max_unexpected_attempts: int = DEFAULT_MAX_UNEXPECTED_ATTEMPTS
    retry_backoff: Backoff = DEFAULT_RETRY_BACKOFF
    poll_timeout: float = 0.5
    security: KafkaSecurity = KafkaSecurity()

    @property
    def topic_name(self) -> str:
        return self.topic or notify_topic(self.prefix, self.service)

    @property
    def group_id(self) -> str:
        return self.group or default_group(self.prefix, self.service)
