"""Read a topic from its beginning to the end it had when the read began.

The CLI (``demo``, ``audit``) and the tests all need "everything on this topic
now": a snapshot, not a subscription. Doing it right has three traps, each hit
once by a private copy of this loop: the end offsets must be taken before
reading (a live topic otherwise never ends), messages past those ends must be
dropped (a poll can return them), and a read must give up rather than hang when
the cluster stops answering. This is the one copy.

The broker's own changelog reader (``broker._histograms``) keeps its loop: the
broker may not import this layer (DESIGN section 9).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedbroker._errors import CommandError

__all__ = ["DEFAULT_READ_TIMEOUT_S", "TopicReadError", "TopicRecord", "read_to_end"]

DEFAULT_READ_TIMEOUT_S = 60.0
_POLL_MS = 500


class TopicReadError(CommandError):
    """A topic could not be read to its end: missing, unreachable, or too slow."""

    reason = "topic-read-failed"


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One message, where it was: no decoding, so any record type fits."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def read_to_end(
    bootstrap: str,
    topic: str,
    *,
    timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    missing_ok: bool = True,
    consumer_config: Mapping[str, Any] | None = None,
) -> list[TopicRecord]:
    """Every message of every partition, up to the end offsets seen at the start.

    No consumer group is joined and nothing is committed, so reading changes
    nothing for anyone else.

    Args:
        bootstrap: the Kafka bootstrap servers.
        topic: the topic to read.
        timeout_s: give up after this long (default ``DEFAULT_READ_TIMEOUT_S``).
        missing_ok: a topic that does not exist reads as empty (default True);
            False raises ``TopicReadError``.
        consumer_config: further kafka-python consumer settings (security
            protocol, certificates), default none.

    Returns:
        The messages in (partition, offset) order.

    Raises:
        TopicReadError: the topic is missing (unless ``missing_ok``), Kafka
            failed, or the end was not reached within ``timeout_s``.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            **dict(consumer_config or {}),
        )
    except KafkaError as exc:
        raise TopicReadError(f"cannot reach Kafka at {bootstrap} ({type(exc).__name__})") from exc
    try:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            if missing_ok:
                return []
            raise TopicReadError(f"topic {topic} does not exist at {bootstrap}")
        partitions = [TopicPartition(topic, p) for p in sorted(numbers)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[TopicRecord] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TopicReadError(f"timed out reading {topic} to its end")
            for tp, batch in consumer.poll(timeout_ms=_POLL_MS).items():
                records.extend(
                    TopicRecord(tp.partition, m.offset, m.key, m.value)
                    for m in batch
                    if m.offset < ends[tp]
                )
    except KafkaError as exc:
        raise TopicReadError(f"reading {topic} failed ({type(exc).__name__})") from exc
    finally:
        consumer.close()
    records.sort(key=lambda r: (r.partition, r.offset))
    return records
