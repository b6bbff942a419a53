"""``fedbroker subscribe``: a combined-authority service reading its match notifications.

Reads the service's own topic, ``<prefix>.notify.<service>``, checks the
broker's envelope signature on each notification before decoding it, opens the
payloads sealed to this service with its own X25519 key, and prints one JSON
line per notification: what was matched and the fields the agreement grants it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from kafka import KafkaConsumer

from consent import (
    SealingFailed,
    load_directory,
    load_private_key,
    notify_topic,
    open_envelope,
    open_fields,
)
from fedbroker._errors import CommandError
from schemas import Codec, MatchNotification, SignatureDomain

__all__ = ["subscribe"]

_file = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS", required=True)
@click.option("--agreement", default=None, help="Only this agreement's notifications.")
@click.option(
    "--service",
    required=True,
    help="This service's id in the directory: reads <prefix>.notify.<id>.",
)
@click.option("--key", "key_path", type=_file, required=True, help="The service's X25519 key.")
@click.option("--directory", type=_file, required=True)
@click.option("--trust-anchor", type=_file, required=True)
@click.option("--prefix", default="fed", show_default=True)
@click.option("--max-messages", type=int, default=0, help="Stop after N (0: no limit).")
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Stop after this many seconds without a new notification.",
)
def subscribe(
    bootstrap: str, agreement: str | None, service: str, key_path: Path, directory: Path,
    trust_anchor: Path, prefix: str, max_messages: int, timeout: float,
) -> None:  # fmt: skip
    """Print this service's notifications, with their opened fields."""
    loaded = load_directory(directory, trust_anchor=trust_anchor, now=datetime.now(UTC))
    broker = loaded.broker
    broker_key = broker.signing_key
    key = load_private_key(key_path)
    if broker_key is None or not isinstance(key, X25519PrivateKey):
        raise CommandError("need the broker's signing key in the directory and an X25519 key")
    codec = Codec()
    consumer = KafkaConsumer(
        notify_topic(prefix, service), bootstrap_servers=bootstrap,
        auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=500,
    )  # fmt: skip
    seen, last = 0, time.monotonic()
    try:
        while time.monotonic() - last < timeout and not (max_messages and seen >= max_messages):
            for message in consumer:
                notification, _ = open_envelope(
                    message.value,
                    SignatureDomain.NOTIFICATION,
                    lambda signer: broker_key if signer == broker.member_id else None,
                    codec=codec,
                )
                assert isinstance(notification, MatchNotification)
                if notification.recipient != service or agreement not in (
                    None,
                    notification.agreement_id,
                ):
                    continue
                fields = {}
                for sealed in notification.sealed:
                    if sealed.recipient != service:
                        continue
                    for event in notification.events:
                        try:
                            fields[event.event_id] = open_fields(
                                key, sealed, event_id=event.event_id
                            )
                            break
                        except SealingFailed as exc:
                            if exc.reason != SealingFailed.reason:
                                raise  # it opened, but holds other fields than declared
                            continue  # sealed to another event of the notification
                click.echo(json.dumps({
                    "notification_id": notification.notification_id,
                    "agreement": notification.agreement_id,
                    "score": notification.score, "method": notification.method,
                    "events": [
                        {"event_id": e.event_id, "council": e.source_council,
                         "type": e.event_type.value, "occurred_at": e.occurred_at.isoformat()}
                        for e in notification.events
                    ],
                    "fields": fields,
                }))  # fmt: skip
                seen += 1
                last = time.monotonic()
                if max_messages and seen >= max_messages:
                    break
    finally:
        consumer.close()
