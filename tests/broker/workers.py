"""Running real broker workers in end-to-end tests, and knowing when they are done."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from consent import DevFederation
from tests.connectors.conftest import REPO


def start_worker(
    bootstrap: str,
    federation: DevFederation,
    *,
    group: str,
    prefix: str,
    data_dir: Path,
    log: Path,
    options: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """``fedbroker broker run`` as its own process, output to ``log``."""
    keys = federation.keys["broker"].signing
    assert keys is not None
    command = [
        str(REPO / ".venv/bin/fedbroker"), "broker", "run", "--bootstrap", bootstrap,
        "--directory", str(federation.directory_path),
        "--trust-anchor", str(federation.trust_anchor), "--signing-key", str(keys.private),
        "--app-id", group, "--prefix", prefix, "--data-dir", str(data_dir), *options,
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def broker_inputs(admin: KafkaAdminClient, prefix: str) -> list[str]:
    """The topics a broker group consumes: councils' events and consent, and its routing."""
    return [
        t
        for t in admin.list_topics()
        if t.startswith((f"{prefix}.events.", f"{prefix}.consent."))
        or t == f"{prefix}.broker.routed"
    ]


def behind(bootstrap: str, group: str, prefix: str) -> list[TopicPartition]:
    """The input partitions whose committed offset is short of their end, now.

    Until the group's coordinator answers nothing counts as committed.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(t, p) for t in broker_inputs(admin, prefix)
                      for p in consumer.partitions_for_topic(t) or ()]  # fmt: skip
        ends = consumer.end_offsets(partitions)
        try:
            committed = admin.list_group_offsets({group: None}).get(group, {})
        except KafkaError as exc:
            # a group's coordinator is found only once __consumer_offsets is ready
            # and the group has joined; until then nothing counts as committed
            if not exc.retriable:
                raise
            committed = {}
        return sorted(
            tp
            for tp in partitions
            if ends[tp] > 0 and (tp not in committed or committed[tp].offset < ends[tp])
        )
    finally:
        consumer.close()
        admin.close()


def drained(bootstrap: str, group: str, prefix: str, timeout: float) -> list[TopicPartition]:
    """Wait until the group has committed every input to its end; what is still behind.

    Routing writes new messages while the sources drain, so the check repeats
    over the current topic list until nothing is behind or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        late = behind(bootstrap, group, prefix)
        if not late or time.monotonic() >= deadline:
            return late
        time.sleep(0.5)  # polling interval of a condition, not a wait for a race


def settled(bootstrap: str, group: str, prefix: str, timeout: float = 180) -> None:
    """Wait until the worker group has committed every message of its inputs."""
    late = drained(bootstrap, group, prefix, timeout)
    assert not late, f"worker group still behind on {late[:3]}"
