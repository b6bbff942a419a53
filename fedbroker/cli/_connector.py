"""``fedbroker connector run``: one council's connector, until stopped or (``--once``) drained."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from connectors import ConnectorMetrics, load_config, open_connector

__all__ = ["connector"]


@click.group()
def connector() -> None:
    """Run a council connector (sources -> signed, sealed, pseudonymous events in Kafka)."""


@connector.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The connector's YAML config.",
)
@click.option("--once", is_flag=True, help="Read what is there, publish it all, then exit.")
@click.option("--bootstrap", default=None, help="Kafka bootstrap (overrides the config).")
def run(config_path: Path, once: bool, bootstrap: str | None) -> None:
    """Read sources into the durable outbox and publish to Kafka with acks=all."""
    config = load_config(config_path, bootstrap=bootstrap)
    metrics = ConnectorMetrics()
    metrics.serve(config.metrics_port, config.metrics_bind)
    running = open_connector(config, metrics=metrics)
    stop = threading.Event()

    # Honoured between steps (``Connector.ingest``): a pod's grace period is
    # seconds, and a large file's pass is minutes.
    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        published = running.run(once=once, stop=stop)
    finally:
        running.close()
    click.echo(f"published {published} record(s) for {config.council}")
