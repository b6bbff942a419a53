"""Where the tests' Kafka comes from, in order (issue 3):

1. ``KAFKA_BOOTSTRAP_SERVERS`` if set: an existing cluster;
2. a testcontainers Kafka if a Docker engine answers;
3. otherwise a local KRaft broker from the official jars (``fedbroker kafka up``).

A test that cannot get a broker fails; it never skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.ports import kafka_port

TEST_KAFKA_PORT = kafka_port("test")


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@contextmanager
def kafka_bootstrap_servers(home: Path) -> Iterator[str]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from fedbroker import KafkaCluster

    cluster = KafkaCluster(1, TEST_KAFKA_PORT, home)
    try:
        bootstrap = cluster.up(fresh=True)
    except Exception as exc:
        pytest.fail(f"no Kafka broker for the tests: {exc}", pytrace=False)
    try:
        yield bootstrap
    finally:
        cluster.down()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
