"""``fedbroker subscribe``: a combined-authority service receiving its match notifications.

A thin wrapper over ``subscriber.Subscriber`` (docs/subscriber.md): it reads the
service's own topic, verifies, opens, dedupes, and hands each notification to a
JSON Lines file (``-``: standard output) or a webhook, committing only after.
"""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from consent import (
    DirectoryWatcher,
    KafkaSecurity,
    SerialStore,
    load_private_key,
    public_key_b64,
)
from fedbroker._errors import CommandError
from fedbroker._localkafka import fedbroker_home
from subscriber import (
    DEFAULT_BACKOFF,
    Backoff,
    JsonLinesSink,
    Sink,
    Subscriber,
    SubscriberSettings,
    WebhookSink,
    default_group,
)

__all__ = ["subscribe"]

_file = click.Path(exists=True, dir_okay=False, path_type=Path)
_out = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS", required=True)
@click.option("--service", required=True, help="This service's id in the directory.")
@click.option("--key", "key_path", type=_file, required=True, help="The service's X25519 key.")
@click.option("--directory", type=_file, required=True)
@click.option("--trust-anchor", type=_file, required=True)
@click.option("--prefix", default="fed", show_default=True)
@click.option("--agreement", default=None, help="Hand over only this agreement's notifications.")
@click.option("--topic", default=None, help="Topic to read [default: <prefix>.notify.<service>].")
@click.option(
    "--group", default=None, help="Consumer group [default: <prefix>.subscriber.<service>]."
)
@click.option(
    "--state", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder of the delivered-id store [default: $FEDBROKER_HOME/subscriber/<group>].",
)  # fmt: skip
@click.option(
    "--dead-letters", type=_out, default=None, help="[default: <state>/dead-letters.jsonl]"
)
@click.option("--jsonl", type=str, default=None, help="Append notifications to FILE ('-': stdout).")
@click.option(
    "--webhook", default=None,
    help="POST each notification to this https:// URL (http:// only to this host); "
    "HTTP(S)_PROXY is not used.",
)  # fmt: skip
@click.option(
    "--webhook-attempts", type=click.IntRange(1), default=DEFAULT_BACKOFF.attempts,
    show_default=True, help="Tries per hand-over before backing off and trying again later.",
)  # fmt: skip
@click.option("--metrics-port", type=int, default=0, help="Serve Prometheus metrics (0: off).")
@click.option(
    "--metrics-bind", default="127.0.0.1", show_default=True,
    help="Address the metrics listen on (0.0.0.0 in a container, so Prometheus can reach it).",
)  # fmt: skip
@click.option("--max-messages", type=int, default=0, help="Stop after N hand-overs (0: no limit).")
@click.option(
    "--timeout", type=float, default=0.0, show_default=True,
    help="Stop after this many seconds without a new message (0: run until Ctrl-C).",
)  # fmt: skip
def subscribe(
    bootstrap: str, service: str, key_path: Path, directory: Path, trust_anchor: Path,
    prefix: str, agreement: str | None, topic: str | None, group: str | None,
    state: Path | None, dead_letters: Path | None, jsonl: str | None, webhook: str | None,
    webhook_attempts: int, metrics_port: int, metrics_bind: str, max_messages: int, timeout: float,
) -> None:  # fmt: skip
    """Receive this service's notifications: verified, opened, once each, committed after."""
    if jsonl is not None and webhook is not None:
        raise click.UsageError("give one of --jsonl and --webhook")
    # Made first: a webhook URL in clear is refused before anything is read or written.
    hook = (
        None
        if webhook is None
        else WebhookSink(webhook, backoff=Backoff(attempts=webhook_attempts))
    )
    folder = state or fedbroker_home() / "subscriber" / (group or default_group(prefix, service))
    # The highest serial accepted is kept with the delivered ids: an older file put
    # back must not bring a revoked broker key (or a withdrawn agreement) back. The
    # subscriber follows the file, so a new directory (a rotated broker key) is
    # taken up without a restart.
    watcher = DirectoryWatcher(
        directory,
        trust_anchor=trust_anchor,
        serial_store=SerialStore(folder / "directory-serials.json"),
        now=datetime.now(UTC),
    )
    key = load_private_key(key_path)
    if not isinstance(key, X25519PrivateKey):
        raise CommandError("--key must be the service's X25519 sealing key")
    # Another service's key (or an old one) opens nothing: every notification would be
    # dead-lettered and committed as handled. An unknown --service raises unknown-member.
    if public_key_b64(watcher.current.sealing_key(service)) != public_key_b64(key):
        raise CommandError(
            f"--key is not the sealing key the directory lists for service '{service}'",
            reason="service-key-mismatch",
        )
    settings = SubscriberSettings(
        bootstrap=bootstrap, service=service, prefix=prefix, topic=topic, group=group,
        agreement=agreement, store=folder / "delivered.sqlite",
        dead_letters=dead_letters or folder / "dead-letters.jsonl",
        security=KafkaSecurity.from_env(os.environ),
    )  # fmt: skip
    sink: Sink = hook if hook is not None else JsonLinesSink(jsonl or "-")
    with Subscriber(settings, directory=watcher, key=key, sink=sink) as running:
        running.metrics.serve(metrics_port, metrics_bind)

        def _stop(signum: int, frame: FrameType | None) -> None:
            running.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        running.run(max_delivered=max_messages, idle_timeout=timeout or None)
        tally = running.metrics.tally
    click.echo(
        f"{service}: {tally['delivered']} delivered, {tally['duplicate']} duplicates, "
        f"{tally['dead-lettered']} dead-lettered, {tally['skipped']} skipped",
        err=True,
    )
