"""A local Apache Kafka in KRaft mode, started from the official Maven Central jars.

There is no Docker engine on the project's machines, but Java 17 and Maven are,
so ``fedbroker kafka up`` resolves ``org.apache.kafka:kafka_2.13`` with Maven
into a cache, formats KRaft storage once and runs each node as a background JVM
with a PID file and a log file. One node for development and tests; three on
loopback (replication factor 3, ``min.insync.replicas=2``) for fault tests.
With ``secure`` every listener is TLS with client certificates from the
cluster's own CA (``fedbroker._tls``) and an ACL authoriser (docs/operations.md).
"""

from __future__ import annotations

import base64
import importlib.resources
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from consent import KafkaSecurity
from fedbroker._errors import CommandError
from fedbroker._tls import ADMIN_PRINCIPAL, NODE_PRINCIPAL, ClientFiles, LocalPki, write_secret

__all__ = [
    "DEFAULT_PORT",
    "KAFKA_VERSION",
    "KafkaCluster",
    "KafkaNode",
    "LocalKafkaError",
    "fedbroker_home",
]

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"
DEFAULT_PORT = 9092
DEFAULT_HEAP = "-Xmx512m -Xms192m"
CONTROLLER_PORT_OFFSET = 1000
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
#: How long the controller waits for a silent node before fencing it and moving its
#: leaders away: generous, so a node on a busy 2-core machine that misses a few
#: heartbeats is not fenced; fault tests shorten it to fail over sooner.
DEFAULT_SESSION_TIMEOUT_MS = 30000


def _deploy_dir() -> Path:
    """Where Kafka's pom.xml, server.properties template and log4j2.xml are.

    They are package data (``fedbroker/_deploy/kafka``), found through
    ``importlib.resources`` so that an installed wheel finds its own copy
    wherever it is run from. Maven and the JVM need real files, and a wheel
    installs unzipped, so the resource is a directory on disk.
    """
    return Path(str(importlib.resources.files("fedbroker").joinpath("_deploy", "kafka")))


_DEPLOY_DIR = _deploy_dir()


class LocalKafkaError(CommandError):
    """The local broker could not be prepared, started, reached or stopped."""

    reason = "local-kafka"


def fedbroker_home() -> Path:
    """Where the CLI keeps jars, Kafka data and logs: ``$FEDBROKER_HOME`` or ``./.fedbroker``."""
    return Path(os.environ.get("FEDBROKER_HOME", ".fedbroker")).resolve()


def _process_stat(pid: int) -> list[str] | None:
    """Fields 3 onwards of ``/proc/PID/stat`` (state first), or None: no such process.

    The command name (field 2) is skipped: it sits in parentheses and may hold
    spaces or parentheses of its own.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def _identity(pid: int) -> str | None:
    """``PID:start-time`` of a live process, or None when none runs under ``pid``.

    The start time (clock ticks after boot, field 22) is fixed when the process
    is forked and never changes, so with the PID it names one process for the
    life of the host: a PID the kernel hands out again belongs to a process
    started later. A zombie (exited, not yet reaped) counts as gone.
    """
    fields = _process_stat(pid)
    if fields is None or len(fields) < 20 or fields[0] == "Z":
        return None
    return f"{pid}:{fields[19]}"


def _runs_with(pid: int, config: Path) -> bool:
    """Whether process ``pid`` was started with ``config`` on its command line.

    Only for PID files written before they recorded the start time: a process
    reads as having no command line at all for a moment while it executes a new
    program, so a check made just after a start would call the node dead.
    """
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(config).encode() in arguments


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One combined broker+controller JVM and the files that belong to it."""

    node_id: int
    port: int
    controller_port: int
    directory: Path

    @property
    def pid_file(self) -> Path:
        return self.directory / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "kafka.log"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def pid(self) -> int | None:
        """The running JVM's PID, or None; a stale PID file is removed.

        A PID file outlives its process when the node dies by itself, and the
        kernel hands PIDs out again (32,768 of them on a small machine, used up
        within one test run): a live process under a stale PID may be another
        cluster's node or any other program, which ``down`` or ``kill_node``
        would then stop. The file therefore holds ``PID:start-time``, and only
        the process with both counts as the node.
        """
        try:
            recorded = self.pid_file.read_text().strip()
            pid = int(recorded.partition(":")[0])
        except (OSError, ValueError):
            return None
        if ":" in recorded:
            running = _identity(pid) == recorded
        else:
            running = _identity(pid) is not None and _runs_with(
                pid, self.directory / "server.properties"
            )
        if running:
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def record_pid(self, pid: int) -> None:
        """Name the node's process in its PID file (see :meth:`pid`)."""
        identity = _identity(pid)
        if identity is None:
            raise LocalKafkaError(
                f"Kafka node {self.node_id} exited at once; last lines of "
                f"{self.log_file}:\n{self.log_tail()}"
            )
        self.pid_file.write_text(identity)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"


