"""``fedbroker broker run``: one broker worker (run several with the same --app-id to scale)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from broker import DEFAULT_METRICS_BIND, BrokerSettings, build_app
from consent import KafkaSecurity

__all__ = ["broker"]

_file = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def broker() -> None:
    """The matching broker (Faust)."""


@broker.command()
@click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS", required=True)
@click.option("--directory", type=_file, required=True, help="The signed directory.")
@click.option("--trust-anchor", type=_file, required=True, help="The authority's public key.")
@click.option("--signing-key", type=_file, required=True, help="The broker's Ed25519 key.")
@click.option("--app-id", default="fedbroker-broker", show_default=True)
@click.option("--prefix", default="fed", show_default=True, help="Topic name prefix.")
@click.option("--partitions", type=int, default=3, show_default=True)
@click.option(
    "--replication",
    type=click.IntRange(min=1),
    default=None,
    help="Replication factor of the topics it creates [default: the cluster's broker count, "
    "at most 3; min.insync.replicas 2 at 3].",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="Fix the Dice threshold (default: fitted from the blocked pairs' scores as they come).",
)
@click.option("--metrics-port", type=int, default=0, help="Serve /metrics here (0: off).")
@click.option(
    "--metrics-bind",
    default=DEFAULT_METRICS_BIND,
    show_default=True,
    help="Address /metrics listens on (0.0.0.0 in a container, so Prometheus can reach it).",
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".fedbroker/broker"))
@click.option(
    "--store",
    type=click.Choice(["rocksdb://", "memory://"]),
    default="rocksdb://",
    show_default=True,
    help="Where table state lives between changelog writes.",
)
@click.option(
    "--key-epoch",
    "key_epochs",
    type=int,
    multiple=True,
    help="Accept only these of the directory's accepted linkage-key epochs (repeat; "
    "default: all the directory accepts).",
)
@click.option(
    "--checkpoint-interval",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds after which each audit chain's new records get a signed checkpoint.",
)
@click.option(
    "--refit-interval",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds between refits of the Dice threshold (when --threshold is not given).",
)
@click.option(
    "--federation-start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2020-01-01",
    show_default=True,
    help="Refuse consent records dated before this day (UTC).",
)
@click.option(
    "--max-skew",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds a source's time may run ahead of its publication, and that ahead of ours.",
)
def run(
    bootstrap: str, directory: Path, trust_anchor: Path, signing_key: Path, app_id: str,
    prefix: str, partitions: int, replication: int | None, threshold: float | None,
    metrics_port: int, metrics_bind: str,
    data_dir: Path, store: str, key_epochs: tuple[int, ...], checkpoint_interval: float,
    refit_interval: float, federation_start: datetime, max_skew: float,
) -> None:  # fmt: skip
    """Verify, route, match, decide, notify and audit until stopped.

    Kafka credentials come from FEDBROKER_KAFKA_SECURITY_FILE or FEDBROKER_KAFKA_* variables
    (docs/operations.md), never from flags.
    """
    settings = BrokerSettings(
        bootstrap=bootstrap, directory=directory, trust_anchor=trust_anchor,
        signing_key=signing_key, app_id=app_id, topic_prefix=prefix, partitions=partitions,
        threshold=threshold, metrics_port=metrics_port, metrics_bind=metrics_bind,
        data_dir=data_dir, store=store,
        accepted_epochs=frozenset(key_epochs) if key_epochs else None,
        checkpoint_interval_s=checkpoint_interval, refit_interval_s=refit_interval,
        recorded_floor=federation_start.replace(tzinfo=UTC), max_skew=timedelta(seconds=max_skew),
        replication=replication, security=KafkaSecurity.from_env(os.environ),
    )  # fmt: skip
    app = build_app(settings)
    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()
