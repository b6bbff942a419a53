"""Kafka faults, Kafka's own way, one level up (issue 13 item 5).

On a three-node cluster (replication 3, ``min.insync.replicas`` 2) three council
connectors publish, slice by slice, through a broker worker to subscribers
while the node leading the busiest partitions is killed with SIGKILL twice and
the active KRaft controller once, each restarted after its work has failed
over. Kafka's replication tests check that every acknowledged write survives;
here the same invariant is checked on what the federation promises:

* every event a connector saw acknowledged (its outbox drained) is on its topic
  and committed by the broker's group, and nothing else is;
* every expected notification reaches its service's subscriber exactly once,
  where expected means a reference run without faults on the same data and
  keys, compared by which events are disclosed together under each agreement
  (DESIGN section 10);
* ``fedbroker audit verify`` passes and no decision id is on a chain twice.

Every wait is on a condition (a new leader elected, the controller quorum
moved, the ISR back to three, the group caught up), never on a clock.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from consent import DevFederation
from fedbroker import KafkaCluster
from schemas import AuditKind, AuditRecord, CitizenEvent, Codec
from tests.broker.workers import settled, start_worker
from tests.connectors.conftest import (  # noqa: F401 - fixtures
    COUNCILS,
    REPO,
    CouncilSetup,
    council_factory,
    federation,
    linkage_keys,
    read_topic,
    synthetic,
)
from tests.ports import kafka_port
from tests.wire import body_of, read_notifications

# Three JVMs and eight Python processes: a few minutes on an idle 2-core machine.
pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    # A leader failover once made the worker's producer retry a write to the audit
    # topic and append one record twice; the worker's producer is idempotent now
    # (broker/_producer.py).
]

PORT = kafka_port("three-node-faults")
HEAP = "-Xmx288m -Xms96m"
#: Fence a silent node after 10 s (30 s by default) so each failover is quick.
SESSION_TIMEOUT_MS = 10000
FAULTS = ("leader", "leader", "controller")
Pairs = set[tuple[str, str, str]]


def _until(condition: Callable[[], bool], what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except KafkaError:  # a client meeting the dead node: not yet
            pass
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


class _Admin:
    """Short-lived admin clients, so none holds a connection to a node that died."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def __call__(self) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=8000)

    def partitions(self, prefix: str) -> list[tuple[str, dict[str, object]]]:
        admin = self()
        try:
            topics = [t for t in admin.list_topics() if t.startswith(prefix)]
            return [(t["name"], p) for t in admin.describe_topics(topics)
                    for p in t["partitions"]]  # fmt: skip
        finally:
            admin.close()

    def controller(self) -> int:
        admin = self()
        try:
            quorum = admin.describe_metadata_quorum()
        finally:
            admin.close()
        return int(quorum["topics"][0]["partitions"][0]["leader_id"])


def _busiest_leader(bootstrap: str, admin: _Admin, prefix: str) -> int:
    """The node leading the partitions that hold the most messages of the run."""
    partitions = admin.partitions(prefix)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        ends = consumer.end_offsets([TopicPartition(t, int(p["partition_index"]))  # type: ignore[call-overload]
                                     for t, p in partitions])  # fmt: skip
    finally:
        consumer.close()
    load: Counter[int] = Counter()
    for topic, p in partitions:
        load[int(p["leader_id"])] += ends[TopicPartition(topic, int(p["partition_index"]))]  # type: ignore[call-overload]
    return load.most_common(1)[0][0]


def _led_elsewhere(admin: _Admin, prefix: str, victim: int) -> bool:
    """Every partition of the run has a live leader other than the killed node."""
    partitions = admin.partitions(prefix)
    return bool(partitions) and all(p["leader_id"] not in (victim, -1) for _, p in partitions)


def _fully_replicated(cluster: KafkaCluster, admin: _Admin, prefix: str) -> bool:
    return cluster.live_brokers() == [1, 2, 3] and all(
        len(p["isr_nodes"]) == 3  # type: ignore[arg-type]
        for _, p in admin.partitions(prefix)
    )


