"""``read_to_end``: a snapshot of a topic, through the real Kafka."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from fedbroker import TopicReadError, TopicRecord, read_to_end

pytestmark = pytest.mark.kafka


def _topic(bootstrap: str, name: str, partitions: int) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    return name


def test_reads_every_partition_in_order_and_stops_at_the_end_seen_at_start(
    kafka_bootstrap, topic_factory
):
    topic = _topic(kafka_bootstrap, topic_factory("read-to-end"), 3)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(30):
        producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 3)
    producer.flush()
    records = read_to_end(kafka_bootstrap, topic)
    assert len(records) == 30
    assert records == sorted(records, key=lambda r: (r.partition, r.offset))
    assert {r.partition for r in records} == {0, 1, 2}
    assert records[0] == TopicRecord(0, 0, b"k0", b"v0")
    # A second read sees what arrived since; the first did not wait for it.
    producer.send(topic, key=b"late", value=b"late", partition=1)
    producer.flush()
    producer.close()
    again = read_to_end(kafka_bootstrap, topic)
    assert len(again) == 31 and TopicRecord(1, 10, b"late", b"late") in again


def test_a_missing_topic_is_empty_or_an_error_as_asked(kafka_bootstrap, topic_factory):
    name = topic_factory("never-created")
    assert read_to_end(kafka_bootstrap, name) == []
    with pytest.raises(TopicReadError, match="does not exist") as caught:
        read_to_end(kafka_bootstrap, name, missing_ok=False)
    assert caught.value.reason == "topic-read-failed"


def test_an_unreachable_cluster_is_a_typed_error_within_the_timeout():
    started = time.monotonic()
    with pytest.raises(TopicReadError):
        # Nothing listens on port 9 (discard) on loopback.
        read_to_end(
            "127.0.0.1:9",
            "any",
            timeout_s=5,
            consumer_config={"request_timeout_ms": 3000, "api_version_auto_timeout_ms": 2000},
        )
    assert time.monotonic() - started < 30
