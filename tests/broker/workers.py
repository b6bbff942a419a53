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


def settled(bootstrap: str, group: str, prefix: str, timeout: float = 180) -> None:
    """Wait until the worker group has committed every message of its inputs.

    Routing writes new messages while the sources drain, so the check repeats
    over the current topic list until nothing is behind.
    """
    deadline = time.monotonic() + timeout
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        while True:
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
            behind = [
                tp
                for tp in partitions
                if ends[tp] > 0 and (tp not in committed or committed[tp].offset < ends[tp])
            ]
            if not behind:
                return
            assert time.monotonic() < deadline, f"worker group still behind on {behind[:3]}"
            time.sleep(1)
    finally:
        consumer.close()
        admin.close()
