"""One live demo run: start, feed, watch, settle, check, and always clean up.

The order matters: Kafka answers before any client connects (so no client
logs connection errors), the broker and subscribers start before the first
slice lands, and whatever ends the run (the end, Ctrl-C, SIGTERM, a child
dying) goes through the same ``finally`` that stops every child it started.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from connectors import load_config, open_connector
from fedbroker._demo._access import DemoKafka, broker_app_id
from fedbroker._demo._checks import behind
from fedbroker._demo._children import Children
from fedbroker._demo._live import LiveView
from fedbroker._demo._observe import Observer, Snapshot
from fedbroker._demo._plan import DEFAULT_SLICE_S
from fedbroker._demo._report import Outcome, report
from fedbroker._demo._setup import WEBHOOK_SERVICE, DemoSetup, prepare
from fedbroker._demo._webhook import WebhookReceiver
from fedbroker._errors import CommandError
from fedbroker._localkafka import DEFAULT_PORT, KafkaCluster, fedbroker_home

__all__ = ["DEFAULT_SETTLE_TIMEOUT_S", "DemoOptions", "DemoStopped", "run_demo"]

logger = logging.getLogger(__name__)

#: How long after the last slice the broker and subscribers get to catch up.
DEFAULT_SETTLE_TIMEOUT_S = 180.0
#: Seconds between two looks at Kafka and the hand-overs.
_TICK_S = 1.0
#: Consecutive quiet ticks (nothing behind, nothing new) that mean "settled".
_QUIET_TICKS = 4
_NOISY_LOGGERS = ("kafka", "aiokafka", "faust", "mode")
#: The demo's own clients poll topics that the run has not created yet and close
#: while metadata requests are in flight, and its selector complains of a cancelled
#: task when a client is collected at exit; the client logs all three as ERROR.
_CHATTY_LOGGERS = ("kafka.cluster", "kafka.client", "kafka.conn", "kafka.net")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    people: int
    duration_s: float
    seed: int
    bootstrap: str | None
    plain: bool
    settle_timeout_s: float = DEFAULT_SETTLE_TIMEOUT_S
    #: Run on the local secured cluster, each party with its own certificate and ACLs.
    secure: bool = False
    #: First port of the local cluster (default: 9092 plaintext, 9192 secured).
    port: int | None = None


class DemoStopped(CommandError):  # noqa: N818 - a signal, not an error
    """Ctrl-C or SIGTERM: leave through the clean-up path."""

    reason = "demo-stopped"

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(slots=True)
class _Run:
    setup: DemoSetup
    children: Children
    observer: Observer
    view: LiveView
    idle: dict[str, bool] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Raise at once if a component died: a demo that hides a crash proves nothing."""
        dead = self.children.dead()
        if dead or self.failures:
            names = [f"{n} (exit {rc}, log {self.children.logs[n]})" for n, rc in dead]
            raise _ComponentDied(", ".join([*names, *self.failures]))

    def tick(self, phase: str, *, force: bool = False) -> Snapshot:
        self.check()
        snapshot = self.observer.poll()
        self.view.show(snapshot, phase, force=force)
        return snapshot


class _ComponentDied(CommandError):
    """A child process or connector thread the demo started has gone."""

    reason = "component-died"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The secured local cluster's default first port: a cluster is plaintext or secured
#: for life, so the two never share a port.
SECURE_PORT = DEFAULT_PORT + 100


