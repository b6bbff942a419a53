"""The connector places each record where kafka-python's default partitioner would."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.partitioner.default import DefaultPartitioner, murmur2

from connectors import load_config, open_connector
from connectors._partitioning import default_partitions, murmur2_many
from fedbroker import read_to_end
from tests.connectors.conftest import COUNCILS

KEYS = st.lists(st.binary(max_size=96), max_size=60)


@given(KEYS)
def test_murmur2_of_many_keys_is_kafkas_murmur2_of_each(keys):
    assert murmur2_many(keys).tolist() == [murmur2(k) & 0xFFFFFFFF for k in keys]


class _Cluster:
    """The two questions kafka-python's partitioner asks of its metadata."""

    def __init__(self, partitions: int) -> None:
        self._partitions = set(range(partitions))

    def topics(self):
        return {"t"}

    def partitions_for_topic(self, topic):
        return self._partitions

    def available_partitions_for_topic(self, topic):
        return self._partitions


@given(KEYS, st.integers(min_value=1, max_value=64))
def test_each_key_lands_on_the_default_partitioners_choice(keys, partitions):
    cluster, partitioner = _Cluster(partitions), DefaultPartitioner()
    expected = [partitioner.partition("t", k, k, None, None, cluster) for k in keys]
    assert default_partitions(keys, partitions) == expected


def test_token_keys_of_a_real_step():
    keys = [f"nhs:1:{n:064x}".encode() for n in range(1000)]
    assert default_partitions(keys, 12) == [(murmur2(k) & 0x7FFFFFFF) % 12 for k in keys]


@pytest.mark.kafka
def test_records_on_a_topic_sit_where_the_default_partitioner_puts_their_keys(
    council_factory, kafka_bootstrap
):
    setup = council_factory(COUNCILS[1])
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(setup.events_topic, 6, 1)])
    finally:
        admin.close()
    shutil.copy(setup.synth.files[COUNCILS[1]], setup.inbox / "extract.csv")
    connector = open_connector(load_config(setup.config))
    try:
        published = connector.run(once=True)
    finally:
        connector.close()
    records = read_to_end(kafka_bootstrap, setup.events_topic)
    assert len(records) == published > 10
    assert len({r.partition for r in records}) > 1
    keys = [r.key or b"" for r in records]
    assert [r.partition for r in records] == default_partitions(keys, 6)
