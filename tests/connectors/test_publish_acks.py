"""A connector never re-sends what Kafka acknowledged (issue 11, item 3).

Acknowledgements are judged message by message. Before, they were counted as a
prefix of the batch: one failure in the middle (a record over the topic's
``max.message.bytes``, a timeout on one topic) made the connector re-send every
acknowledged record after it, and a permanently refused record wedged the
outbox. Each test makes a batch partly fail against the real Kafka and counts
duplicates on the topics: there must be none.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from connectors import (
    Connector,
    ConnectorConfig,
    ConnectorMetrics,
    KafkaUnavailable,
    Outbox,
    Publisher,
)
from connectors._outbox import PUBLISH_SOURCE
from schemas import Codec
from tests.connectors.conftest import read_topic


def _create(bootstrap: str, topic: str, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)])
    finally:
        admin.close()


def _connector(tmp_path: Path, bootstrap: str) -> Connector:
    config = ConnectorConfig(
        council="E08000001",
        directory=tmp_path / "unused",
        trust_anchor=tmp_path / "unused",
        signing_key=tmp_path / "unused",
        linkage_keys=None,
        outbox=tmp_path / "outbox.sqlite",
        bootstrap=bootstrap,
        sources=(),
    )
    return Connector(
        config,
        None,  # type: ignore[arg-type]  # nothing is read in these tests
        outbox=Outbox(config.outbox),
        publisher=Publisher(bootstrap),
        metrics=ConnectorMetrics(),
        codec=Codec(),
    )


def _enqueue(outbox: Outbox, plan: list[tuple[str, str, int]]) -> None:
    with outbox.transaction() as batch:
        for event_id, topic, size in plan:
            batch.add(event_id, topic, event_id.encode(), event_id.encode().ljust(size, b"."))


def _ids(bootstrap: str, topic: str) -> Counter[str]:
    return Counter(v.rstrip(b".").decode() for _, v in read_topic(bootstrap, topic))


@pytest.mark.kafka
def test_a_record_over_max_message_bytes_mid_batch_sends_no_duplicate(
    tmp_path, kafka_bootstrap, topic_factory
):
    topic = topic_factory("acks-size")
    _create(kafka_bootstrap, topic, **{"max.message.bytes": "8192"})
    plan = [(f"e{i:03d}", topic, 300) for i in range(60)]
    plan.insert(30, ("too-big", topic, 20_000))
    connector = _connector(tmp_path, kafka_bootstrap)
    _enqueue(connector.outbox, plan)
    try:
        published = connector.publish()
        connector.publish()  # a second pass must find nothing left to send
        assert published == 60
        assert connector.outbox.depth() == 0, "the refused record must not wedge the outbox"
        quarantined = [(q.source, q.location, q.field, q.reason)
                       for q in connector.outbox.quarantined()]  # fmt: skip
    finally:
        connector.close()
    assert quarantined == [(PUBLISH_SOURCE, "too-big", "record", "record-too-large")]
    seen = _ids(kafka_bootstrap, topic)
    assert set(seen) == {f"e{i:03d}" for i in range(60)}
    assert [i for i, n in seen.items() if n > 1] == [], "acknowledged records were re-sent"


@pytest.mark.kafka
def test_records_acknowledged_after_a_refused_one_on_another_topic_are_not_resent(
    tmp_path, kafka_bootstrap, topic_factory
):
    """Two topics in one batch: the refusal on one must not make the connector
    re-send what the other acknowledged, however the producer interleaved them."""
    small, normal = topic_factory("acks-small"), topic_factory("acks-normal")
    _create(kafka_bootstrap, small, **{"max.message.bytes": "8192"})
    _create(kafka_bootstrap, normal)
    plan = [(f"e{i:03d}", normal if i % 2 else small, 300) for i in range(80)]
    plan.insert(20, ("too-big", small, 20_000))
    connector = _connector(tmp_path, kafka_bootstrap)
    _enqueue(connector.outbox, plan)
    try:
        deadline = time.monotonic() + 60
        while connector.outbox.depth():
            assert time.monotonic() < deadline, "the outbox never drained"
            try:
                connector.publish()
            except KafkaUnavailable:
                continue
        assert [q.location for q in connector.outbox.quarantined()] == ["too-big"]
    finally:
        connector.close()
    seen = _ids(kafka_bootstrap, small) + _ids(kafka_bootstrap, normal)
    assert set(seen) == {e for e, _, _ in plan} - {"too-big"}
    assert [i for i, n in seen.items() if n > 1] == [], "acknowledged records were re-sent"


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


class _ScriptedProducer:
    """A producer whose third record times out while the records after it are
    acknowledged: what a batch spread over several partitions does when one
    partition's leader is lost. (Kafka's own behaviour for this is covered by the
    tests above; this pins the judgement of each future.)"""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def send(self, topic: str, *, key: bytes, value: bytes, partition: int) -> _Future:
        from kafka.errors import KafkaTimeoutError

        self.sent.append(key)
        return _Future(KafkaTimeoutError("expired") if len(self.sent) == 3 else None)

    def flush(self, timeout: float) -> None:
        from kafka.errors import KafkaTimeoutError

        raise KafkaTimeoutError("flush timed out")

    def close(self, timeout: float) -> None:
        pass


def test_a_timed_out_record_leaves_only_itself_pending(tmp_path):
    from connectors import OutboxEntry

    publisher = Publisher("127.0.0.1:9")
    producer = _ScriptedProducer()
    publisher._producer = producer  # noqa: SLF001 - the scripted producer stands in for Kafka
    entries = [OutboxEntry(i, f"e{i}", "t", f"e{i}".encode(), b"v", 0.0) for i in range(6)]
    outcome = publisher.publish(entries)
    assert [e.event_id for e in outcome.acknowledged] == ["e0", "e1", "e3", "e4", "e5"]
    assert (outcome.rejected, outcome.pending) == ((), 1)


class _LateFuture:
    """Times out while waited on; the broker's acknowledgement lands while the
    producer closes (close lets in-flight requests finish)."""

    is_done = False

    def get(self, timeout: float) -> None:
        from kafka.errors import KafkaTimeoutError

        raise KafkaTimeoutError("waited too little")

    def succeeded(self) -> bool:
        return self.is_done


class _SlowProducer(_ScriptedProducer):
    def __init__(self) -> None:
        super().__init__()
        self.late = _LateFuture()

    def send(self, topic: str, *, key: bytes, value: bytes, partition: int) -> object:
        self.sent.append(key)
        return self.late if len(self.sent) == 2 else _Future(None)

    def close(self, timeout: float) -> None:
        self.late.is_done = True


def test_a_record_acknowledged_while_the_producer_closes_is_not_sent_again():
    from connectors import OutboxEntry

    publisher = Publisher("127.0.0.1:9")
    publisher._producer = _SlowProducer()  # noqa: SLF001 - stands in for Kafka
    entries = [OutboxEntry(i, f"e{i}", "t", f"e{i}".encode(), b"v", 0.0) for i in range(3)]
    outcome = publisher.publish(entries)
    assert sorted(e.event_id for e in outcome.acknowledged) == ["e0", "e1", "e2"]
    assert outcome.pending == 0


def _alter(bootstrap: str, topic: str, **configs: str) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    finally:
        admin.close()


@pytest.mark.kafka
def test_a_topic_refusing_writes_mid_batch_sends_no_duplicate(
    tmp_path, kafka_bootstrap, topic_factory
):
    """The issue's case: most of a batch acknowledged, some records interleaved with
    them refused (here a topic whose timestamp policy refuses every write, until an
    operator fixes it). Counted as a prefix, every acknowledged record after the
    first refusal was sent again; judged one by one, none is, and none is lost."""
    good, refusing = topic_factory("acks-good"), topic_factory("acks-refusing")
    _create(kafka_bootstrap, good)
    _create(kafka_bootstrap, refusing, **{"message.timestamp.before.max.ms": "0"})
    plan = [(f"e{i:03d}", refusing if i % 5 == 2 else good, 200) for i in range(50)]
    connector = _connector(tmp_path, kafka_bootstrap)
    _enqueue(connector.outbox, plan)
    try:
        with pytest.raises(KafkaUnavailable):
            connector.publish()
        waiting = {e.event_id for e in connector.outbox.pending(len(plan))}
        refused = {e for e, topic, _ in plan if topic == refusing}
        assert refused <= waiting, "every refused record waits in the outbox"
        # kafka-python aborts every batch still in flight on a fatal produce error,
        # so how many good records wait depends on timing; none of them may be one
        # Kafka already holds (that one would be sent twice).
        assert not (waiting - refused) & set(_ids(kafka_bootstrap, good)), (
            "an acknowledged record was kept to be sent again"
        )
        assert connector.outbox.quarantined() == [], "a topic's policy is not the record's fault"
        _alter(kafka_bootstrap, refusing, **{"message.timestamp.before.max.ms": str(2**62)})
        deadline = time.monotonic() + 60
        while connector.outbox.depth():
            assert time.monotonic() < deadline, "the topic never took the records"
            try:
                connector.publish()
            except KafkaUnavailable:
                continue  # the config change takes a moment to reach the partition
    finally:
        connector.close()
    seen = _ids(kafka_bootstrap, good) + _ids(kafka_bootstrap, refusing)
    assert set(seen) == {e for e, _, _ in plan}
    assert [i for i, n in seen.items() if n > 1] == [], "acknowledged records were re-sent"
