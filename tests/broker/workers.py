"""Running real broker workers in end-to-end tests, and knowing when they are done."""

from __future__ import annotations

import csv
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from consent import DevFederation
from schemas import AuditKind, AuditRecord, Codec
from tests.connectors.conftest import REPO, read_topic
from tests.ports import free_port

#: How long a starting worker may take to join its group and recover its tables
#: (a fresh cluster on a loaded two-core machine took 36 s).
READY_TIMEOUT_S = 180.0


def start_worker(
    bootstrap: str,
    federation: DevFederation,
    *,
    group: str,
    prefix: str,
    data_dir: Path,
    log: Path,
    options: Sequence[str] = (),
    wait_ready: bool = True,
    program: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """``fedbroker broker run`` as its own process, output to ``log``, once it is ready.

    Returns when the worker's ``/metrics`` reports ``fedbroker_broker_ready 1``:
    it holds partitions of its group, has recovered their tables, and no
    rebalance is under way, so it reads its inputs. A test
    timing what the worker does therefore does not time its start as well
    (under load, starting took longer than the 40 s some tests allow for a
    decision). The metrics port is ``options``' ``--metrics-port`` or a free one.
    ``program`` replaces the ``fedbroker`` executable (``clocked_worker``: the
    same command on a clock the test moves).
    With ``wait_ready=False`` it returns at once: for the start-up tests, whose
    point is a group forming while events arrive.
    """
    keys = federation.keys["broker"].signing
    assert keys is not None
    options = list(options)
    if "--metrics-port" not in options:
        options += ["--metrics-port", str(free_port())]
    port = int(options[options.index("--metrics-port") + 1])
    command = [
        *(program or [str(REPO / ".venv/bin/fedbroker")]), "broker", "run",
        "--bootstrap", bootstrap,
        "--directory", str(federation.directory_path),
        "--trust-anchor", str(federation.trust_anchor), "--signing-key", str(keys.private),
        "--app-id", group, "--prefix", prefix, "--data-dir", str(data_dir), *options,
    ]  # fmt: skip
    worker = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while wait_ready and metric(port, "fedbroker_broker_ready") != 1.0:
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            worker.wait()
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(
                f"the worker never became ready (exit {worker.returncode})\n{tail}"
            )
        time.sleep(0.2)  # polling interval of a condition
    return worker


def metric(port: int, name: str) -> float | None:
    """The value of an unlabelled metric on ``127.0.0.1:port/metrics`` (None: not there yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def until(condition: Callable[[], bool], what: str, timeout: float = 180.0) -> None:
    """Wait until ``condition()`` holds, polling; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)  # polling interval of a condition


def audit_records(bootstrap: str, prefix: str) -> list[AuditRecord]:
    """Every record on ``<prefix>.audit``, in topic order."""
    codec = Codec()
    return [codec.decode_as(v, AuditRecord) for _, v in read_topic(bootstrap, f"{prefix}.audit")]


def audit_sealed(bootstrap: str, prefix: str) -> bool:
    """Whether every audit chain ends with a signed checkpoint.

    The worker signs one on its next tick after a chain's last decision, so
    this holds once it has lived through a tick after deciding everything.
    """
    last = {r.chain: r.kind for r in audit_records(bootstrap, prefix)}
    return bool(last) and all(kind is AuditKind.CHECKPOINT for kind in last.values())


def split_extract(source: Path, folder: Path, parts: int) -> list[Path]:
    """``source`` (a council's CSV extract) cut into ``parts`` files, rows in order."""
    with source.open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for part in range(parts):
        path = folder / f"part-{part}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows[part::parts])
        paths.append(path)
    return paths


