"""Smoke tests through the real broker: the client stack speaks to the Kafka we run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

pytestmark = pytest.mark.kafka


def _consume(bootstrap: str, topic: str, count: int, timeout_s: float = 30.0) -> list[bytes]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < count and time.monotonic() < deadline:
            values.extend(message.value for message in consumer)
    finally:
        consumer.close()
    return values


def test_kafka_python_round_trip_names_broker_version(kafka_bootstrap, topic_factory, capsys):
    topic = topic_factory("smoke")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    for i in range(10):
        producer.send(topic, key=b"k", value=f"message-{i}".encode())
    producer.flush(timeout=30)
    producer.close()

    assert _consume(kafka_bootstrap, topic, 10) == [f"message-{i}".encode() for i in range(10)]

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        broker_id = admin.describe_cluster()["brokers"][0]["broker_id"]
        api_level = admin.get_broker_version_data(broker_id)
        features = admin.describe_features()
    finally:
        admin.close()
    metadata_level = features["metadata.version"]["finalized"][0]
    assert metadata_level > 0
    with capsys.disabled():
        print(
            f"\n[kafka] broker at {kafka_bootstrap}: API level {api_level} "
            f"(as kafka-python infers it), metadata.version feature level {metadata_level}"
        )


FAUST_APP = textwrap.dedent(
    """
    import sys
    import faust

    source, sink, bootstrap, app_id, datadir = sys.argv[1:6]
    app = faust.App(app_id, broker="kafka://" + bootstrap, store="memory://",
                    web_enabled=False, topic_replication_factor=1, datadir=datadir)
    src = app.topic(source, value_serializer="raw")
    dst = app.topic(sink, value_serializer="raw")

    @app.agent(src)
    async def shout(stream):
        async for value in stream:
            await dst.send(value=value.upper())

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()
    """
)


def test_minimal_faust_app_consumes_and_produces(kafka_bootstrap, topic_factory, tmp_path: Path):
    source, sink = topic_factory("faust-in"), topic_factory("faust-out")
    script = tmp_path / "shout.py"
    script.write_text(FAUST_APP)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            str(script),
            source,
            sink,
            kafka_bootstrap,
            topic_factory("app"),
            str(tmp_path / "data"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        for word in (b"salford", b"trafford", b"wigan"):
            producer.send(source, value=word)
        producer.flush(timeout=30)
        producer.close()
        received = _consume(kafka_bootstrap, sink, 3, timeout_s=90)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
    assert sorted(received) == [b"SALFORD", b"TRAFFORD", b"WIGAN"], (
        tmp_path / "worker.log"
    ).read_text()[-3000:]