def _quiet_kafka_up(options: DemoOptions) -> DemoKafka:
    """Start (or find) the local Kafka with the Python clients' loggers silenced meanwhile."""
    if options.bootstrap is not None:
        return DemoKafka(options.bootstrap)
    port = options.port or (SECURE_PORT if options.secure else DEFAULT_PORT)
    cluster = KafkaCluster(1, port, secure=options.secure)
    levels = {n: logging.getLogger(n).level for n in _NOISY_LOGGERS}
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return DemoKafka(cluster.up(), cluster)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _start_children(
    children: Children, setup: DemoSetup, kafka: DemoKafka, webhook: str
) -> dict[str, int]:
    """The broker and one subscriber per watched service; returns their metrics ports."""
    fed, work, bootstrap = setup.federation, setup.work, kafka.bootstrap
    cli = [sys.executable, "-m", "fedbroker"]
    broker_keys = fed.keys["broker"].signing
    assert broker_keys is not None  # the dev federation always has one
    ports = {"broker": _free_port()}
    children.start("broker", [
        *cli, "broker", "run", "--bootstrap", bootstrap,
        "--directory", str(fed.directory_path), "--trust-anchor", str(fed.trust_anchor),
        "--signing-key", str(broker_keys.private), "--app-id", broker_app_id(setup.prefix),
        "--prefix", setup.prefix, "--data-dir", str(work / "broker"),
        "--metrics-port", str(ports["broker"]),
    ], work / "broker.log", kafka.env("broker"))  # fmt: skip
    for service in setup.watched:
        sealing = fed.keys[service].sealing
        assert sealing is not None  # services always have a sealing key
        ports[service] = _free_port()
        sink = (
            ["--webhook", webhook]
            if service == WEBHOOK_SERVICE
            else ["--jsonl", str(work / "delivered" / f"{service}.jsonl")]
        )
        children.start(f"subscriber {service}", [
            *cli, "subscribe", "--bootstrap", bootstrap, "--service", service,
            "--key", str(sealing.private), "--directory", str(fed.directory_path),
            "--trust-anchor", str(fed.trust_anchor), "--prefix", setup.prefix,
            "--state", str(work / "subscribers" / service),
            "--metrics-port", str(ports[service]), *sink,
        ], work / f"subscriber-{service}.log", kafka.env(service))  # fmt: skip
    return ports


def _start_connectors(run: _Run) -> None:
    """Each connector opens, runs and closes in its own thread (its outbox is SQLite,
    whose connections belong to the thread that opened them)."""
    for council, config in run.setup.connector_configs.items():

        def loop(path: Path = config, name: str = council) -> None:
            try:
                connector = open_connector(load_config(path))
                try:
                    connector.run(stop=run.stop)
                    run.idle[name] = connector.outbox.depth() == 0
                finally:
                    connector.close()
            except Exception as exc:  # noqa: BLE001 - reported as a dead component
                run.failures.append(f"connector {name} ({type(exc).__name__})")

        thread = threading.Thread(target=loop, name=f"connector-{council}", daemon=True)
        thread.start()
        run.threads.append(thread)


def group_stable(admin: KafkaAdminClient, group: str) -> bool:
    """Whether ``group`` has formed; a group coordinator still loading means "not yet".

    A Kafka started a moment before answers ``CoordinatorLoadInProgress`` while
    it loads ``__consumer_offsets``; the demo died on that once.
    """
    try:
        groups = admin.list_groups()
    except KafkaError as exc:
        if not exc.retriable:
            raise
        return False
    return any(g["group_id"] == group and g["group_state"] == "Stable" for g in groups)


def _wait_for_broker(run: _Run, group: str, timeout_s: float) -> None:
    """Feed nothing until the broker's group exists, so latencies measure the pipeline,
    not the worker's start-up."""
    admin = KafkaAdminClient(bootstrap_servers=run.observer.bootstrap, **run.observer.client)
    try:
        deadline = time.monotonic() + timeout_s
        while not group_stable(admin, group):
            if time.monotonic() > deadline:
                raise _ComponentDied(f"broker (no consumer group after {timeout_s:.0f}s)")
            run.tick("starting")
            time.sleep(_TICK_S)
    finally:
        admin.close()


def _record_objections(run: _Run, group: str, timeout_s: float) -> None:
    """Drop the objections and wait until the broker has read them all, before any event."""
    setup = run.setup
    for council, pending in setup.pending_consent.items():
        os.replace(pending, setup.consent_inboxes[council] / "objections.csv")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run.tick("consent")
        waiting = [i for i in setup.consent_inboxes.values() if any(i.glob("*.csv"))]
        published = run.observer.consent_published()
        if (
            not waiting
            and published >= len(setup.forbidden)
            and not behind(run.observer.bootstrap, group, setup.prefix, run.observer.client)
        ):
            return
        time.sleep(_TICK_S)
    raise _ComponentDied(f"broker (objections not read within {timeout_s:.0f}s)")


def _feed(run: _Run, duration_s: float) -> None:
    feeds = run.setup.feeds
    slices = len(feeds[0].chunks)
    period = duration_s / slices if slices else DEFAULT_SLICE_S
    start = time.monotonic()
    for index in range(slices):
        now = time.time()
        for feed in feeds:
            for row in feed.chunks[index]:
                ref = run.setup.refs[(feed.council, row[feed.header.index("ref")])]
                run.observer.dropped_at[ref] = now
            run.observer.dropped += feed.drop(index, run.setup.inboxes[feed.council])
        due = start + (index + 1) * period
        while time.monotonic() < due:
            run.tick("streaming")
            time.sleep(max(0.0, min(_TICK_S, due - time.monotonic())))


