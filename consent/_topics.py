"""Topic names that more than one party must agree on.

A notification is addressed to one service and travels on that service's own
topic (DESIGN section 3), so the broker that writes it, the service that reads
it and the demo must all compute the same name; one function does.
"""

from __future__ import annotations

import re

from consent._errors import DirectoryInvalid

__all__ = ["NOTIFY_ROLE", "notify_topic"]

NOTIFY_ROLE = "notify"
# Kafka's legal topic characters; a service id outside them could not name a topic.
_LEGAL = re.compile(r"[A-Za-z0-9._-]+")
_MAX_TOPIC = 249


def notify_topic(prefix: str, service: str) -> str:
    """``<prefix>.notify.<service>``: where the broker puts one service's notifications.

    Raises:
        DirectoryInvalid: reason ``unknown-topic`` if the name is not a legal
            Kafka topic (empty parts, other characters, too long).
    """
    name = f"{prefix}.{NOTIFY_ROLE}.{service}"
    if not prefix or not service or not _LEGAL.fullmatch(name) or len(name) > _MAX_TOPIC:
        raise DirectoryInvalid(
            f"service id {service!r} cannot name a notification topic", reason="unknown-topic"
        )
    return name
