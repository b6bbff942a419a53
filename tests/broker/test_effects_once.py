"""Effects once, the audit half (issue 15 item 5): a replayed decision is not appended again.

A worker killed after its audit records reached ``fed.audit`` and before it
committed its input decides the re-delivered input again. These tests play
that crash without Kafka: the records "on the topic" are what the first run
published, the table's head is whatever it had when the worker died, and the
restarted worker's chain is rebuilt by ``recover_chain`` from the topic.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from broker import Matcher, Sighting
from broker._chain_recovery import OnceChain, recover_chain
from broker._partition import PartitionCore, retention_for
from consent import AuditChain, ChainHead, ConsentLedger, verify_audit
from consent._audit_verify import ProblemKind
from schemas import AuditKind, ConsentRecord, ConsentState, Outcome
from tests.broker.test_partition import FROM, NOW, TO, _consent, _event, federation  # noqa: F401

CHAIN = "fed.broker/0"
WINDOW = timedelta(days=2)
INTERVAL = timedelta(minutes=1)


def _setup(federation):
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    events = [
        _event(federation, FROM, "C", "2026-09-01", "a-1"),
        _event(federation, TO, "M", "2026-09-04", "b-7"),
        _event(federation, TO, "M", "2026-09-06", "b-8"),
    ]
    token = min(t.key() for t in events[0].tokens)
    sightings = [Sighting.from_event(e, retention=retention_for(directory, e)) for e in events]
    return directory, core, token, sightings


def _key(federation):
    return federation.signing_key("broker").public_key()


def _once(federation, stored: ChainHead | None, topic, *, now=NOW) -> OnceChain:
    recovered = recover_chain(CHAIN, stored, topic, now=now, window=WINDOW, key=_key(federation))
    chain = OnceChain(
        recovered, federation.signing_key("broker"), window=WINDOW, checkpoint_interval=INTERVAL
    )
    chain.start(now)
    return chain


def _step(core, token, sighting, state, chain, offset: int):
    return core.on_sighting(
        token, sighting, state, None, chain, NOW,
        origin=f"fed.events/0/{offset}", seen_until=NOW + WINDOW,
    )  # fmt: skip


def _first_run(federation):
    """Two events decided and published; the table kept only the head before the second."""
    directory, core, token, sightings = _setup(federation)
    chain = _once(federation, None, [])
    topic, state = [], None
    lagging = chain.head
    for offset, sighting in enumerate(sightings[:2]):
        lagging = chain.head
        state, effects = _step(core, token, sighting, state, chain, offset)
        topic.extend(effects.audit)
    assert any(r.kind is AuditKind.DECISION for r in topic)
    return directory, core, token, sightings, state, topic, lagging


def test_a_redelivered_event_after_a_crash_appends_nothing_new(federation):
    directory, core, token, sightings, state, topic, lagging = _first_run(federation)
    restarted = _once(federation, lagging, topic)
    _, replay = _step(core, token, sightings[1], state, restarted, 1)
    assert replay.notifications, "the notifications are re-sent under their ids, as before"
    assert replay.audit == []
    assert replay.decisions and restarted.replayed == len(replay.decisions)
    key = directory.member("broker").signing_key
    assert verify_audit([*topic, *replay.audit], key).ok


def test_the_old_chain_appends_the_replayed_decision_twice_and_fails_verification(federation):
    """What the fix replaces: the head from the table, no memory of decisions."""
    directory, core, token, sightings, state, topic, lagging = _first_run(federation)
    old = AuditChain(ChainHead.after(topic[-1]), federation.signing_key("broker"))
    _, replay = _step(core, token, sightings[1], state, old, 1)
    report = verify_audit([*topic, *replay.audit], directory.member("broker").signing_key)
    assert not report.ok
    assert ProblemKind.REPEATED_DECISION in {p.kind for p in report.problems}


def test_the_head_resumes_from_the_topics_last_record_when_the_table_lags(federation):
    directory, core, token, sightings, state, topic, lagging = _first_run(federation)
    assert lagging.count < topic[-1].seq + 1
    restarted = _once(federation, lagging, topic)
    assert restarted.head.count == topic[-1].seq + 1
    assert restarted.head.head_hash == topic[-1].record_hash
    _, fresh = _step(core, token, sightings[2], state, restarted, 2)
    assert fresh.audit and fresh.audit[0].seq == topic[-1].seq + 1
    all_records = [*topic, *fresh.audit]
    assert verify_audit(all_records, directory.member("broker").signing_key).ok
    decided = [r.decision_id for r in all_records if r.kind is not AuditKind.CHECKPOINT]
    assert len(decided) == len(set(decided))


def test_a_table_ahead_of_the_topic_yields_to_the_topic(federation):
    """The head was stored but the records never reached the topic: no gap is left."""
    directory, core, token, sightings, state, topic, _ = _first_run(federation)
    ahead = ChainHead(CHAIN, count=topic[-1].seq + 9, head_hash=b"\x01" * 32)
    restarted = _once(federation, ahead, topic)
    assert restarted.head.count == topic[-1].seq + 1
    _, fresh = _step(core, token, sightings[2], state, restarted, 2)
    assert verify_audit([*topic, *fresh.audit], directory.member("broker").signing_key).ok


def test_other_chains_records_are_ignored_and_an_empty_tail_keeps_the_stored_head(federation):
    _, _, _, _, _, topic, _ = _first_run(federation)
    stored = ChainHead(CHAIN, count=3, head_hash=b"\x02" * 32)
    recovered = recover_chain(CHAIN, stored, [], now=NOW, window=WINDOW, key=_key(federation))
    assert recovered.head == stored and recovered.recent == {}
    other = recover_chain("fed.broker/1", None, topic, now=NOW, window=WINDOW, key=_key(federation))
    assert other.head == ChainHead("fed.broker/1") and other.recent == {}


def test_a_checkpoint_in_the_tail_is_where_the_next_one_counts_from(federation):
    _, _, _, _, _, topic, _ = _first_run(federation)
    chain = _once(federation, None, topic)
    checkpoint = chain.checkpoint(NOW + INTERVAL, reason="idle")
    recovered = recover_chain(
        CHAIN, None, [*topic, checkpoint], now=NOW, window=WINDOW, key=_key(federation)
    )
    assert recovered.head.last_checkpoint_count == checkpoint.seq + 1
    assert recovered.head.last_checkpoint_at == checkpoint.decided_at


def test_decision_ids_are_remembered_only_within_the_window(federation):
    directory, core, token, sightings, state, topic, _ = _first_run(federation)
    decided = {r.decision_id for r in topic if r.kind is AuditKind.DECISION}
    assert (
        set(recover_chain(CHAIN, None, topic, now=NOW, window=WINDOW, key=_key(federation)).recent)
        == decided
    )
    later = NOW + WINDOW + timedelta(seconds=1)
    assert (
        recover_chain(CHAIN, None, topic, now=later, window=WINDOW, key=_key(federation)).recent
        == {}
    )
    chain = _once(federation, None, topic)
    assert chain.recent() == frozenset(decided)
    chain.append_erasure("era-x", ("t",), later)
    assert chain.recent() == {"era-x"}, "ids past their window are dropped as time moves"


def test_a_repeated_erasure_is_audited_once(federation):
    directory, core, token, sightings, state, topic, _ = _first_run(federation)
    chain = _once(federation, None, topic)
    record = _consent(federation, ConsentState.ERASURE_REQUESTED, "*")
    first = core.on_consent(token, record, state, None, chain, NOW)
    assert [r.kind for r in first.audit] == [AuditKind.ERASURE]
    restarted = _once(federation, None, [*topic, *first.audit])
    again = core.on_consent(token, record, state, None, restarted, NOW)
    assert again.audit == []
    key = directory.member("broker").signing_key
    assert verify_audit([*topic, *first.audit, *again.audit], key).ok


def test_another_councils_erasure_under_the_same_record_id_is_audited_too(federation):
    """Record ids are the councils' own: one council cannot pass for another's replay."""
    directory, core, token, sightings, state, topic, _ = _first_run(federation)
    chain = _once(federation, None, topic)
    record = _consent(federation, ConsentState.ERASURE_REQUESTED, "*")
    first = core.on_consent(token, record, state, None, chain, NOW)
    other = replace(record, council=TO)  # same record id, another council
    second = core.on_consent(token, other, state, None, chain, NOW)
    assert [r.kind for r in first.audit] == [AuditKind.ERASURE]
    assert [r.kind for r in second.audit] == [AuditKind.ERASURE]
    assert first.audit[0].decision_id != second.audit[0].decision_id


def test_a_redelivery_decided_after_a_later_grant_keeps_the_recorded_denial(federation):
    """Attack: crash after a denial is audited and a later grant is applied, before the commit.

    The consent table is recovered with the grant (its changelog was written), so the
    re-delivered event is decided again as allowed. The chain already holds the decision
    id as denied and appends nothing: a notification sent then would be a disclosure the
    audit trail records as denied, and the subject-access answer would say so. The run
    without the crash denies (the grant was read after the event), so the recorded denial
    stands and nothing is notified.
    """
    _, core, token, sightings = _setup(federation)
    tokens = _event(federation, FROM, "C", "2026-09-01", "r").tokens
    erased = ConsentRecord(
        "e" * 32, FROM, tokens, "*", ConsentState.ERASURE_REQUESTED,
        NOW - timedelta(days=2), NOW - timedelta(days=2), 1,
    )  # fmt: skip
    granted = replace(
        erased, record_id="f" * 32, state=ConsentState.GRANTED,
        recorded_at=NOW - timedelta(days=1), published_at=NOW - timedelta(days=1),
    )  # fmt: skip
    before = ConsentLedger.from_records([erased])
    after = before.apply(granted)
    chain = _once(federation, None, [])
    topic, state = [], None
    for offset, sighting in enumerate(sightings[:2]):
        state, effects = core.on_sighting(
            token, sighting, state, before, chain, NOW,
            origin=f"fed.events/0/{offset}", seen_until=NOW + WINDOW,
        )  # fmt: skip
        topic.extend(effects.audit)
    denied = [r for r in topic if r.kind is AuditKind.DECISION]
    assert denied and all(r.outcome is Outcome.DENIED for r in denied)
    restarted = _once(federation, None, topic)
    _, replay = core.on_sighting(
        token, sightings[1], state, after, restarted, NOW,
        origin="fed.events/0/1", seen_until=NOW + WINDOW,
    )  # fmt: skip
    assert replay.audit == []
    assert replay.notifications == [], "a disclosure the audit trail records as denied"
    assert all(outcome is Outcome.DENIED for _, outcome in replay.decisions)
