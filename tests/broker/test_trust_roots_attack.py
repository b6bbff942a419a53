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
