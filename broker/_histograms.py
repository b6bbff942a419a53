"""Every worker's blocked-pair scores, read back from the histogram table's changelog.

Each worker keeps the score histograms of the partitions it owns; fitted on
those alone, two workers would settle on slightly different thresholds. The
table's changelog topic holds the latest histogram of every partition, so each
worker reads all of it and fits on the same, federation-wide sample.
"""

from __future__ import annotations

import json
import logging

from kafka import KafkaConsumer, TopicPartition

from broker._threshold import ScoreHistogram
from consent import KafkaSecurity

__all__ = ["read_histograms"]

logger = logging.getLogger(__name__)

_POLL_MS = 500


def read_histograms(
    bootstrap: str,
    changelog: str,
    security: KafkaSecurity = KafkaSecurity(),  # noqa: B008 - frozen, never mutated
) -> ScoreHistogram:
    """The sum of the latest histogram of every partition on ``changelog``.

    Blocking (kafka-python): call it from a thread. A missing or unreadable
    topic gives an empty histogram, and the caller keeps its threshold.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **security.kafka_python()
    )
    latest: dict[bytes, bytes] = {}
    try:
        partitions = [
            TopicPartition(changelog, p) for p in consumer.partitions_for_topic(changelog) or ()
        ]
        if not partitions:
            return ScoreHistogram()
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=_POLL_MS).values():
                for record in records:
                    if record.key is not None and record.value:
                        latest[record.key] = record.value
    finally:
        consumer.close()
    merged = ScoreHistogram()
    for value in latest.values():
        try:
            merged = merged.merge(ScoreHistogram.from_dict(json.loads(value)))
        except (ValueError, TypeError) as exc:
            logger.warning("skipping an unreadable score histogram (%s)", type(exc).__name__)
    return merged
