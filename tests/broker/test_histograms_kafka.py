"""Workers fit the threshold on every partition's scores, read from the changelog."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from broker import ScoreHistogram
from broker._histograms import read_histograms

pytestmark = pytest.mark.kafka


def test_the_latest_histogram_of_each_partition_is_summed(kafka_bootstrap, topic_factory):
    topic = topic_factory("histograms-changelog")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])
    admin.close()
    old, newer, other = (ScoreHistogram.of(s) for s in ([0.9], [0.9, 0.5, 0.95], [0.2, 0.99]))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for key, histogram in ((b"scores/0", old), (b"scores/0", newer), (b"scores/1", other)):
        producer.send(topic, key=key, value=json.dumps(histogram.to_dict()).encode(),
                      partition=0 if key == b"scores/0" else 1)  # fmt: skip
    producer.send(topic, key=b"scores/2", value=b"not json", partition=2)
    producer.flush()
    producer.close()
    assert read_histograms(kafka_bootstrap, topic) == newer.merge(other)
    assert read_histograms(kafka_bootstrap, topic_factory("absent")) == ScoreHistogram()
