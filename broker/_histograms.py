"""Reading a compacted topic back: every worker's score histograms, the attempt log.

Each worker keeps the score histograms of the partitions it owns; fitted on
those alone, two workers would settle on slightly different thresholds. The
table's changelog topic holds the latest histogram of every partition, so each
worker reads all of it and fits on the same, federation-wide sample. The
per-message attempt log (``broker._poison``) is read back the same way at start.
"""

from __future__ import annotations

import json
import logging

from kafka import KafkaConsumer, TopicPartition

from broker._kafka_edge import kafka_errors
from broker._threshold import ScoreHistogram
from consent import KafkaSecurity

__all__ = ["read_attempts", "read_histograms", "read_latest"]

logger = logging.getLogger(__name__)

_POLL_MS = 500


_UNSECURED = KafkaSecurity()


def read_latest(
    bootstrap: str, topic: str, security: KafkaSecurity = _UNSECURED
) -> dict[bytes, bytes]:
    """The latest value of every key on ``topic`` (a tombstone removes the key).

    Blocking (kafka-python): call it from a thread or before the app starts. A
    missing topic gives nothing. Kafka client errors surface as
    ``KafkaUnavailable``.
    """
    latest: dict[bytes, bytes] = {}
    with kafka_errors(f"reading {topic}"):
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, **security.kafka_python()
        )
        try:
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
            if not partitions:
                return latest
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            while any(consumer.position(tp) < ends[tp] for tp in partitions):
                for records in consumer.poll(timeout_ms=_POLL_MS).values():
                    for record in records:
                        if record.key is None:
                            continue
                        if record.value:
                            latest[record.key] = record.value
                        else:
                            latest.pop(record.key, None)
        finally:
            consumer.close()
    return latest


def read_histograms(
    bootstrap: str, changelog: str, security: KafkaSecurity = _UNSECURED
) -> ScoreHistogram:
    """The sum of the latest histogram of every partition on ``changelog``.

    An unreadable histogram is skipped (and logged); the caller keeps its
    threshold when nothing is there.
    """
    merged = ScoreHistogram()
    for value in read_latest(bootstrap, changelog, security).values():
        try:
            merged = merged.merge(ScoreHistogram.from_dict(json.loads(value)))
        except (ValueError, TypeError) as exc:
            logger.warning("skipping an unreadable score histogram (%s)", type(exc).__name__)
    return merged


def read_attempts(
    bootstrap: str, topic: str, security: KafkaSecurity = _UNSECURED
) -> dict[str, int]:
    """Failed attempts per message coordinates, as the attempt log last recorded them."""
    held: dict[str, int] = {}
    for key, value in read_latest(bootstrap, topic, security).items():
        try:
            held[key.decode()] = int(value)
        except (UnicodeDecodeError, ValueError):
            logger.warning("skipping an unreadable attempt count")
    return held
