"""The audit checkpoint age: how long a chain's newest records have waited for a signature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import generate_latest

from broker._checkpoint_age import CHECKPOINT_AGE_METRIC, CheckpointAge, unsigned_age
from broker._metrics import BrokerMetrics
from consent import AuditChain, ChainHead

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_records_after_the_last_checkpoint_age_from_it_and_a_signed_chain_reads_zero():
    head = ChainHead("fed.broker/0", count=12, last_checkpoint_count=10, last_checkpoint_at=T0)
    assert unsigned_age(head, T0 + timedelta(seconds=95)) == 95
    signed = ChainHead("fed.broker/0", count=12, last_checkpoint_count=12, last_checkpoint_at=T0)
    assert unsigned_age(signed, T0 + timedelta(hours=5)) == 0  # idle, not stale
    assert unsigned_age(ChainHead("fed.broker/1"), T0) == 0
    assert unsigned_age(head, T0 - timedelta(seconds=3)) == 0  # a clock step back


def test_a_real_chain_ages_until_its_checkpoint_then_reads_zero():
    key = Ed25519PrivateKey.generate()
    chain = AuditChain(ChainHead("fed.broker/3"), key, checkpoint_interval=timedelta(minutes=1))
    chain.start(T0)
    clock = [T0]
    age = CheckpointAge(clock=lambda: clock[0])
    age.track(lambda: {"fed.broker/3": chain.head})
    chain.append_erasure("erasure-1", ("tok",), T0 + timedelta(seconds=5))
    clock[0] = T0 + timedelta(seconds=700)
    assert _sample(age) == {"fed.broker/3": 700.0}
    chain.checkpoint(clock[0])
    assert _sample(age) == {"fed.broker/3": 0.0}


def test_the_broker_exports_it_by_chain_from_what_the_app_tracks():
    metrics = BrokerMetrics()
    text = generate_latest(metrics.registry).decode()
    assert f"# TYPE {CHECKPOINT_AGE_METRIC} gauge" in text  # registered before any chain
    metrics.checkpoint_age.track(
        lambda: {"fed.broker/0": ChainHead("fed.broker/0", 3, last_checkpoint_at=T0)}
    )
    text = generate_latest(metrics.registry).decode()
    assert f'{CHECKPOINT_AGE_METRIC}{{chain="fed.broker/0"}}' in text


def _sample(collector: CheckpointAge) -> dict[str, float]:
    return {s.labels["chain"]: s.value for f in collector.collect() for s in f.samples}
