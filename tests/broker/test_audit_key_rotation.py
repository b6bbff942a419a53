"""The audit trail across a rotation of the broker's signing key.

The broker's key is replaced (it was retired, or its host rebuilt). Workers
named their chains by partition alone, so a worker restarted under the new key
continued the old key's chain from its stored head: one chain signed under two
keys, which ``audit verify`` failed under either, for ever. Chains are named by
key as well now, so a new key starts new chains, and ``audit verify`` given the
previous key (``--previous-broker-key``) verifies each chain under its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from broker._chain_recovery import OnceChain, recover_chain
from broker._parts import Parts
from consent import ChainHead, Decision, Reason, generate_signing_key, verify_audit
from schemas import Outcome

T = datetime(2026, 9, 10, tzinfo=UTC)
WINDOW = timedelta(days=30)
INTERVAL = timedelta(minutes=1)


def _chain_id(key, partition: int = 0) -> str:  # type: ignore[no-untyped-def]
    """What a worker under ``key`` names the chain of ``partition``."""
    worker = SimpleNamespace(settings=SimpleNamespace(topic_prefix="fed"), key=key)
    return Parts.chain_id(worker, partition)  # type: ignore[arg-type]


def _decision(n: int) -> Decision:
    return Decision(f"dec-{n}", "ag", "svc", Outcome.ALLOWED, (Reason.ALLOWED,), (f"e{n}",),
                    ("nhs:1:aa",), T + timedelta(seconds=n))  # fmt: skip


def _run(key, heads: dict[str, ChainHead], topic: list, decisions: range) -> list:  # type: ignore[no-untyped-def]
    """A worker under ``key``: recovers its chain, decides, stops with a checkpoint."""
    chain_id = _chain_id(key)
    recovered = recover_chain(chain_id, heads.get(chain_id), topic, now=T, window=WINDOW,
                              key=key.public_key())  # fmt: skip
    chain = OnceChain(recovered, key, window=WINDOW, checkpoint_interval=INTERVAL)
    chain.start(T)
    written = [r for n in decisions for r in chain.append(_decision(n))]
    written.append(chain.checkpoint(T + timedelta(minutes=5), reason="shutdown"))
    heads[chain_id] = chain.head
    return written


def test_a_new_broker_key_starts_new_chains_that_verify_beside_the_old_ones():
    old, new = generate_signing_key(), generate_signing_key()
    heads: dict[str, ChainHead] = {}
    topic = _run(old, heads, [], range(3))
    topic += _run(new, heads, topic, range(3, 6))
    report = verify_audit(topic, new.public_key(), previous_keys=[old.public_key()])
    assert report.ok, [str(p) for p in report.problems]
    assert len(report.chains) == 2
    # without the previous key, the old key's chain is not the broker's
    assert {p.chain for p in verify_audit(topic, new.public_key()).problems} == {_chain_id(old)}


def test_a_chain_continued_under_another_key_fails_whichever_keys_are_given():
    old, new = generate_signing_key(), generate_signing_key()
    chain = OnceChain(recover_chain("c", None, [], now=T, window=WINDOW, key=old.public_key()),
                      old, window=WINDOW, checkpoint_interval=INTERVAL)  # fmt: skip
    topic = [*chain.append(_decision(1)), chain.checkpoint(T, reason="shutdown")]
    resumed = OnceChain(recover_chain("c", chain.head, topic, now=T, window=WINDOW,
                                      key=new.public_key()),
                        new, window=WINDOW, checkpoint_interval=INTERVAL)  # fmt: skip
    topic += [*resumed.append(_decision(2)), resumed.checkpoint(T, reason="shutdown")]
    for keys in ((new, [old]), (old, [new])):
        report = verify_audit(topic, keys[0].public_key(),
                              previous_keys=[k.public_key() for k in keys[1]])  # fmt: skip
        assert not report.ok
