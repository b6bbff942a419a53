"""Nothing accepted is lost: a killed connector and a stopped Kafka both end with every row out."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from connectors import Outbox, generate_federation, load_config, open_connector
from fedbroker import KafkaCluster
from schemas import CitizenEvent, Codec
from tests.connectors.conftest import COUNCILS, REPO, read_topic, run_connector
from tests.ports import kafka_port
from tests.wire import body_of

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

OUTAGE_PORT = kafka_port("connector-outage")


def _event_ids(bootstrap: str, topic: str) -> list[str]:
    codec = Codec()
    return [body_of(codec, v, CitizenEvent).event_id for _, v in read_topic(bootstrap, topic)]


def _topic_size(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        consumer.close()


def _big_extract(folder: Path, council: str, rows: int) -> Path:
    synth = generate_federation(folder, councils=[council], people=rows, error_rate=0.0)
    path = synth.files[council]
    with path.open(newline="", encoding="utf-8") as handle:
        assert sum(1 for _ in csv.DictReader(handle)) >= 20_000
    return path


def test_kill_9_mid_file_then_restart_loses_no_event(council_factory, kafka_bootstrap, tmp_path):
    setup = council_factory(COUNCILS[0])
    extract = _big_extract(tmp_path / "big", setup.council, 13_000)
    os.replace(extract, setup.inbox / "extract.csv")
    process = subprocess.Popen(
        [str(REPO / ".venv/bin/fedbroker"), "connector", "run", "--config", str(setup.config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while _topic_size(kafka_bootstrap, setup.events_topic) < 2000:
            assert process.poll() is None, "connector exited early"
            assert time.monotonic() < deadline, "connector published nothing"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    published_before = _topic_size(kafka_bootstrap, setup.events_topic)

    run_connector(setup, "--once", timeout=400)
    outbox = Outbox(setup.outbox)
    expected_distinct = outbox.quarantined()
    assert outbox.depth() == 0
    outbox.close()
    ids = _event_ids(kafka_bootstrap, setup.events_topic)
    with (setup.inbox / "done" / "extract.csv").open(newline="", encoding="utf-8") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))
    assert len(set(ids)) == rows - len(expected_distinct)
    assert len(ids) >= len(set(ids))
    assert published_before < len(ids) or published_before == len(ids) == len(set(ids))


def test_kafka_outage_mid_run_loses_nothing(council_factory, fedbroker_home, tmp_path):
    cluster = KafkaCluster(1, OUTAGE_PORT, fedbroker_home)
    bootstrap = cluster.up(fresh=True)
    try:
        setup = council_factory(COUNCILS[1], bootstrap=bootstrap)
        files = setup.synth.files
        (setup.inbox / "a.csv").write_bytes(files[COUNCILS[1]].read_bytes())
        stop = threading.Event()

        def run_connector_thread() -> None:
            # SQLite connections belong to their thread: the connector lives in its own.
            connector = open_connector(load_config(setup.config))
            try:
                connector.run(stop=stop)
            finally:
                connector.close()

        worker = threading.Thread(target=run_connector_thread)
        worker.start()
        probe = Outbox(setup.outbox)
        try:
            _wait(lambda: probe.depth() == 0 and not list(setup.inbox.glob("*.csv")))
            cluster.kill_node(1)
            # Councils drop files atomically: write under a hidden name, then rename.
            (setup.inbox / ".b.csv").write_bytes(files[COUNCILS[2]].read_bytes())
            os.replace(setup.inbox / ".b.csv", setup.inbox / "b.csv")
            _wait(lambda: not list(setup.inbox.glob("*.csv")))
            assert probe.depth() > 0, "rows read while Kafka is down wait in the outbox"
            time.sleep(2)
            assert probe.depth() > 0
            cluster.start_node(cluster.nodes[0])
            cluster.wait_ready()
            _wait(lambda: probe.depth() == 0, timeout=120)
        finally:
            stop.set()
            worker.join(timeout=60)
            probe.close()
        outbox = Outbox(setup.outbox)
        quarantined = len(outbox.quarantined())
        outbox.close()
        rows = sum(sum(1 for _ in csv.DictReader(files[c].open(newline=""))) for c in COUNCILS[1:])
        assert len(set(_event_ids(bootstrap, setup.events_topic))) == rows - quarantined
    finally:
        cluster.down()


def _wait(condition, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)
