"""``fedbroker demo``: three councils, a broker and a subscriber, end to end on a real Kafka.

Composes what the packages own: a signed dev federation (consent), synthetic
councils and their connectors (connectors), a broker worker (broker), and a
service reading its notifications. It then shows the audit chain verifying and
scans every topic for the input's clear values, finding none.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import click
import yaml
from kafka import KafkaConsumer

from connectors import generate_federation, generate_linkage_key, load_config, open_connector
from consent import (
    KafkaSecurity,
    build_dev_federation,
    notify_topic,
    open_envelope,
    verify_audit,
    write_secret_file,
)
from fedbroker._localkafka import KafkaCluster, fedbroker_home
from fedbroker._topics import read_to_end
from schemas import (
    AuditKind,
    AuditRecord,
    Codec,
    FedbrokerError,
    MatchNotification,
    RejectedRecord,
    SignatureDomain,
)
from subscriber import open_notification

__all__ = ["demo"]

COUNCILS = ("E08000003", "E08000006", "E08000009")  # Manchester, Salford, Trafford


def _kafka_security() -> dict[str, object]:
    """FEDBROKER_KAFKA_* credentials, which the demo's broker and connectors inherit too."""
    return KafkaSecurity.from_env(os.environ).kafka_python()


def _read(bootstrap: str, topic: str) -> list[bytes]:
    records = read_to_end(bootstrap, topic, consumer_config=_kafka_security())
    return [r.value for r in records if r.value is not None]


