"""Fixtures for the subscriber: a dev federation, a topic with notifications, a subscriber."""

from __future__ import annotations

import resource
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from consent import DevFederation, build_dev_federation
from subscriber import CallbackSink, OpenedNotification, Sink, Subscriber, SubscriberSettings
from tests.subscriber.factory import FROM, SERVICE, TO


@pytest.fixture(scope="session")
def federation(tmp_path_factory) -> DevFederation:
    return build_dev_federation(tmp_path_factory.mktemp("federation"), councils=[FROM, TO])


@pytest.fixture
def notify_topic(kafka_bootstrap, topic_factory) -> str:
    """A fresh topic with two partitions, created before anyone reads it."""
    name = topic_factory("fed.notify")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    return name


def publish(bootstrap: str, topic: str, messages: Sequence[tuple[str, bytes | None]]) -> None:
    """Publish (key, value) pairs in order, each to partition 0 so their order is known."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value in messages:
            producer.send(topic, key=key.encode(), value=value, partition=0)
        producer.flush()
    finally:
        producer.close()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (missing: none)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {tp.partition: o.offset for tp, o in offsets.items() if tp.topic == topic}


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: o for tp, o in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


@pytest.fixture
def subscriber_factory(
    kafka_bootstrap, federation, tmp_path, topic_factory
) -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(
        topic: str,
        *,
        sink: Sink | None = None,
        received: list[OpenedNotification] | None = None,
        group: str | None = None,
        state: Path | None = None,
        directory: object = None,
        **settings: object,
    ) -> Subscriber:
        state = state or tmp_path / "state"
        subscriber = Subscriber(
            SubscriberSettings(
                bootstrap=kafka_bootstrap, service=SERVICE, topic=topic,
                group=group or topic_factory("group"), store=state / "delivered.sqlite",
                dead_letters=state / "dead-letters.jsonl", poll_timeout=0.2,
                **settings,  # type: ignore[arg-type]
            ),
            directory=directory or federation.load(),  # type: ignore[arg-type]
            key=federation.sealing_key(SERVICE),
            sink=sink or CallbackSink((received if received is not None else []).append),
        )  # fmt: skip
        made.append(subscriber)
        return subscriber

    yield make
    for subscriber in made:
        try:
            subscriber.close()
        except Exception:
            pass


def wait_for(condition: Callable[[], object], timeout: float = 60, what: str = "") -> None:
    """Poll ``condition`` until it holds (a condition, not a guessed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.05)


@contextmanager
def disk_full_after(extra: int, path: Path) -> Iterator[None]:
    """Files of this process cannot grow past ``path``'s size plus ``extra`` bytes: a
    write beyond fails with EFBIG after writing what fits, as on a disk that fills up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