@dataclass(frozen=True, slots=True)
class KafkaCluster:
    """A local cluster of ``brokers`` nodes whose first broker listens on ``port``."""

    brokers: int = 1
    port: int = DEFAULT_PORT
    home: Path | None = None
    secure: bool = False
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS

    def __post_init__(self) -> None:
        if self.brokers not in (1, 3):
            raise LocalKafkaError("--brokers must be 1 or 3")

    @property
    def root(self) -> Path:
        return (self.home or fedbroker_home()) / "kafka"

    @property
    def directory(self) -> Path:
        return self.root / f"cluster-{self.brokers}x{self.port}"

    @property
    def libs(self) -> Path:
        return self.root / f"libs-{KAFKA_VERSION}"

    @property
    def nodes(self) -> tuple[KafkaNode, ...]:
        return tuple(
            KafkaNode(
                node_id=i + 1,
                port=self.port + i,
                controller_port=self.port + i + CONTROLLER_PORT_OFFSET,
                directory=self.directory / f"node-{i + 1}",
            )
            for i in range(self.brokers)
        )

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def pki(self) -> LocalPki:
        """The cluster's CA and every credential it issued (private files are 0600)."""
        return LocalPki(self.directory / "tls")

    def credentials(self, principal: str) -> ClientFiles:
        """Issue (once) a principal's client certificate, with a settings file beside it.

        ``<folder>/kafka-security.yaml`` is what ``FEDBROKER_KAFKA_SECURITY_FILE``
        points at; it names files only, so it is safe to show.
        """
        files = self.pki.ensure_client(principal)
        settings = files.cert_file.parent / "kafka-security.yaml"
        if not settings.exists():
            settings.write_text(
                f"ca_file: {files.ca_file}\ncert_file: {files.cert_file}\n"
                f"key_file: {files.key_file}\n"
            )
        kcat = files.cert_file.parent / "kcat.conf"  # for `kcat -F` and other librdkafka tools
        if not kcat.exists():
            config = KafkaSecurity(files.ca_file, files.cert_file, files.key_file).librdkafka()
            write_secret(kcat, "".join(f"{k}={v}\n" for k, v in config.items()).encode())
        return files

    def security(self, principal: str = ADMIN_PRINCIPAL) -> KafkaSecurity:
        """A client's settings for this cluster (unsecured when the cluster is)."""
        if not self.secure:
            return KafkaSecurity()
        files = self.credentials(principal)
        return KafkaSecurity(
            ca_file=files.ca_file, cert_file=files.cert_file, key_file=files.key_file
        )

    # -- preparation -------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Resolve the Kafka jars once with Maven; later calls reuse the cache."""
        marker = self.libs / ".complete"
        if marker.exists():
            return self.libs
        if shutil.which("mvn") is None or shutil.which("java") is None:
            raise LocalKafkaError(
                "Java >= 17 and Maven are needed to run Kafka locally "
                "(or set KAFKA_BOOTSTRAP_SERVERS to an existing cluster)"
            )
        self.libs.mkdir(parents=True, exist_ok=True)
        command = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(_DEPLOY_DIR / "pom.xml"),
            f"-Dkafka.version={KAFKA_VERSION}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={self.libs}",
        ]
        logger.info("resolving Apache Kafka %s jars with Maven", KAFKA_VERSION)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(
                f"Maven could not resolve Kafka {KAFKA_VERSION}: "
                f"{(result.stdout + result.stderr).strip()[-2000:]}"
            )
        marker.touch()
        return self.libs

    def _java(self, main: str, *args: str, heap: str = "-Xmx256m") -> list[str]:
        log4j = _DEPLOY_DIR / "log4j2.xml"
        return [
            "java",
            *heap.split(),
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def _write_config(self, node: KafkaNode) -> Path:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        values: dict[str, object] = {
            "node_id": node.node_id,
            "voters": voters,
            "port": node.port,
            "controller_port": node.controller_port,
            "data_dir": node.data_dir,
            "replication": self.brokers,
            "min_isr": 2 if self.brokers == 3 else 1,
            "session_timeout_ms": self.session_timeout_ms,
        }
        name = "server.properties.template"
        if self.secure:
            name = "server-secure.properties.template"
            self.pki.ensure_node()
            values |= {
                "keystore": self.pki.node_keystore,
                "keystore_password": self.pki.node_password_file.read_text().strip(),
                "truststore": self.pki.ca_file,
                "super_users": f"User:{ADMIN_PRINCIPAL};User:{NODE_PRINCIPAL}",
            }
        text = (_DEPLOY_DIR / name).read_text().format(**values)
        node.directory.mkdir(parents=True, exist_ok=True)
        path = node.directory / "server.properties"
        # A secured node's properties hold its keystore password.
        write_secret(path, text.encode())
        return path

    def _cluster_id(self) -> str:
        path = self.directory / "cluster.id"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            path.write_text(base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="))
        return path.read_text().strip()

    def _format(self, node: KafkaNode, config: Path) -> None:
        if (node.data_dir / "meta.properties").exists():
            return
        # "=": a random id may start with "-", which the tool would read as an option.
        command = self._java(
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={self._cluster_id()}",
            f"--config={config}",
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(f"formatting KRaft storage failed: {result.stderr[-2000:]}")

    # -- lifecycle ---------------------------------------------------------

    def up(self, *, fresh: bool = False, timeout: float = STARTUP_TIMEOUT_S) -> str:
        """Start every node not already running and wait until all answer metadata."""
        self.ensure_jars()
        if fresh:
            self.down()
            shutil.rmtree(self.directory, ignore_errors=True)
        if self.secure:
            self.credentials(ADMIN_PRINCIPAL)
        for node in self.nodes:
            if node.pid() is not None:
                continue
            config = self._write_config(node)
            self._format(node, config)
            self.start_node(node)
        self.wait_ready(timeout=timeout)
        return self.bootstrap

    def start_node(self, node: KafkaNode) -> int:
        """Launch one node's JVM in its own session so it outlives the CLI."""
        config = node.directory / "server.properties"
        heap = os.environ.get("FEDBROKER_KAFKA_HEAP", DEFAULT_HEAP)
        with node.log_file.open("ab") as log:
            process = subprocess.Popen(
                self._java("kafka.Kafka", str(config), heap=heap),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        node.record_pid(process.pid)
        return process.pid

    def wait_ready(self, *, timeout: float = STARTUP_TIMEOUT_S) -> None:
        # Refused connections are the expected answer while the JVMs start; the
        # client logs each at ERROR, which buried the one line that matters.
        client_log = logging.getLogger("kafka")
        previous = client_log.level
        client_log.setLevel(logging.CRITICAL)
        try:
            self._wait_ready(timeout)
        finally:
            client_log.setLevel(previous)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            dead = [n for n in self.nodes if n.pid() is None]
            if dead:
                raise LocalKafkaError(
                    f"Kafka node {dead[0].node_id} exited during start-up; "
                    f"last lines of {dead[0].log_file}:\n{dead[0].log_tail()}"
                )
            try:
                if len(self.live_brokers()) == self.brokers:
                    return
            except Exception as exc:  # noqa: BLE001 - any client error means "not yet"
                last_error = str(exc)
            time.sleep(0.5)
        node = self.nodes[0]
        raise LocalKafkaError(
            f"Kafka did not answer a metadata request within {timeout:.0f}s ({last_error}); "
            f"last lines of {node.log_file}:\n{node.log_tail()}"
        )

    def live_brokers(self) -> list[int]:
        """Broker ids that the cluster reports in a metadata response."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            request_timeout_ms=5000,
            **self.security().kafka_python(),
        )
        try:
            cluster = admin.describe_cluster()
        finally:
            admin.close()
        return sorted(int(b["broker_id"]) for b in cluster["brokers"])

    def status(self) -> list[tuple[KafkaNode, int | None]]:
        return [(node, node.pid()) for node in self.nodes]

    def kill_node(self, node_id: int, *, sig: int = signal.SIGKILL) -> None:
        """Stop one node abruptly, for fault tests."""
        node = self.nodes[node_id - 1]
        pid = node.pid()
        if pid is not None:
            os.kill(pid, sig)
            _wait_gone(pid, STOP_TIMEOUT_S)
        node.pid_file.unlink(missing_ok=True)

    def down(self) -> list[int]:
        """Stop the nodes this cluster started (by PID), gracefully then by force."""
        stopped = []
        for node in self.nodes:
            pid = node.pid()
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, STOP_TIMEOUT_S):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5.0)
            node.pid_file.unlink(missing_ok=True)
            stopped.append(node.node_id)
        return stopped


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if _identity(pid) is None:
            return True
        time.sleep(0.2)
    return False


def known_clusters(home: Path | None = None) -> Sequence[KafkaCluster]:
    """Every local cluster that has a directory under the home, for ``status``/``down``."""
    root = (home or fedbroker_home()) / "kafka"
    clusters = []
    for path in sorted(root.glob("cluster-*x*")):
        brokers, _, port = path.name.removeprefix("cluster-").partition("x")
        if brokers.isdigit() and port.isdigit():
            secure = (path / "tls" / "ca.pem").exists()
            clusters.append(KafkaCluster(int(brokers), int(port), home, secure=secure))
    return clusters
