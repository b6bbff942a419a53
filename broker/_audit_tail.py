"""Reading a chain's recent records back from the audit topic when a worker takes it on.

The edge half of ``broker._chain_recovery``: blocking (kafka-python), called
once per chain per process before its first append. Reading from the offset
of ``since`` bounds the work to the freshness window; a chain with nothing in
the window is read from the beginning once, since only the topic knows its
true head (retention on the audit topic is infinite).
"""

from __future__ import annotations

import logging
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition

from broker._kafka_edge import kafka_errors
from consent import KafkaSecurity
from schemas import AuditRecord, Codec, FedbrokerError

__all__ = ["read_chain_tail"]

logger = logging.getLogger(__name__)

_POLL_MS = 500
_UNSECURED = KafkaSecurity()


def _read(
    consumer: KafkaConsumer, partitions: list[TopicPartition], key: bytes, since: datetime | None
) -> list[AuditRecord]:
    if since is None:
        consumer.seek_to_beginning(*partitions)
    else:
        found = consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
        ends = consumer.end_offsets(partitions)
        for tp in partitions:
            at = found.get(tp)
            consumer.seek(tp, at.offset if at is not None else ends[tp])
    ends = consumer.end_offsets(partitions)
    codec = Codec()
    records: list[AuditRecord] = []
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        for batch in consumer.poll(timeout_ms=_POLL_MS).values():
            for message in batch:
                if message.key != key or message.value is None:
                    continue
                try:
                    records.append(codec.decode_as(message.value, AuditRecord))
                except FedbrokerError as exc:
                    logger.warning("skipping an unreadable audit record (%s)", exc.reason)
    return records


def read_chain_tail(
    bootstrap: str,
    topic: str,
    chain_id: str,
    since: datetime,
    security: KafkaSecurity = _UNSECURED,
) -> list[AuditRecord]:
    """The chain's records written since ``since`` (all of them if none were), in order.

    Records are keyed by chain id, so one partition holds each chain in order.
    A missing topic gives nothing. Kafka client errors surface as
    ``KafkaUnavailable``.
    """
    key = chain_id.encode()
    with kafka_errors(f"reading {topic}"):
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, **security.kafka_python()
        )
        try:
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
            if not partitions:
                return []
            consumer.assign(partitions)
            records = _read(consumer, partitions, key, since)
            if not records:
                records = _read(consumer, partitions, key, None)
        finally:
            consumer.close()
    return records
