"""The directory a running subscriber trusts: a revoked broker key bites without a restart,
and an expired directory stops hand-overs instead of vouching for what arrives."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from consent import DirectoryWatcher, generate_signing_key, public_key_b64, sign_directory
from subscriber import OpenedNotification
from tests.subscriber.conftest import publish, wait_for
from tests.subscriber.factory import notification_bytes

pytestmark = pytest.mark.kafka


def _write(federation, path: Path, *, serial: int, broker_key=None, expires_at=None) -> None:
    doc = yaml.safe_load(federation.document_path.read_text())
    doc["serial"] = serial
    if expires_at is not None:
        doc["expires_at"] = expires_at.isoformat()
    if broker_key is not None:
        broker = next(m for m in doc["members"] if m["kind"] == "broker")
        broker["signing_key"] = "ed25519:" + public_key_b64(broker_key)
    text = yaml.safe_dump(doc, sort_keys=False)
    path.write_bytes(sign_directory(text, federation.signing_key(federation.authority)))


def test_a_broker_key_revoked_while_the_subscriber_runs_is_refused_without_a_restart(
    federation, kafka_bootstrap, notify_topic, subscriber_factory, tmp_path
):
    """Attack round 5: the subscriber verified with the directory it started with, for
    as long as it ran. After the broker's key was stolen and replaced in a new directory,
    a subscriber that had run for weeks still took notifications forged with the stolen
    key (the broker, by contrast, reloads its directory). It now follows a
    ``DirectoryWatcher`` as the broker does."""
    path = tmp_path / "directory.signed"
    _write(federation, path, serial=1)
    watcher = DirectoryWatcher(path, trust_anchor=federation.trust_anchor, serial_store=None,
                               now=datetime.now(UTC))  # fmt: skip
    received: list[OpenedNotification] = []
    subscriber = subscriber_factory(notify_topic, received=received, directory=watcher)
    before = notification_bytes(federation, 1)
    publish(kafka_bootstrap, notify_topic, [before])
    subscriber.run(max_delivered=1, idle_timeout=60)

    stolen, rotated = federation.signing_key(federation.broker), generate_signing_key()
    _write(federation, path, serial=2, broker_key=rotated)
    forged = notification_bytes(federation, 2, signer=stolen)
    after = notification_bytes(federation, 3, signer=rotated)
    publish(kafka_bootstrap, notify_topic, [forged, after])
    subscriber.run(max_delivered=2, idle_timeout=60)

    assert [n.notification_id for n in received] == [before[0], after[0]]
    assert [d.reason for d in subscriber.dead_letters.read()] == ["signature-invalid"]


def test_past_its_directorys_expiry_the_subscriber_hands_nothing_over_until_a_valid_one(
    federation, kafka_bootstrap, notify_topic, subscriber_factory, tmp_path
):
    """Attack round 5: a subscriber went on verifying against an expired directory (one
    whose revocations it could no longer trust to be current) as long as it ran. It
    now waits, losing nothing, until a valid directory is in place."""
    path = tmp_path / "directory.signed"
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    _write(federation, path, serial=1, expires_at=expires_at)
    watcher = DirectoryWatcher(path, trust_anchor=federation.trust_anchor, serial_store=None,
                               now=datetime.now(UTC))  # fmt: skip
    received: list[OpenedNotification] = []
    subscriber = subscriber_factory(notify_topic, received=received, directory=watcher)
    wait_for(lambda: datetime.now(UTC) > expires_at, what="the directory to expire")
    sent = notification_bytes(federation, 1)
    publish(kafka_bootstrap, notify_topic, [sent])
    worker = threading.Thread(target=subscriber.run, kwargs={"max_delivered": 1})
    worker.start()
    try:
        left = subscriber.metrics.registry.get_sample_value  # set by the subscriber's check
        wait_for(lambda: (left("fedbroker_subscriber_directory_expires_in_seconds") or 0) < 0,
                 what="the subscriber to notice the expiry")  # fmt: skip
        assert received == []
        _write(federation, path, serial=2)  # the authority publishes a fresh one
        worker.join(timeout=60)
        assert not worker.is_alive()
    finally:
        subscriber.stop()
        worker.join()
    assert [n.notification_id for n in received] == [sent[0]]
    assert subscriber.dead_letters.read() == []
