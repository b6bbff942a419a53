"""Kafka and process plumbing for the broker bench: workers, topics, metrics, progress."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from bench._broker_data import BenchData
from bench._security import bench_security, client_config
from broker.app import ensure_topics

__all__ = [
    "POLL_S",
    "Drain",
    "DrainStuck",
    "GroupCaughtUp",
    "ProcessUsage",
    "Worker",
    "broker_worker",
    "end_total",
    "fill",
    "free_port",
    "kafka_pid",
    "metric_counts",
    "new_prefix",
    "passthrough_worker",
    "read_topic",
    "source_topics",
    "watch",
]

REPO = Path(__file__).resolve().parents[1]
#: How often the bench reads a worker's ``/metrics``. Each read costs the worker
#: a full exposition (about 8% of its CPU at 10 reads a second, in a py-spy
#: profile); Prometheus reads every 15 s. Four a second keeps drains of a few
#: seconds resolved while costing the measured worker little.
POLL_S = 0.25
_REASON = re.compile(r'reason="([^"]*)"')
_SAMPLE = re.compile(r"^(\w+)(?:\{([^}]*)\})? ([0-9.eE+-]+)$")


_GIVEN: set[int] = set()


def free_port(start: int = 29600) -> int:
    """A free local port below the ephemeral range (the project's rule for scripts).

    Never the same one twice in a run: a worker binds its port only once started.
    """
    for port in range(start, start + 200):
        if port in _GIVEN:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            _GIVEN.add(port)
            return port
    raise RuntimeError("no free port for a worker's metrics")


_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """A process's CPU seconds (user + system) and peak resident set, from ``/proc``."""

    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0

    @classmethod
    def of(cls, pid: int) -> ProcessUsage:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return cls()
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
        peak = next((int(line.split()[1]) * 1024 for line in status.splitlines()
                     if line.startswith("VmHWM:")), 0)  # fmt: skip
        return cls(cpu, peak)


def kafka_pid(bootstrap: str) -> int | None:
    """The local Kafka broker process serving ``bootstrap`` (None if not found here).

    Its command line names ``kafka.Kafka``; the one whose config or listeners
    mention the port is chosen when several run on this machine.
    """
    port = bootstrap.rsplit(":", 1)[-1]
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "kafka.Kafka" in cmdline:
            found.append(int(entry.name))
            if port in cmdline:
                return int(entry.name)
    for pid in found:
        try:
            config = next(a for a in (Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))
                          if a.endswith(b".properties"))  # fmt: skip
            if f":{port}".encode() in Path(config.decode()).read_bytes():
                return pid
        except (OSError, StopIteration):
            continue
    return found[0] if len(found) == 1 else None


@dataclass
class Worker:
    """One worker subprocess and its log."""

    name: str
    args: list[str]
    log: Path
    metrics_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        self.process = subprocess.Popen(
            self.args, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, cwd=REPO
        )
        return self

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def usage(self) -> ProcessUsage:
        """CPU seconds used and peak RSS so far (zeros once the process has gone)."""
        return ProcessUsage.of(self.process.pid if self.process is not None else 0)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def new_prefix() -> str:
    """A fresh topic prefix (and group name stem): each run's topics are its own."""
    return f"bench-{uuid.uuid4().hex[:8]}"


def broker_worker(
    data: BenchData, name: str, *, bootstrap: str, prefix: str, group: str, work: Path,
    partitions: int, threshold: float,
) -> Worker:  # fmt: skip
    """``fedbroker broker run`` exactly as an operator starts one worker."""
    keys = data.federation.keys["broker"].signing
    assert keys is not None
    port = free_port()
    args = [
        str(REPO / ".venv/bin/fedbroker"), "broker", "run", "--bootstrap", bootstrap,
        "--directory", str(data.federation.directory_path),
        "--trust-anchor", str(data.federation.trust_anchor),
        "--signing-key", str(keys.private), "--app-id", group, "--prefix", prefix,
        "--partitions", str(partitions), "--threshold", f"{threshold:.6f}",
        "--metrics-port", str(port), "--data-dir", str(work / f"data-{name}"),
    ]  # fmt: skip
    return Worker(name, args, work / f"{name}.log", port)


def passthrough_worker(
    name: str, *, bootstrap: str, sources: Sequence[str], sink: str, group: str, work: Path,
    partitions: int,
) -> Worker:  # fmt: skip
    args = [sys.executable, "-m", "bench._broker_passthrough", "--bootstrap", bootstrap,
            "--app-id", group, "--sink", sink, "--partitions", str(partitions),
            "--data-dir", str(work / f"data-{name}")]  # fmt: skip
    for topic in sources:
        args += ["--source", topic]
    return Worker(name, args, work / f"{name}.log")


def source_topics(prefix: str, councils: Sequence[str]) -> list[str]:
    return [f"{prefix}.{role}.{c}" for c in councils for role in ("events", "consent")]


def fill(bootstrap: str, prefix: str, data: BenchData, councils: Sequence[str],
         partitions: int, extra: Sequence[str] = ()) -> None:  # fmt: skip
    """Create the council topics and write every event to them, keyed as the connector does."""
    ensure_topics(bootstrap, [*source_topics(prefix, councils), *extra],
                  partitions=partitions, replication=1, security=bench_security())  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                             batch_size=512 * 1024, max_request_size=8 * 1024 * 1024,
                             **client_config())  # fmt: skip
    try:
        for item in data.events:
            producer.send(f"{prefix}.{item.topic_suffix}", key=item.key, value=item.value)
        producer.flush(timeout=120)
    finally:
        producer.close()