@click.command()
@click.option("--people", type=click.IntRange(10, 5000), default=300, show_default=True)
@click.option(
    "--bootstrap",
    envvar="KAFKA_BOOTSTRAP_SERVERS",
    default=None,
    help="An existing cluster (default: start the local Kafka).",
)
def demo(people: int, bootstrap: str | None) -> None:
    """Run the whole federation once and report what was shared, why, and with whom."""
    bootstrap = bootstrap or KafkaCluster().up()
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    work = fedbroker_home() / "demo" / run_id
    prefix = f"demo{run_id}"
    click.echo(f"Kafka at {bootstrap}; working in {work}; topics {prefix}.*")
    federation = build_dev_federation(work / "federation", councils=list(COUNCILS))
    synth = generate_federation(work / "councils", councils=COUNCILS, people=people)
    keys = work / "linkage-keys.json"
    write_secret_file(keys, json.dumps({"1": generate_linkage_key(1).secret.hex()}).encode())
    broker_keys = federation.keys["broker"].signing
    assert broker_keys is not None
    worker = subprocess.Popen(
        [sys.executable, "-m", "fedbroker", "broker", "run", "--bootstrap", bootstrap,
         "--directory", str(federation.directory_path), "--trust-anchor",
         str(federation.trust_anchor), "--signing-key", str(broker_keys.private),
         "--app-id", f"{prefix}-broker", "--prefix", prefix, "--data-dir", str(work / "broker")],
        stdout=(work / "broker.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        time.sleep(8)
        for council in COUNCILS:
            _run_connector(work, federation, synth, keys, council, bootstrap, prefix)
        click.echo("waiting for the broker to settle ...")
        notifications = _settle(bootstrap, prefix, federation.load())
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    _report(bootstrap, prefix, federation, notifications, synth.files)


def _run_connector(work, federation, synth, keys, council, bootstrap, prefix) -> None:  # type: ignore[no-untyped-def]
    inbox = work / council / "inbox"
    inbox.mkdir(parents=True)
    os.replace(synth.files[council], inbox / "extract.csv")
    signing = federation.keys[council].signing
    config = work / council / "connector.yaml"
    config.write_text(yaml.safe_dump({
        "council": council, "directory": str(federation.directory_path),
        "trust_anchor": str(federation.trust_anchor), "signing_key": str(signing.private),
        "linkage_keys": str(keys), "outbox": str(work / council / "outbox.sqlite"),
        "kafka": {"bootstrap": bootstrap, "topic_prefix": prefix},
        "sources": [{"name": "revenues", "kind": "csv", "path": str(inbox),
                     "mapping": str(synth.mapping)}],
    }))  # fmt: skip
    connector = open_connector(load_config(config))
    try:
        published = connector.run(once=True)
        quarantined = len(connector.outbox.quarantined())
    finally:
        connector.close()
    click.echo(f"connector {council}: {published} events published, {quarantined} rows quarantined")
    os.replace(inbox / "done" / "extract.csv", synth.files[council])


def _settle(bootstrap: str, prefix: str, directory) -> list[MatchNotification]:  # type: ignore[no-untyped-def]
    codec, last, stable = Codec(), -1, 0
    broker = directory.broker

    def opened(value: bytes) -> MatchNotification:
        notification, _ = open_envelope(
            value, SignatureDomain.NOTIFICATION,
            lambda signer: broker.signing_key if signer == broker.member_id else None,
            codec=codec,
        )  # fmt: skip
        assert isinstance(notification, MatchNotification)
        return notification

    found: list[MatchNotification] = []
    for _ in range(90):
        found = [
            opened(v)
            for s in directory.services
            for v in _read(bootstrap, notify_topic(prefix, s.member_id))
        ]
        stable = stable + 1 if len(found) == last and found else 0
        if stable >= 5:
            break
        last = len(found)
        time.sleep(2)
    return found


def _report(bootstrap, prefix, federation, notifications, files) -> None:  # type: ignore[no-untyped-def]
    codec = Codec()
    directory = federation.load()
    click.echo("\nnotifications by agreement:")
    for agreement, count in sorted(Counter(n.agreement_id for n in notifications).items()):
        click.echo(f"  {agreement}: {count}")
    audit = [codec.decode_as(v, AuditRecord) for v in _read(bootstrap, f"{prefix}.audit")]
    outcomes = Counter(
        (a.agreement_id, a.outcome.value if a.outcome else "", ",".join(a.reasons))
        for a in audit
        if a.kind is AuditKind.DECISION
    )
    click.echo("decisions (agreement, outcome, reasons):")
    for (agreement, outcome, reasons), count in sorted(outcomes.items()):
        click.echo(f"  {agreement} {outcome} [{reasons}]: {count}")
    report = verify_audit(audit, directory.member("broker").signing_key)
    click.echo(f"audit chain: {len(audit)} records, {'verified' if report.ok else 'PROBLEMS'}")
    rejected = [codec.decode_as(v, RejectedRecord) for v in _read(bootstrap, f"{prefix}.rejected")]
    click.echo(f"rejected messages: {len(rejected)}")
    for notification in notifications[:3]:
        service = notification.recipient
        try:
            opened = open_notification(
                notification,
                service=service,
                key=federation.sealing_key(service),
                directory=directory,
            ).fields
        except FedbrokerError as exc:  # what a subscriber would dead-letter
            click.echo(f"\n{service} would refuse {notification.notification_id}: {exc.reason}")
            continue
        kinds = [e.event_type.value for e in notification.events]
        click.echo(f"\n{service} sees {notification.agreement_id} {kinds} "
                   f"({notification.method}, score {notification.score:.2f}):")  # fmt: skip
        click.echo(f"  opened fields: {sorted({f for fields in opened.values() for f in fields})}")
    leaks = _scan(bootstrap, prefix, files)
    click.echo(f"\nprivacy scan of every {prefix}.* topic: {leaks} clear values found")
    if leaks or not report.ok:
        raise SystemExit(1)


def _scan(bootstrap: str, prefix: str, files) -> int:  # type: ignore[no-untyped-def]
    import csv

    needles: set[bytes] = set()
    for path in files.values():
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                for column in ("surname", "nhs_no", "ni_number", "dob", "address_1"):
                    if len(row[column]) >= 5:
                        needles.add(row[column].encode())
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **_kafka_security())
    topics = [t for t in consumer.topics() if t.startswith(prefix)]
    consumer.close()
    haystack = b"\n".join(v for t in topics for v in _read(bootstrap, t))
    return sum(1 for n in needles if _found(n, haystack))


_BASE64 = re.compile(rb"[A-Za-z0-9+/=]")


def _found(needle: bytes, haystack: bytes) -> bool:
    """Whether ``needle`` stands in ``haystack`` as a value, not as chance letters.

    Internal topics carry ciphertext as base64 text, where a five-letter surname
    turns up by chance (a demo run once found "Yates" there). A value in clear
    has something other than base64 on at least one side: a quote, a length
    byte, a space.
    """
    for match in re.finditer(re.escape(needle), haystack):
        before = haystack[match.start() - 1 : match.start()]
        after = haystack[match.end() : match.end() + 1]
        if not (_BASE64.fullmatch(before or b"-") and _BASE64.fullmatch(after or b"-")):
            return True
    return False
