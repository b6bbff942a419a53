"""The broker's own key against the signed directory (pure tier: no Kafka is reached)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker import BrokerError, BrokerSettings
from consent import build_dev_federation


def test_a_broker_started_with_a_key_the_directory_does_not_list_refuses_to_start(
    tmp_path, monkeypatch
):
    """A careless admin hands the broker a council's key (or its pre-rotation key): every
    notification and checkpoint it signed would be refused by every service and auditor,
    while the broker itself ran on. It must refuse at start, before reaching Kafka."""
    refused = _refused_at_start(tmp_path, monkeypatch, signer="E08000001")
    assert refused.reason == "broker-key-mismatch"


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


def _resign(federation, serial: int, **changes) -> None:
    import yaml

    from consent import load_private_key, sign_directory

    document = yaml.safe_load(federation.document_path.read_text())
    document.update(serial=serial, **changes)
    authority = load_private_key(federation.keys[federation.authority].signing.private)
    federation.directory_path.write_bytes(sign_directory(yaml.safe_dump(document), authority))


def test_key_epoch_flags_narrow_the_directorys_epochs_and_never_revive_a_retired_one(tmp_path):
    """``broker run --key-epoch 1 --key-epoch 2`` was set during a rotation; the authority
    then retires epoch 1 (its linkage key leaked) in a signed directory. The flag must not
    keep the retired epoch alive: retiring an epoch is a signed act, not a worker's flag."""
    from broker._directory_watch import DirectoryWatch
    from broker._parts import Parts
    from broker._timers import Clock
    from consent import SerialStore
    from tests.broker.test_partition import NOW

    federation = build_dev_federation(tmp_path / "fed", councils=["E08000001"], now=NOW)
    _resign(federation, 2, key_epoch=2, accepted_epochs=[1, 2])
    settings = BrokerSettings(
        bootstrap="127.0.0.1:9",
        directory=federation.directory_path,
        trust_anchor=federation.trust_anchor,
        signing_key=federation.keys["broker"].signing.private,
        accepted_epochs=frozenset({1, 2}),
    )
    watch = DirectoryWatch.open(
        federation.directory_path, federation.trust_anchor, SerialStore(tmp_path / "s"), NOW
    )
    parts = Parts(
        app=None, settings=settings, watch=watch, core=None, key=None, codec=None,
        metrics=None, clock=Clock(), topics=None, states=None, consent_table={},
        heads=None, histograms=None, attempts=None, policy=settings.policy(),
    )  # fmt: skip
    assert parts.admission().accepted_epochs == frozenset({1, 2})
    _resign(federation, 3, key_epoch=2, accepted_epochs=[2])
    assert watch.poll(NOW) is not None
    assert parts.admission().accepted_epochs == frozenset({2})


def test_a_key_epoch_flag_the_directory_does_not_accept_refuses_to_start(tmp_path, monkeypatch):
    refused = _refused_at_start(
        tmp_path, monkeypatch, signer="broker", accepted_epochs=frozenset({1, 7})
    )
    assert refused.reason == "key-epoch-not-in-directory"


def _refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, signer: str, **settings: Any
) -> BrokerError:
    """What ``build_app`` refuses with, signing as ``signer``; Kafka is never reached."""
    import broker.app

    def reached(*args: object, **kwargs: object) -> None:
        raise AssertionError("Kafka was reached before the start-up checks")

    monkeypatch.setattr(broker.app, "cluster_replication", reached)
    federation = build_dev_federation(tmp_path / "fed", councils=["E08000001"])
    signing = federation.keys[signer].signing
    assert signing is not None
    with pytest.raises(BrokerError) as caught:
        broker.app.build_app(BrokerSettings(
            bootstrap="127.0.0.1:9", directory=federation.directory_path,
            trust_anchor=federation.trust_anchor, signing_key=signing.private,
            data_dir=tmp_path / "data", store="memory://", **settings,
        ))  # fmt: skip
    return caught.value
