"""Scale out and recover: two workers, or a worker killed with -9 and restarted, disclose
the same events together as one worker does on the same input, losing nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from itertools import combinations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from connectors import load_config, open_connector
from schemas import Codec, MatchNotification
from tests.connectors.conftest import (  # noqa: F401 - shared fixtures
    COUNCILS,
    REPO,
    council_factory,
    federation,
    linkage_keys,
    read_topic,
    synthetic,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _settled(bootstrap: str, group: str, topics: list[str], timeout: float = 180) -> None:
    """Wait until the worker group has committed every message of ``topics``."""
    deadline = time.monotonic() + timeout
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        while True:
            partitions = [TopicPartition(t, p) for t in topics
                          for p in consumer.partitions_for_topic(t) or ()]  # fmt: skip
            ends = consumer.end_offsets(partitions)
            committed = admin.list_group_offsets({group: None}).get(group, {})
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


class _Run:
    def __init__(self, factory, federation, bootstrap, prefix, group, tmp_path):  # type: ignore[no-untyped-def]
        self.bootstrap, self.prefix, self.group = bootstrap, prefix, group
        self.setups = {c: factory(c, prefix=prefix) for c in COUNCILS}
        self.federation, self.tmp_path, self.workers = federation, tmp_path, []

    def start_worker(self) -> subprocess.Popen[bytes]:
        keys = self.federation.keys["broker"].signing
        log = (self.tmp_path / f"worker-{len(self.workers)}.log").open("wb")
        worker = subprocess.Popen(
            [str(REPO / ".venv/bin/fedbroker"), "broker", "run", "--bootstrap", self.bootstrap,
             "--directory", str(self.federation.directory_path), "--trust-anchor",
             str(self.federation.trust_anchor), "--signing-key", str(keys.private),
             "--app-id", self.group, "--prefix", self.prefix,
             # Fixed: a threshold refitted while the runs differ would differ too.
             "--threshold", "0.8",
             "--data-dir", str(self.tmp_path / f"data-{len(self.workers)}")],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.workers.append(worker)
        return worker

    def publish(self, council: str, synthetic) -> None:  # type: ignore[no-untyped-def]
        setup = self.setups[council]
        shutil.copy(synthetic.files[council], setup.inbox / "extract.csv")
        connector = open_connector(load_config(setup.config))
        try:
            connector.run(once=True)
        finally:
            connector.close()

    def topics(self) -> list[str]:
        sources = [f"{self.prefix}.events.{c}" for c in COUNCILS]
        return [*sources, f"{self.prefix}.broker.routed"]

    def settle(self) -> None:
        _settled(self.bootstrap, self.group, self.topics())

    def settle_by_output(self, quiet: float = 15.0, timeout: float = 180.0) -> None:
        """After a crash, commits lag the work: wait until the output stops changing."""
        deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
        while time.monotonic() - since < quiet:
            assert time.monotonic() < deadline, "output never settled"
            now = (
                len(self.notification_ids()),
                len(read_topic(self.bootstrap, f"{self.prefix}.audit")),
            )
            if now != last:
                last, since = now, time.monotonic()
            time.sleep(1)

    def notifications(self) -> list[MatchNotification]:
        codec = Codec()
        return [
            codec.decode_as(v, MatchNotification)
            for agreement in self.federation.load().agreements
            for _, v in read_topic(self.bootstrap, f"{self.prefix}.match.{agreement}")
        ]

    def notification_ids(self) -> set[str]:
        return {n.notification_id for n in self.notifications()}

    def disclosed_pairs(self) -> set[tuple[str, str, str]]:
        """Which events were disclosed together under which agreement.

        Notification ids name the exact set of events, and a subject's events from
        different source partitions may reach two workers in another order, giving
        other intermediate sets ({A,B} then {A,B,C}, or {A,C} then {A,B,C}); what
        was disclosed together, pair by pair, does not depend on that order.
        """
        return {
            (n.agreement_id, a.event_id, b.event_id)
            for n in self.notifications()
            for a, b in combinations(sorted(n.events, key=lambda e: e.event_id), 2)
        }

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=60)


def test_two_workers_and_a_killed_worker_match_one_worker(
    council_factory, federation, synthetic, kafka_bootstrap, topic_factory, tmp_path
):
    def run(workers: int, kill_during: str | None) -> set[tuple[str, str, str]]:
        prefix = topic_factory("fed")
        folder = tmp_path / prefix
        folder.mkdir()
        this = _Run(council_factory, federation, kafka_bootstrap, prefix,
                    topic_factory("broker"), folder)  # fmt: skip
        killed = False
        try:
            for _ in range(workers):
                this.start_worker()
            time.sleep(10)
            for council in COUNCILS:
                this.publish(council, synthetic)
                if council == kill_during:
                    time.sleep(1.5)
                    os.kill(this.workers[0].pid, signal.SIGKILL)
                    this.workers[0].wait()
                    this.start_worker()
                    killed = True
                if killed:
                    this.settle_by_output()
                else:
                    this.settle()
            return this.disclosed_pairs()
        finally:
            this.stop()

    single = run(1, None)
    assert len(single) >= 5, "the synthetic councils must produce matches"
    assert run(2, None) == single
    assert run(1, COUNCILS[1]) == single
