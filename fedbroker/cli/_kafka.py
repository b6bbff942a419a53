"""``fedbroker kafka up|down|status``: a local KRaft Kafka for development and tests.

``up --secure --directory D --trust-anchor A`` also issues a client certificate
to every party in the signed directory and sets the ACLs it implies; credentials
stay in the cluster's folder (0600) and only their paths are printed. The anchor
is always given, never looked for beside the directory, and the directory's
serial is recorded in the serial store ``directory acls`` keeps, so an older
directory (one that still lists a removed member) is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from consent import SerialStore, load_directory
from fedbroker._acls import AclNames
from fedbroker._errors import CommandError
from fedbroker._localkafka import DEFAULT_PORT, KAFKA_VERSION, KafkaCluster, known_clusters
from fedbroker._provision import provision
from fedbroker.cli._state_files import default_serials_path

_file = click.Path(exists=True, dir_okay=False, path_type=Path)


__all__ = ["kafka"]


@click.group()
def kafka() -> None:
    """Run a local Apache Kafka (KRaft mode) from the official Maven Central jars."""


@kafka.command()
@click.option("--brokers", type=click.Choice(["1", "3"]), default="1", show_default=True)
@click.option(
    "--port",
    type=int,
    default=DEFAULT_PORT,
    show_default=True,
    help="Port of the first broker; others use the next ports.",
)
@click.option("--fresh", is_flag=True, help="Delete this cluster's data before starting.")
@click.option(
    "--secure",
    is_flag=True,
    help="TLS with client certificates and ACLs; no plaintext listener (sticks until --fresh).",
)
@click.option(
    "--directory",
    "directory_path",
    type=_file,
    default=None,
    help="Signed directory: issue each party's credentials and set its ACLs (with --secure).",
)
@click.option(
    "--trust-anchor", type=_file, default=None,
    help="The authority's public key (required with --directory; never looked for beside it).",
)  # fmt: skip
@click.option("--prefix", default="fed", show_default=True, help="Topic name prefix.")
@click.option("--app-id", default="fedbroker-broker", show_default=True, help="Broker app id.")
def up(
    brokers: str, port: int, fresh: bool, secure: bool, directory_path: Path | None,
    trust_anchor: Path | None, prefix: str, app_id: str,
) -> None:  # fmt: skip
    """Start the cluster (harmless if it is already running) and print its bootstrap."""
    probe = KafkaCluster(int(brokers), port)
    secure = secure or (not fresh and probe.pki.ca_file.exists())
    if directory_path is not None and not secure:
        raise CommandError("--directory is for a --secure cluster")
    loaded = None
    if directory_path is not None:  # refuse a bad directory before starting anything
        if trust_anchor is None:
            # A key found beside the directory vouches for nothing: whoever could put
            # a forged directory there could put their own key beside it.
            raise CommandError("--directory needs --trust-anchor (the authority's public key)")
        loaded = load_directory(directory_path, trust_anchor=trust_anchor, now=datetime.now(UTC))
        # An older directory, still valid, would give a removed member its rights back.
        SerialStore(default_serials_path()).accept(loaded)
    cluster = KafkaCluster(int(brokers), port, secure=secure)
    bootstrap = cluster.up(fresh=fresh)
    mode = "TLS, client certificates, ACLs" if secure else "plaintext"
    click.echo(f"Apache Kafka {KAFKA_VERSION} ({brokers} broker(s), KRaft, {mode}) at {bootstrap}")
    if secure:
        if loaded is not None:
            count = provision(cluster, loaded, AclNames(prefix, app_id))
            click.echo(f"credentials for {count} parties and their ACLs are set")
        folder = cluster.pki.folder / "principals"
        click.echo(f"credentials (0600): {folder}/<party>/kafka-security.yaml")
    click.echo(bootstrap)


@kafka.command()
def status() -> None:
    """Show every local cluster's nodes, their PIDs and whether the cluster answers."""
    clusters = known_clusters()
    if not clusters:
        click.echo("no local Kafka cluster has been started")
        raise SystemExit(1)
    any_running = False
    for cluster in clusters:
        nodes = cluster.status()
        running = [n for n, pid in nodes if pid is not None]
        answering = ""
        if running:
            any_running = True
            try:
                answering = f", brokers answering: {cluster.live_brokers()}"
            except Exception as exc:  # noqa: BLE001 - report, don't crash
                answering = f", not answering ({type(exc).__name__})"
        click.echo(
            f"{cluster.bootstrap}: {len(running)}/{cluster.brokers} node(s) running{answering}"
        )
        for node, pid in nodes:
            state = f"pid {pid}" if pid else "stopped"
            click.echo(f"  node {node.node_id} port {node.port}: {state} (log {node.log_file})")
    if not any_running:
        raise SystemExit(1)


@kafka.command()
@click.option("--port", type=int, default=None, help="Only the cluster whose first port is P.")
def down(port: int | None) -> None:
    """Stop every node that ``kafka up`` started, by PID; data stays unless ``up --fresh``."""
    stopped = 0
    for cluster in known_clusters():
        if port is None or cluster.port == port:
            stopped += len(cluster.down())
    click.echo(f"stopped {stopped} Kafka node(s)")
