"""``fedbroker kafka up|down|status``: a local KRaft Kafka for development and tests."""

from __future__ import annotations

import click

from fedbroker._localkafka import DEFAULT_PORT, KAFKA_VERSION, KafkaCluster, known_clusters

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
def up(brokers: str, port: int, fresh: bool) -> None:
    """Start the cluster (harmless if it is already running) and print its bootstrap."""
    cluster = KafkaCluster(int(brokers), port)
    bootstrap = cluster.up(fresh=fresh)
    click.echo(f"Apache Kafka {KAFKA_VERSION} ({brokers} broker(s), KRaft) at {bootstrap}")
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