def _starts(log: Path) -> int:
    """How many times the node has logged that it started (its log is appended to)."""
    return log.read_text(errors="replace").count("Kafka Server started")


def _slices(path: Path, count: int) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    out = []
    for i in range(count):
        text = io.StringIO()
        csv.writer(text).writerows([header, *body[i::count]])
        out.append(text.getvalue())
    return out


def _drop(inbox: Path, name: str, text: str) -> None:
    (inbox / f".{name}").write_text(text, encoding="utf-8")
    os.replace(inbox / f".{name}", inbox / name)  # the connector never sees half a file


def _outbox_depth(setup: CouncilSetup) -> int:
    with sqlite3.connect(f"file:{setup.outbox}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def _drained(setups: dict[str, CouncilSetup]) -> bool:
    return all(not list(s.inbox.glob("*.csv")) and _outbox_depth(s) == 0 for s in setups.values())


def _event_ids(bootstrap: str, topic: str) -> list[str]:
    codec = Codec()
    return [body_of(codec, v, CitizenEvent).event_id for _, v in read_topic(bootstrap, topic)]


def _pairs(agreement: str, event_ids: list[str]) -> Pairs:
    return {(agreement, a, b) for a, b in combinations(sorted(event_ids), 2)}


def _disclosed(bootstrap: str, prefix: str, federation: DevFederation) -> dict[str, Pairs]:
    """By service: which events were disclosed together under which agreement."""
    by_service: dict[str, Pairs] = {}
    for n in read_notifications(bootstrap, prefix, federation.load()):
        by_service.setdefault(n.recipient, set()).update(
            _pairs(n.agreement_id, [e.event_id for e in n.events])
        )
    return by_service


def _connector(setup: CouncilSetup, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(REPO / ".venv/bin/fedbroker"), "connector", "run", "--config", str(setup.config)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _subscriber(
    bootstrap: str, federation: DevFederation, prefix: str, service: str, work: Path
) -> subprocess.Popen[bytes]:
    sealing = federation.keys[service].sealing
    assert sealing is not None
    return subprocess.Popen(
        [str(REPO / ".venv/bin/fedbroker"), "subscribe", "--bootstrap", bootstrap,
         "--service", service, "--key", str(sealing.private),
         "--directory", str(federation.directory_path),
         "--trust-anchor", str(federation.trust_anchor), "--prefix", prefix,
         "--state", str(work / "state"), "--jsonl", str(work / "delivered.jsonl")],
        stdout=(work / "subscriber.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Run:
    """Three connectors, a broker worker and subscribers on one cluster, fed slice by slice."""

    def __init__(self, name: str, bootstrap: str, make: Callable[..., CouncilSetup],
                 federation: DevFederation, work: Path) -> None:  # fmt: skip
        self.bootstrap, self.prefix, self.group = bootstrap, f"{name}-fed", f"{name}-broker"
        self.federation, self.work = federation, work
        self.setups = {c: make(c, bootstrap=bootstrap, prefix=self.prefix) for c in COUNCILS}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.subscribers: dict[str, Path] = {}

    def start(self, services: list[str]) -> None:
        worker = start_worker(
            self.bootstrap, self.federation, group=self.group, prefix=self.prefix,
            data_dir=self.work / "worker", log=self.work / "worker.log",
            options=["--threshold", "0.8", "--checkpoint-interval", "5"],
        )  # fmt: skip
        self.processes.append(worker)
        admin = _Admin(self.bootstrap)

        def joined() -> bool:
            client = admin()
            try:
                described = client.describe_groups([self.group]).get(self.group, {})
            finally:
                client.close()
            return bool(described.get("group_state", described.get("state")) == "Stable")

        # Publishing while the worker joins can leave a new topic unconsumed (issue 15).
        _until(joined, "the worker joined its group")
        for service in services:
            folder = self.work / service
            folder.mkdir()
            self.subscribers[service] = folder / "delivered.jsonl"
            self.processes.append(
                _subscriber(self.bootstrap, self.federation, self.prefix, service, folder)
            )
        for council, setup in self.setups.items():
            self.processes.append(_connector(setup, self.work / f"connector-{council}.log"))

    def alive(self) -> None:
        dead = [p.args for p in self.processes if p.poll() is not None]
        assert not dead, (dead, (self.work / "worker.log").read_text()[-3000:])

    def published(self) -> int:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap)
        try:
            partitions = [TopicPartition(s.events_topic, p) for s in self.setups.values()
                          for p in consumer.partitions_for_topic(s.events_topic) or ()]  # fmt: skip
            return sum(consumer.end_offsets(partitions).values()) if partitions else 0
        finally:
            consumer.close()

    def published_beyond(self, count: int) -> bool:
        return self.published() > count

    def feed(self, synthetic: object, slices: int) -> Iterator[int]:
        """Drop slice k into every inbox; yield once its publishing is under way."""
        parts = {c: _slices(synthetic.files[c], slices) for c in COUNCILS}  # type: ignore[attr-defined]
        for k in range(slices):
            before = self.published()
            for council, setup in self.setups.items():
                _drop(setup.inbox, f"slice-{k}.csv", parts[council][k])
            _until(functools.partial(self.published_beyond, before), f"slice {k} published")
            self.alive()
            yield k

    def finish(self) -> None:
        _until(lambda: _drained(self.setups), "every connector's outbox drained", timeout=240)
        self.alive()
        try:
            settled(self.bootstrap, self.group, self.prefix, timeout=300)
        except AssertionError as behind:
            log = (self.work / "worker.log").read_text(errors="replace")
            raise AssertionError(f"{behind}; the worker's log ends:\n{log[-4000:]}") from None

        def handed_over() -> bool:
            self.alive()
            on_topics = self.notification_ids()
            return all({str(d["notification_id"]) for d in _delivered(path)}
                       >= on_topics.get(service, set())
                       for service, path in self.subscribers.items())  # fmt: skip

        _until(handed_over, "every subscriber has handed its notifications over")
        _stop(self.processes)  # a clean stop: every send flushed, the chains sealed

    def notification_ids(self) -> dict[str, set[str]]:
        ids: dict[str, set[str]] = {}
        for n in read_notifications(self.bootstrap, self.prefix, self.federation.load()):
            ids.setdefault(n.recipient, set()).add(n.notification_id)
        return ids

    def events(self) -> dict[str, list[str]]:
        return {c: _event_ids(self.bootstrap, s.events_topic) for c, s in self.setups.items()}


def _delivered(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _audit(bootstrap: str, topic: str) -> list[AuditRecord]:
    codec = Codec()
    return [codec.decode_as(v, AuditRecord) for _, v in read_topic(bootstrap, topic)]


def _fault(cluster: KafkaCluster, run: _Run, fault: str) -> str:
    """Kill the busiest leader or the active controller, wait for failover, restart it."""
    admin = _Admin(cluster.bootstrap)
    if fault == "leader":
        victim = _busiest_leader(cluster.bootstrap, admin, run.prefix)
        cluster.kill_node(victim)
        _until(lambda: _led_elsewhere(admin, run.prefix, victim),
               f"every partition led by node {victim} has a new leader")  # fmt: skip
    else:
        victim = admin.controller()
        cluster.kill_node(victim)
        _until(lambda: admin.controller() != victim, "another controller was elected")
    run.alive()
    node = cluster.nodes[victim - 1]
    starts = _starts(node.log_file)
    cluster.start_node(node)
    # The controller may not have fenced the old incarnation yet, so the ISR alone
    # can look whole while the new JVM is still starting: wait for its own word.
    _until(lambda: _starts(node.log_file) > starts, f"node {victim} has started again")
    _until(lambda: _fully_replicated(cluster, admin, run.prefix),
           f"node {victim} is back and every partition has three in-sync replicas")  # fmt: skip
    return f"{fault} node {victim}"


def _verify(cluster: KafkaCluster, federation: DevFederation, run: _Run) -> str:
    verified = subprocess.run(
        [sys.executable, "-m", "fedbroker", "audit", "verify", "--bootstrap", cluster.bootstrap,
         "--topic", f"{run.prefix}.audit", "--directory", str(federation.directory_path),
         "--trust-anchor", str(federation.trust_anchor),
         "--anchors", str(run.work / "anchors.json"), "--checkpoint-interval", "5"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    return verified.stdout


def test_killed_leaders_and_controller_lose_nothing_acknowledged_and_notify_once(
    council_factory, federation, synthetic, kafka_bootstrap, topic_factory, fedbroker_home,
    tmp_path, monkeypatch,
):  # fmt: skip
    monkeypatch.setenv("FEDBROKER_KAFKA_HEAP", HEAP)
    cluster = KafkaCluster(3, PORT, fedbroker_home, session_timeout_ms=SESSION_TIMEOUT_MS)
    runs: list[_Run] = []
    # The three JVMs start while the reference runs: most of their start-up is waiting.
    starting = ThreadPoolExecutor(1)
    up = starting.submit(cluster.up, fresh=True)
    try:
        # The reference: the same data, keys and slices on the test Kafka, no faults.
        (tmp_path / "reference").mkdir()
        reference = _Run(topic_factory("ref"), kafka_bootstrap, council_factory, federation,
                         tmp_path / "reference")  # fmt: skip
        runs.append(reference)
        reference.start([])
        for _ in reference.feed(synthetic, len(FAULTS)):
            pass
        reference.finish()
        expected = _disclosed(kafka_bootstrap, reference.prefix, federation)
        expected_events = {c: set(ids) for c, ids in reference.events().items()}
        assert sum(len(p) for p in expected.values()) >= 5, "the data must produce matches"
        up.result()

        (tmp_path / "faults").mkdir()
        run = _Run(topic_factory("faults"), cluster.bootstrap, council_factory, federation,
                   tmp_path / "faults")  # fmt: skip
        runs.append(run)
        # Live subscribers for the two busiest services (each is a process on a 2-core
        # machine); every service's topic is checked against the reference below.
        run.start(sorted(expected, key=lambda s: len(expected[s]))[-2:])
        done = [_fault(cluster, run, FAULTS[k]) for k in run.feed(synthetic, len(FAULTS))]
        run.finish()

        # Every event a connector saw acknowledged (all of them: the outboxes drained)
        # is on its topic and nothing else is; finish() also waited until the broker's
        # group had committed every offset of its inputs.
        events = run.events()
        for council, ids in events.items():
            assert set(ids) == expected_events[council], council
        resent = sum(len(ids) - len(set(ids)) for ids in events.values())
        # What was disclosed together, under which agreement, to whom: as without faults.
        assert _disclosed(cluster.bootstrap, run.prefix, federation) == expected
        on_topics = run.notification_ids()
        audit = _audit(cluster.bootstrap, f"{run.prefix}.audit")
        verified = _verify(cluster, federation, run)
    finally:
        for each in runs:
            _stop(each.processes)
        starting.shutdown(wait=True)  # never stop the nodes while they are being started
        cluster.down()

    # Each service was handed each notification exactly once, and all it should get.
    for service, path in run.subscribers.items():
        delivered = _delivered(path)
        ids = [str(d["notification_id"]) for d in delivered]
        assert len(ids) == len(set(ids)), f"{service} was handed a notification twice"
        assert set(ids) == on_topics.get(service, set()), service
        pairs: Pairs = set()
        for d in delivered:
            pairs |= _pairs(str(d["agreement"]), [str(e["event_id"]) for e in d["events"]])  # type: ignore[attr-defined]
        assert pairs == expected[service], service

    # No decision twice on a chain (the verify above checked every chain's links).
    decided = Counter((r.chain, r.decision_id) for r in audit if r.kind is not AuditKind.CHECKPOINT)
    assert decided and max(decided.values()) == 1, decided.most_common(3)
    print(f"faults: {done}; {resent} events re-sent by connectors; "
          f"{len(decided)} decisions; {verified.strip().splitlines()[-1]}")  # fmt: skip
