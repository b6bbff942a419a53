"""The broker's own key against the signed directory (pure tier: no Kafka is reached)."""

from __future__ import annotations

import pytest

from broker import BrokerError, BrokerSettings
from consent import build_dev_federation


def test_a_broker_started_with_a_key_the_directory_does_not_list_refuses_to_start(
    tmp_path, monkeypatch
):
    """A careless admin hands the broker a council's key (or its pre-rotation key): every
    notification and checkpoint it signed would be refused by every service and auditor,
    while the broker itself ran on. It must refuse at start, before reaching Kafka."""
    import broker.app

    def reached(*args, **kwargs):
        raise AssertionError("Kafka was reached before the broker's key was checked")

    monkeypatch.setattr(broker.app, "cluster_replication", reached)
    federation = build_dev_federation(tmp_path / "fed", councils=["E08000001"])
    settings = BrokerSettings(
        bootstrap="127.0.0.1:9",
        directory=federation.directory_path,
        trust_anchor=federation.trust_anchor,
        signing_key=federation.keys["E08000001"].signing.private,
        data_dir=tmp_path / "data",
        store="memory://",
    )
    with pytest.raises(BrokerError) as caught:
        broker.app.build_app(settings)
    assert caught.value.reason == "broker-key-mismatch"


def test_a_directory_that_rotates_the_broker_key_stops_a_worker_holding_the_old_one(
    tmp_path, caplog
):
    """The authority re-keys the broker (its key leaked): a running worker still holds the
    old key, and everything it signed from then on would be refused by every service. It
    stops deciding and says why, as past expiry; a restart needs the new key."""
    import yaml

    from broker._directory_watch import DirectoryWatch
    from consent import (
        SerialStore,
        generate_signing_key,
        load_private_key,
        public_key_b64,
        sign_directory,
    )
    from tests.broker.test_partition import NOW

    federation = build_dev_federation(tmp_path / "fed", councils=["E08000001"], now=NOW)
    held = load_private_key(federation.keys["broker"].signing.private)
    watch = DirectoryWatch.open(
        federation.directory_path,
        federation.trust_anchor,
        SerialStore(tmp_path / "serials.json"),
        NOW,
        signing_key=held.public_key(),
    )
    assert watch.usable(NOW)
    document = yaml.safe_load(federation.document_path.read_text())
    document["serial"] = 2
    for member in document["members"]:
        if member["kind"] == "broker":
            member["signing_key"] = "ed25519:" + public_key_b64(generate_signing_key())
    authority = load_private_key(federation.keys[federation.authority].signing.private)
    federation.directory_path.write_bytes(sign_directory(yaml.safe_dump(document), authority))
    reloaded = watch.poll(NOW)
    assert reloaded is not None and reloaded.restart_needed
    assert not watch.usable(NOW)
    assert "broker key" in watch.why and "not deciding" in watch.why
    assert "not deciding" in caplog.text
