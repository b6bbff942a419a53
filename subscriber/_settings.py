"""What one subscriber needs to know, settled before it starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from consent import KafkaSecurity
from subscriber._webhook import Backoff

__all__ = [
    "DEFAULT_MAX_UNEXPECTED_ATTEMPTS",
    "DEFAULT_PREFIX",
    "DEFAULT_RETRY_BACKOFF",
    "DEFAULT_SESSION_TIMEOUT",
    "SubscriberSettings",
    "default_group",
    "notify_topic",
]

DEFAULT_PREFIX = "fed"
DEFAULT_SESSION_TIMEOUT = 10.0
"""Seconds before Kafka gives a dead subscriber's partitions to another (client default: 45)."""
DEFAULT_MAX_UNEXPECTED_ATTEMPTS = 3
DEFAULT_RETRY_BACKOFF = Backoff(initial=0.5, factor=2.0, maximum=30.0, attempts=0)
"""Between hand-overs that failed: grows to 30 s, never gives up (``attempts`` unused)."""


def notify_topic(prefix: str, service: str) -> str:
    """A service's own notification topic (DESIGN section 3): ``<prefix>.notify.<service>``.

    ``consent.notify_topic`` is the one definition once the wire release lands;
    until then this mirrors it.
    """
    import consent

    shared = getattr(consent, "notify_topic", None)
    if shared is not None:
        return str(shared(prefix, service))
    return f"{prefix}.notify.{service}"


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
        group: consumer group (default None: ``<prefix>.subscriber.<service>``).
        agreement: hand over only this agreement's notifications; the others are
            passed by (default None: every agreement).
        max_unexpected_attempts: tries of a message that raises an unexpected
            error, counted across restarts, before it is dead-lettered (default 3).
        retry_backoff: waits between failed hand-overs (default
            ``DEFAULT_RETRY_BACKOFF``: up to 30 s, forever).
        poll_timeout: seconds one poll waits for messages (default 0.5).
        security: Kafka credentials (default: an unsecured client; the CLI reads
            ``FEDBROKER_KAFKA_*``).
        session_timeout: seconds without a heartbeat before the group moves on
            (default ``DEFAULT_SESSION_TIMEOUT``); a restarted subscriber waits
            this long for the partitions of the one that died.
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
    session_timeout: float = DEFAULT_SESSION_TIMEOUT

    @property
    def topic_name(self) -> str:
        return self.topic or notify_topic(self.prefix, self.service)

    @property
    def group_id(self) -> str:
        return self.group or default_group(self.prefix, self.service)
