"""The broker end to end through real Kafka: councils' connectors, a worker, a subscriber.

A resident moves from one council to another: the receiving council's services
are notified under the cross-boundary agreement and can open exactly the fields
it grants; every decision is audited; a forged and a replayed event are refused.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from consent import notify_topic, open_envelope, seal_envelope
from schemas import (
    AuditKind,
    AuditRecord,
    CitizenEvent,
    Codec,
    MatchNotification,
    RejectedRecord,
    SignatureDomain,
    SignedEnvelope,
)
from subscriber import CallbackSink, OpenedNotification, Subscriber, SubscriberSettings
from tests.broker.workers import start_worker, stop_worker
from tests.connectors.conftest import COUNCILS, REPO, read_topic, run_connector
from tests.demo_run import DEMO_TIMEOUT_S
from tests.subscriber.conftest import publish

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

AGREEMENT = "gm-cross-boundary-move"
DAY0 = date.today() - timedelta(days=20)  # inside the agreement's retention
FROM, TO = COUNCILS[0], COUNCILS[1]
PERSON = {"forename": "Alice", "surname": "Example-Jones", "dob": "14/02/1984",
          "postcode": "M1 1AE", "address_1": "1 Piccadilly", "uprn": "10023456789",
          "nhs_no": "9434765919", "ni_number": "JG103759A"}  # fmt: skip


def _write(inbox: Path, rows: list[dict[str, str]]) -> None:
    path = inbox / ".extract.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(path, inbox / "extract.csv")


def _wait_for(bootstrap: str, topic: str, count: int, timeout: float = 120) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            values = [v for _, v in read_topic(bootstrap, topic)]
        except AssertionError:
            values = []
        if len(values) >= count or time.monotonic() > deadline:
            return values
        time.sleep(1)


def test_move_is_notified_audited_and_forgeries_refused(
    council_factory,
    kafka_bootstrap,
    federation,
    topic_factory,
    tmp_path,
):
    prefix = topic_factory("fed")
    origin = council_factory(FROM, prefix=prefix)
    destination = council_factory(TO, prefix=prefix)
    _write(
        origin.inbox,
        [{**PERSON, "ref": "A-1", "event": "CT_CLOSE", "event_date": DAY0.isoformat()}],
    )
    moved = (DAY0 + timedelta(days=3)).isoformat()
    _write(destination.inbox, [{**PERSON, "ref": "B-7", "event": "MOVE", "event_date": moved,
                                "postcode": "M32 0AA", "address_1": "2 Chester Rd"}])  # fmt: skip
    worker = start_worker(kafka_bootstrap, federation, group=topic_factory("broker"),
                          prefix=prefix, data_dir=tmp_path / "broker",
                          log=tmp_path / "worker.log")  # fmt: skip
    try:
        run_connector(origin, "--once")
        run_connector(destination, "--once")
        codec = Codec()
        revenues, electoral = f"{TO}.revenues", f"{TO}.electoral-registration"
        values = _wait_for(kafka_bootstrap, notify_topic(prefix, revenues), 1, timeout=40)
        debug = {
            t: len(read_topic(kafka_bootstrap, f"{prefix}.{t}"))
            for t in ("rejected", "audit", "broker.routed", f"events.{FROM}", f"events.{TO}")
        }
        assert values, (debug, (tmp_path / "worker.log").read_text()[-3000:])
        directory = federation.load()
        broker = directory.broker

        def verified(value: bytes) -> MatchNotification:
            record, envelope = open_envelope(
                value, SignatureDomain.NOTIFICATION,
                lambda signer: broker.signing_key if signer == broker.member_id else None,
                codec=codec,
            )  # fmt: skip
            assert isinstance(record, MatchNotification)
            return record

        notification = verified(values[0])
        assert notification.recipient == revenues and notification.agreement_id == AGREEMENT
        assert {e.source_council for e in notification.events} == {FROM, TO}
        assert notification.method == "exact" and notification.score == 1.0
        assert {p.recipient for p in notification.sealed} == {revenues}
        # The other recipient is told on its own topic, under its own id, with its own payloads.
        others = [
            verified(v) for v in _wait_for(kafka_bootstrap, notify_topic(prefix, electoral), 1)
        ]
        assert [n.recipient for n in others] == [electoral]
        assert others[0].notification_id != notification.notification_id
        assert {p.recipient for p in others[0].sealed} <= {electoral}
        assert not read_topic(kafka_bootstrap, notify_topic(prefix, f"{FROM}.revenues"))

        subscriber = subprocess.run(
            [str(REPO / ".venv/bin/fedbroker"), "subscribe", "--bootstrap", kafka_bootstrap,
             "--agreement", AGREEMENT, "--service", f"{TO}.revenues",
             "--key", str(federation.keys[f"{TO}.revenues"].sealing.private),
             "--directory", str(federation.directory_path),
             "--trust-anchor", str(federation.trust_anchor), "--prefix", prefix,
             "--max-messages", "1", "--timeout", "20"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert subscriber.returncode == 0, subscriber.stderr
        line = json.loads(subscriber.stdout.splitlines()[0])
        opened = {k: v for fields in line["fields"].values() for k, v in fields.items()}
        assert opened["given_name"] == "Alice" and opened["postcode"] == "M32 0AA"
        assert "nino" not in opened and "nhs_number" not in opened

        audit = [codec.decode_as(v, AuditRecord)
                 for v in _wait_for(kafka_bootstrap, f"{prefix}.audit", 2)]  # fmt: skip
        decisions = [a for a in audit if a.kind is AuditKind.DECISION]
        told = {revenues: notification.notification_id, electoral: others[0].notification_id}
        assert {a.recipients[0] for a in decisions} >= set(told)
        assert all(a.notification_id == told[a.recipients[0]] for a in decisions
                   if a.outcome is not None and a.outcome.value == "allowed")  # fmt: skip

        # A subject-access request at a council: tokens computed from the person's details.
        sar = subprocess.run(
            [str(REPO / ".venv/bin/fedbroker"), "audit", "subject", "--bootstrap",
             kafka_bootstrap, "--topic", f"{prefix}.audit", "--linkage-keys",
             str(origin.linkage_keys), "--dob-format", "%d/%m/%Y"],
            input=json.dumps({"given_name": "Alice", "family_name": "Example-Jones",
                              "date_of_birth": "14/02/1984", "nhs_number": "9434765919"}),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert sar.returncode == 0, sar.stderr
        assert f"{len(decisions)} decision(s) concerned this person" in sar.stdout
        assert "Alice" not in sar.stdout and "9434765919" not in sar.stdout

        # On the origin's topic: an altered body under the origin's signature, an event
        # signed by the destination, a notification presented as an event, a replay
        # and a truncated message.
        original = read_topic(kafka_bootstrap, origin.events_topic)[0]
        envelope = codec.decode_as(original[1], SignedEnvelope)
        event = codec.decode_body(envelope.writer_fingerprint, envelope.body, CitizenEvent)
        altered = codec.encode_body(replace(event, event_id="f" * 32))[1]
        by_other = seal_envelope(SignatureDomain.EVENT, replace(event, event_id="e" * 32),
                                 federation.signing_key(TO), TO, codec=codec)  # fmt: skip
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        for value in (codec.encode(replace(envelope, body=altered)), by_other, values[0],
                      original[1], original[1][:40]):  # fmt: skip
            producer.send(origin.events_topic, key=original[0], value=value)
        producer.flush()
        producer.close()
        rejected = [codec.decode_as(v, RejectedRecord)
                    for v in _wait_for(kafka_bootstrap, f"{prefix}.rejected", 5)]  # fmt: skip
        assert sorted(r.reason for r in rejected) == [
            "bad-signature", "duplicate", "truncated", "wrong-council", "wrong-domain"
        ]  # fmt: skip
        after = _wait_for(kafka_bootstrap, notify_topic(prefix, revenues), 2, timeout=10)
        ids = {verified(v).notification_id for v in after}
        assert ids == {notification.notification_id}, "a replay is recognisable by its id"

        # The subscriber library a service embeds, on the same run (this was a second
        # run of the same move in tests/subscriber/test_broker_e2e.py): once, with only
        # the fields the agreement grants, and the broker's message again not twice.
        topic, received = notify_topic(prefix, revenues), list[OpenedNotification]()
        library = Subscriber(
            SubscriberSettings(
                bootstrap=kafka_bootstrap, service=revenues, topic=topic,
                group=topic_factory("group"), store=tmp_path / "lib" / "delivered.sqlite",
                dead_letters=tmp_path / "lib" / "dead-letters.jsonl", poll_timeout=0.2,
            ),
            directory=directory, key=federation.sealing_key(revenues),
            sink=CallbackSink(received.append),
        )  # fmt: skip
        try:
            library.run(max_delivered=1, idle_timeout=120)
            assert len(received) == 1, (tmp_path / "worker.log").read_text()[-3000:]
            opened = {k: v for fields in received[0].fields.values() for k, v in fields.items()}
            assert opened["given_name"] == "Alice" and opened["postcode"] == "M32 0AA"
            assert "nhs_number" not in opened and "nino" not in opened
            assert {e.source_council for e in received[0].events} == {FROM, TO}
            again = [(k.decode(), v) for k, v in read_topic(kafka_bootstrap, topic)]
            publish(kafka_bootstrap, topic, again)
            library.run(idle_timeout=5)
            assert len(received) == 1 and library.metrics.tally["duplicate"] >= 1
            assert library.dead_letters.read() == []
        finally:
            library.close()
    finally:
        stop_worker(worker)


def test_cli_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "fedbroker", "--help"], capture_output=True,
                            text=True, check=True)  # fmt: skip
    for command in ("audit", "broker", "connector", "directory", "kafka", "keys", "schemas",
                    "subscribe", "synth"):  # fmt: skip
        assert command in result.stdout


@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)
def test_demo_runs_end_to_end_and_finds_no_clear_values(quickstart_demo):
    """On the session's one demo run (``tests/demo_run.py``)."""
    out = quickstart_demo.output
    assert quickstart_demo.returncode == 0, out[-3000:]
    assert re.search(r"audit chain: [1-9]\d* records, verified", out), out[-3000:]
    for agreement in ("gm-cross-boundary-move", "gm-single-person-discount-duplicate",
                      "gm-multiple-disadvantage"):  # fmt: skip
        assert re.search(rf"decided {agreement} \w+ \[", out), f"{agreement} never fired"
    assert re.search(r"privacy scan of \d+ topics \S+: 0 clear values found", out)
    # Every secret the demo wrote was created readable by its owner only.
    home = quickstart_demo.home
    secrets = [*home.rglob("*.key"), *home.rglob("linkage-keys.json")]
    assert any(p.name == "linkage-keys.json" for p in secrets)
    assert {p.name: p.stat().st_mode & 0o777 for p in secrets} == {p.name: 0o600 for p in secrets}