def publish_together(setups: Mapping[str, Any], files: Mapping[str, Path]) -> list[Any]:
    """Each council's connector publishing its file, all at once, as processes."""
    publishers = []
    for council, path in files.items():
        setup = setups[council]
        shutil.copy(path, setup.inbox / path.name)
        publishers.append(subprocess.Popen(
            [str(REPO / ".venv/bin/fedbroker"), "connector", "run", "--config", str(setup.config),
             "--once"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
    return publishers


def broker_inputs(admin: KafkaAdminClient, prefix: str) -> list[str]:
    """The topics a broker group consumes: councils' events and consent, and its routing."""
    return [
        t
        for t in admin.list_topics()
        if t.startswith((f"{prefix}.events.", f"{prefix}.consent."))
        or t == f"{prefix}.broker.routed"
    ]


class GroupProgress:
    """How far a worker group has committed its inputs, over one pair of clients.

    The clients are made once: a fresh admin client per poll loads a broker
    that is already busy, and under load its metadata wait can stall.
    """

    def __init__(self, bootstrap: str, group: str, prefix: str) -> None:
        self.group, self.prefix = group, prefix
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def state(self) -> str:
        """The group's state ("Stable", "PreparingRebalance", ..., "Unknown")."""
        try:
            described = self.admin.describe_groups([self.group]).get(self.group, {})
        except KafkaError as exc:  # the coordinator is found only once the group has joined
            if not exc.retriable:
                raise
            return "Unknown"
        return str(described.get("group_state", described.get("state", "Unknown")))

    def committed(self) -> dict[TopicPartition, int]:
        """What the group has committed, by partition (nothing until its coordinator answers)."""
        try:
            offsets = self.admin.list_group_offsets({self.group: None}).get(self.group, {})
        except KafkaError as exc:
            # a group's coordinator is found only once __consumer_offsets is ready
            # and the group has joined; until then nothing counts as committed
            if not exc.retriable:
                raise
            offsets = {}
        return {tp: int(meta.offset) for tp, meta in offsets.items()}

    def behind(self) -> list[TopicPartition]:
        """The input partitions whose committed offset is short of their end, now."""
        partitions = [TopicPartition(t, p) for t in broker_inputs(self.admin, self.prefix)
                      for p in self.consumer.partitions_for_topic(t) or ()]  # fmt: skip
        ends = self.consumer.end_offsets(partitions)
        committed = self.committed()
        return sorted(
            tp
            for tp in partitions
            if ends[tp] > 0 and (tp not in committed or committed[tp] < ends[tp])
        )

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()


def behind(bootstrap: str, group: str, prefix: str) -> list[TopicPartition]:
    """The input partitions whose committed offset is short of their end, now (one look)."""
    progress = GroupProgress(bootstrap, group, prefix)
    try:
        return progress.behind()
    finally:
        progress.close()


def drained(bootstrap: str, group: str, prefix: str, timeout: float) -> list[TopicPartition]:
    """Wait until the group has committed every input to its end; what is still behind.

    Routing writes new messages while the sources drain, so the check repeats
    over the current topic list until nothing is behind or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    progress = GroupProgress(bootstrap, group, prefix)
    try:
        while True:
            late = progress.behind()
            if not late or time.monotonic() >= deadline:
                return late
            time.sleep(0.5)  # polling interval of a condition, not a wait for a race
    finally:
        progress.close()


def settled(
    bootstrap: str, group: str, prefix: str, timeout: float = 180, *, log: Path | None = None
) -> None:
    """Wait until the worker group has committed every message of its inputs.

    ``log``: the worker's log, whose tail the failure then shows (a group that
    stopped committing says why there, not in the test's own output).
    """
    late = drained(bootstrap, group, prefix, timeout)
    tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
    assert not late, f"worker group still behind on {late[:3]}\n{tail}"


def stop_worker(worker: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Stop a worker as an operator does (SIGTERM); one that outlives ``timeout`` is killed.

    A worker wedged on stop used to be left running after its test failed,
    writing to a stopped Kafka for the rest of the suite. It is killed, and
    the timeout still fails the test: a stop that hangs is a defect to see.
    """
    stop_workers([worker], timeout)


def stop_workers(workers: Iterable[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    """``stop_worker`` for several at once: all are sent SIGTERM, then all get ``timeout``.

    They stop together, as a group shutting down does (each hands its
    partitions to none). Every one that outlives the shared deadline is
    killed before ``TimeoutExpired`` is raised for the first of them.
    """
    running = [w for w in workers if w.poll() is None]
    for worker in running:
        worker.terminate()
    deadline = time.monotonic() + timeout
    late: list[subprocess.TimeoutExpired] = []
    for worker in running:
        try:
            worker.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as exc:
            worker.kill()
            worker.wait()
            late.append(exc)
    if late:
        raise late[0]
