"""The local KRaft cluster that `fedbroker kafka` runs: lifecycle, kcat, and a broker failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from fedbroker import KafkaCluster
from fedbroker._localkafka import KafkaNode
from tests.ports import kafka_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CLI_PORT = kafka_port("localkafka-cli")
TRIO_PORT = kafka_port("localkafka-trio")


def _fedbroker(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedbroker", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "FEDBROKER_HOME": str(home)},
        timeout=240,
        check=False,
    )


def _kcat_until(bootstrap: str, text: str, timeout: float = 60) -> str:
    """kcat's metadata once it contains ``text`` (a loaded machine may lag)."""
    deadline = time.monotonic() + timeout
    while True:
        metadata = _kcat_metadata(bootstrap)
        if text in metadata or time.monotonic() > deadline:
            return metadata
        time.sleep(1)


def _kcat_metadata(bootstrap: str) -> str:
    kcat = shutil.which("kcat")
    assert kcat, "kcat (Debian package) must be installed by `make services`"
    result = subprocess.run(
        [kcat, "-L", "-b", bootstrap, "-m", "20"], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_cli_up_status_down_single_broker(fedbroker_home: Path):
    up = _fedbroker(fedbroker_home, "kafka", "up", "--port", str(CLI_PORT), "--fresh")
    try:
        assert up.returncode == 0, up.stderr
        bootstrap = up.stdout.strip().splitlines()[-1]
        assert bootstrap == f"127.0.0.1:{CLI_PORT}"

        again = _fedbroker(fedbroker_home, "kafka", "up", "--port", str(CLI_PORT))
        assert again.returncode == 0 and again.stdout.strip().endswith(bootstrap)

        status = _fedbroker(fedbroker_home, "kafka", "status")
        assert status.returncode == 0
        assert f"{bootstrap}: 1/1 node(s) running, brokers answering: [1]" in status.stdout

        assert "1 brokers:" in _kcat_until(bootstrap, "1 brokers:")
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("kept-across-restarts", 1, 1)])
        admin.close()
    finally:
        down = _fedbroker(fedbroker_home, "kafka", "down", "--port", str(CLI_PORT))
    assert down.returncode == 0 and "stopped 1 Kafka node(s)" in down.stdout
    assert KafkaCluster(1, CLI_PORT, fedbroker_home).status()[0][1] is None

    again = _fedbroker(fedbroker_home, "kafka", "up", "--port", str(CLI_PORT))
    try:
        assert again.returncode == 0, again.stderr
        listing = _kcat_until(bootstrap, "kept-across-restarts")
        assert "kept-across-restarts" in listing, "data survives down/up"
    finally:
        _fedbroker(fedbroker_home, "kafka", "down", "--port", str(CLI_PORT))


def test_stale_pid_file_is_handled(fedbroker_home: Path):
    cluster, node = _node_of("localkafka-stale-pid", fedbroker_home)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    node.pid_file.write_text(str(dead.pid))
    assert node.pid() is None
    assert not node.pid_file.exists()
    assert cluster.down() == []


@contextmanager
def _idle_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not a Kafka node: alive until its stdin closes, no clock."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        yield process
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


def _node_of(port_name: str, home: Path) -> tuple[KafkaCluster, KafkaNode]:
    cluster = KafkaCluster(1, kafka_port(port_name), home)
    cluster.nodes[0].directory.mkdir(parents=True, exist_ok=True)
    return cluster, cluster.nodes[0]


def test_a_pid_file_naming_another_live_process_never_stops_it(fedbroker_home: Path):
    """PIDs are reused (32,768 on a small machine): a stale file may name anyone."""
    cluster, node = _node_of("localkafka-bystander", fedbroker_home)
    with _idle_process() as bystander:
        node.pid_file.write_text(str(bystander.pid))
        assert node.pid() is None
        assert not node.pid_file.exists()
        node.pid_file.write_text(str(bystander.pid))
        assert cluster.down() == []
        node.pid_file.write_text(str(bystander.pid))
        cluster.kill_node(1)
        assert bystander.poll() is None, "a process that is not the node was stopped"


def test_a_node_is_known_by_pid_and_start_time_not_by_its_command_line(fedbroker_home: Path):
    """Just after a start the new process has no readable command line for a moment
    (it is executing its program), so a check then must not call the node dead; and
    a PID handed out again to a later process must not pass for the node."""
    cluster, node = _node_of("localkafka-identity", fedbroker_home)
    # A stand-in for the JVM whose command line never names the node's config.
    with _idle_process() as stand_in:
        node.record_pid(stand_in.pid)
        assert node.pid() == stand_in.pid
        pid, _, started = node.pid_file.read_text().partition(":")
        # The same PID with another start time: a later process that reuses it.
        node.pid_file.write_text(f"{pid}:{int(started) + 1}")
        assert node.pid() is None
        assert not node.pid_file.exists()
        assert stand_in.poll() is None
        node.record_pid(stand_in.pid)
        cluster.kill_node(1)
        # kill_node reaps it too (a child of this test), so only "gone" is observable.
        assert stand_in.poll() is not None, "the recorded process is the node: it is stopped"
        assert node.pid() is None


def test_three_brokers_survive_one_killed_with_acks_all(fedbroker_home: Path):
    cluster = KafkaCluster(3, TRIO_PORT, fedbroker_home)
    bootstrap = cluster.up(fresh=True)
    try:
        assert cluster.live_brokers() == [1, 2, 3]
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            admin.create_topics(
                [
                    NewTopic(
                        "replicated",
                        num_partitions=3,
                        replication_factor=3,
                        topic_configs={"min.insync.replicas": "2"},
                    )
                ]
            )
        finally:
            admin.close()
        assert "3 brokers:" in _kcat_until(bootstrap, "3 brokers:")

        cluster.kill_node(3)
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            retries=10,
            request_timeout_ms=30000,
        )
        try:
            acknowledged = [
                producer.send("replicated", key=str(i).encode(), value=b"x").get(timeout=60)
                for i in range(30)
            ]
        finally:
            producer.close()
        assert len(acknowledged) == 30
        assert {meta.partition for meta in acknowledged} == {0, 1, 2}
    finally:
        cluster.down()


def test_a_cluster_id_that_starts_with_a_dash_still_formats(tmp_path: Path, fedbroker_home: Path):
    """About one random id in 64 starts with "-"; the storage tool read it as an option."""
    libs = fedbroker_home / "kafka" / "libs-4.4.0"
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / "libs-4.4.0").symlink_to(libs.resolve())
    cluster = KafkaCluster(1, kafka_port("localkafka-jars"), home)
    cluster.directory.mkdir(parents=True)
    (cluster.directory / "cluster.id").write_text("-" + "A" * 21)
    node = cluster.nodes[0]
    cluster._format(node, cluster._write_config(node))
    assert (node.data_dir / "meta.properties").exists()