def _settle(run: _Run, timeout_s: float, group: str) -> bool:
    """Wait until the broker committed every input and nothing new arrives; False on timeout."""
    deadline, quiet, last = time.monotonic() + timeout_s, 0, (-1, -1, -1)
    while time.monotonic() < deadline:
        snapshot = run.tick("settling")
        inboxes = sum(1 for i in run.setup.inboxes.values() for p in i.glob("slice-*.csv"))
        state = (snapshot.published, len(run.observer.audit), snapshot.delivered)
        lag = behind(run.observer.bootstrap, group, run.setup.prefix, run.observer.client)
        quiet = quiet + 1 if (not inboxes and not lag and state == last) else 0
        last = state
        if quiet >= _QUIET_TICKS:
            return True
        time.sleep(_TICK_S)
    return False


def run_demo(options: DemoOptions, out: TextIO, echo: Callable[[str], None]) -> int:
    """The whole run; returns the exit code (0 only if every check held)."""
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    kafka = _quiet_kafka_up(options)
    bootstrap = kafka.bootstrap
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    work = fedbroker_home() / "demo" / run_id
    prefix = f"demo{run_id}"
    mode = "secured: TLS, a certificate and ACLs per party" if kafka.secure else "plaintext"
    echo(f"Kafka at {bootstrap} ({mode}); working in {work}; topics {prefix}*; "
         f"seed {options.seed}")  # fmt: skip
    setup = prepare(
        work, prefix, bootstrap=bootstrap, people=options.people, seed=options.seed,
        duration_s=options.duration_s, security=kafka.connector_security,
    )  # fmt: skip
    if kafka.secure:
        parties = kafka.provision(setup.federation.load(), prefix)
        echo(f"credentials and ACLs set for {parties} parties of the run's directory")
    (work / "delivered").mkdir()
    webhook = WebhookReceiver()
    webhook.start()

    def _signalled(signum: int, frame: FrameType | None) -> None:
        raise DemoStopped(signum)

    previous = {s: signal.signal(s, _signalled) for s in (signal.SIGINT, signal.SIGTERM)}
    children, ports = Children(), dict[str, int]()
    jsonl = {s: work / "delivered" / f"{s}.jsonl" for s in setup.watched if s != WEBHOOK_SERVICE}
    observer = Observer(
        bootstrap, prefix, tuple(c for c in setup.connector_configs), jsonl, webhook,
        client=kafka.view(),
    )  # fmt: skip
    outcome = Outcome()
    try:
        ports = _start_children(children, setup, kafka, webhook.url)
        with LiveView(out, plain=options.plain) as view:
            run = _Run(setup, children, observer, view)
            _start_connectors(run)
            try:
                _wait_for_broker(run, f"{prefix}-broker", options.settle_timeout_s)
                _record_objections(run, f"{prefix}-broker", options.settle_timeout_s)
                _feed(run, options.duration_s)
                outcome.settled = _settle(run, options.settle_timeout_s, f"{prefix}-broker")
                run.tick("done", force=True)
            except _ComponentDied as died:
                outcome.died = str(died)
            finally:
                run.stop.set()
                for thread in run.threads:
                    thread.join(timeout=30)
                outcome.undrained = sorted(
                    set(setup.connector_configs) - set(n for n, idle in run.idle.items() if idle)
                )
    except DemoStopped as stopped:
        outcome.interrupted = stopped.args[0]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        killed = children.stop()
        left = children.running()
        webhook.close()
        observer.close()
    after = "nothing left running but Kafka" if not left else f"STILL RUNNING: {left}"
    forced = f" ({len(killed)} had to be killed)" if killed else ""
    echo(f"stopped {len(children.processes)} child processes{forced}; {after}")
    if outcome.interrupted:
        echo(f"interrupted by {outcome.interrupted}: shut down cleanly, no summary checked")
        return 130 if outcome.interrupted == "SIGINT" else 143
    return report(setup, observer, outcome, ports=ports, bootstrap=bootstrap,
                  local_kafka=options.bootstrap is None, echo=echo,
                  client=kafka.view())  # fmt: skip