def end_total(consumer: KafkaConsumer, topic: str) -> int:
    """How many messages ``topic`` holds (sum of its partitions' end offsets)."""
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    return sum(consumer.end_offsets(parts).values()) if parts else 0


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes, bytes, int]]:
    """Every (key, value, timestamp ms) on ``topic``, from its start to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             **client_config())  # fmt: skip
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            return []
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[tuple[bytes, bytes, int]] = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                out.extend((r.key, r.value, r.timestamp) for r in records)
        return out
    finally:
        consumer.close()


def metric_counts(port: int) -> dict[str, float] | None:
    """Sample sums from one worker's ``/metrics`` (None while it is not serving yet).

    Keys: ``verify`` (source messages verified), ``match`` ((event, token) steps
    matched: the unit ``BenchData.routed`` counts), ``routed`` (routed messages
    sent), ``state_writes`` (token-state changelog records), ``rejected``,
    ``notifications`` (notifications sent, one message each), ``ready`` (1 while
    the worker holds recovered partitions and no rebalance runs).
    """
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    counts = dict.fromkeys(("verify", "match", "routed", "state_writes", "rejected"), 0.0)
    counts["notifications"] = counts["ready"] = 0.0
    for line in text.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None:
            continue
        name, labels, value = sample.group(1), sample.group(2) or "", float(sample.group(3))
        if name == "fedbroker_broker_processing_seconds_count" and 'stage="verify"' in labels:
            counts["verify"] += value
        elif name == "fedbroker_broker_routed_total":
            if 'what="tokens"' in labels:
                counts["match"] += value
            elif 'what="messages"' in labels:
                counts["routed"] += value
        elif name == "fedbroker_broker_ready":
            counts["ready"] = value
        elif name == "fedbroker_broker_notifications_total":
            counts["notifications"] += value
        elif name == "fedbroker_broker_state_writes_total":
            counts["state_writes"] += value
        elif name == "fedbroker_broker_rejected_total":
            counts["rejected"] += value
            reason = _REASON.search(labels)
            key = f"rejected:{reason.group(1) if reason else '?'}"
            counts[key] = counts.get(key, 0.0) + value
    return counts


@dataclass
class Drain:
    """Progress of one timed drain: (seconds since watching began, units done)."""

    total: int
    samples: list[tuple[float, float]] = field(default_factory=list)
    shares: list[float] = field(default_factory=list)

    def first(self) -> float:
        return next(t for t, done in self.samples if done > 0)

    def reached(self, fraction: float) -> float:
        return next(t for t, done in self.samples if done >= fraction * self.total)

    def full_seconds(self) -> float:
        """From the first message processed to the last."""
        return self.reached(1.0) - self.first()

    def steady_seconds(self, low: float = 0.1, high: float = 0.9) -> tuple[float, float]:
        """Time between ``low`` and ``high`` of the work done, and that share of the work."""
        return self.reached(high) - self.reached(low), high - low


class DrainStuck(RuntimeError):
    """A drain made no progress for the stall limit (or passed its timeout): where it stood."""

    def __init__(self, done: float, total: int, seconds: float, logs: str) -> None:
        super().__init__(f"drain stuck at {done:.0f}/{total} after {seconds:.0f} s:\n{logs}")
        self.done, self.total, self.seconds = done, total, seconds


def watch(
    progress: Callable[[], tuple[float, list[float]]],
    total: int,
    workers: Sequence[Worker],
    *,
    caught_up: Callable[[], bool] | None = None,
    timeout: float = 900.0,
    stall: float = 120.0,
) -> Drain:
    """Poll ``progress`` (units done, per-worker shares) until the work is finished.

    Finished: at least ``total`` units done and, if given, ``caught_up()`` (the
    group has committed everything). A rebalance re-delivers what was not yet
    committed, so the count alone may pass ``total`` early; the drain then ends
    at the last sample where the count moved, and its total is the final count.
    """
    drain = Drain(total)
    started = last_change = last_check = time.perf_counter()
    last = -1.0
    while True:
        for worker in workers:
            worker.check()
        done, shares = progress()
        now = time.perf_counter()
        drain.samples.append((now - started, done))
        if done != last:
            last, last_change = done, now
        if done >= total and (caught_up is None or (now - last_check > 1 and caught_up())):
            drain.total, drain.shares = int(done), shares
            end = last_change - started
            drain.samples = [s for s in drain.samples if s[0] <= end]
            return drain
        if done >= total:
            last_check = now if now - last_check > 1 else last_check
        if now - started > timeout or (done > 0 and now - last_change > stall):
            logs = "\n".join(f"--- {w.name}\n{w.tail()}" for w in workers)
            raise DrainStuck(done, total, now - started, logs)
        time.sleep(POLL_S)


class GroupCaughtUp:
    """Whether ``group`` has committed every message of ``topics`` (call it; then close)."""

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str]) -> None:
        self.group, self.topics = group, list(topics)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client_config())
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client_config())

    def __call__(self) -> bool:
        parts = [TopicPartition(t, p) for t in self.topics
                 for p in self.consumer.partitions_for_topic(t) or ()]  # fmt: skip
        ends = self.consumer.end_offsets(parts)
        committed = self.admin.list_group_offsets({self.group: None}).get(self.group, {})
        return all(
            end == 0 or (tp in committed and committed[tp].offset >= end)
            for tp, end in ends.items()
        )

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()
