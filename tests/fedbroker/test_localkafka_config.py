"""What ``kafka up`` writes into each node's server.properties (no JVM started)."""

from __future__ import annotations

from pathlib import Path

from fedbroker import KafkaCluster
from fedbroker._localkafka import DEFAULT_SESSION_TIMEOUT_MS
from tests.ports import kafka_port


def _properties(cluster: KafkaCluster) -> dict[str, str]:
    text = cluster._write_config(cluster.nodes[0]).read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")


def test_a_fault_test_cluster_fences_a_silent_node_sooner(tmp_path: Path):
    fast = _properties(
        KafkaCluster(3, kafka_port("localkafka-config-trio"), tmp_path, session_timeout_ms=10000)
    )
    assert fast["broker.session.timeout.ms"] == "10000"
    assert fast["min.insync.replicas"] == "2" and fast["default.replication.factor"] == "3"


def test_by_default_a_busy_machine_does_not_fence_a_slow_node(tmp_path: Path):
    for secure in (False, True):
        props = _properties(
            KafkaCluster(1, kafka_port("localkafka-config-single"), tmp_path, secure=secure)
        )
        assert props["broker.session.timeout.ms"] == str(DEFAULT_SESSION_TIMEOUT_MS) == "30000"
