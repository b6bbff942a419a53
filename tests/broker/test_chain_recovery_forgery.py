"""A restarted worker continues only the records it wrote itself, never a forger's (attack round 2).

Whoever can write ``fed.audit`` (the threat ``audit verify`` is built for) can
append a record while the broker is down: well linked (SHA-256 needs no key),
claiming a disclosure that never happened. A worker that rebuilt its head from
the topic's last record used to continue from it, and its next signed
checkpoint vouched for the forgery: ``audit verify`` then passed it. A junk
record became the head too, and every later genuine record failed verification
behind it; a forged decision id was remembered, so the genuine decision of that
id would never have been audited. The broker signs every link now, and
recovery continues from the last record that verifies under its own key.
"""

from __future__ import annotations

from dataclasses import replace

from broker._chain_recovery import recover_chain
from consent import audit_record_hash, verify_audit
from schemas import AuditKind, Outcome
from tests.broker.test_effects_once import CHAIN, INTERVAL, NOW, WINDOW, _first_run, _once, _step
from tests.broker.test_partition import federation

__all__ = ["federation"]


def _forged_after(last, **changes):
    """A decision record linked after ``last``, hashed as anyone can, signed by no one."""
    record = replace(last, kind=AuditKind.DECISION, seq=last.seq + 1, prev_hash=last.record_hash,
                     decision_id="forged", outcome=Outcome.ALLOWED, reasons=("allowed",),
                     recipients=("gmca.someone-else",), record_hash=b"", signature=b"")  # fmt: skip
    record = replace(record, **changes)
    return replace(record, record_hash=audit_record_hash(record))


def test_a_forged_record_appended_while_the_broker_was_down_is_never_vouched_for(federation):
    directory, core, token, sightings, state, topic, _ = _first_run(federation)
    forged = _forged_after(topic[-1])
    restarted = _once(federation, None, [*topic, forged])
    assert restarted.head.head_hash == topic[-1].record_hash, "continued from its own record"
    _, fresh = _step(core, token, sightings[2], state, restarted, 2)
    closing = restarted.checkpoint(NOW + INTERVAL, reason="shutdown")
    report = verify_audit([*topic, forged, *fresh.audit, closing],
                          directory.member("broker").signing_key)  # fmt: skip
    assert not report.ok, "the forged record is not laundered by the broker's checkpoint"
    # and the officer is pointed at the forgery, not at the genuine record after it
    assert [(p.kind, p.position) for p in report.problems] == [("altered", len(topic))]
    assert "not signed by the broker key" in str(report.problems[0])


def test_a_junk_record_does_not_become_the_head(federation):
    _, _, _, _, _, topic, _ = _first_run(federation)
    junk = replace(_forged_after(topic[-1]), record_hash=b"\x01" * 32)
    garbled = replace(topic[-1], seq=topic[-1].seq + 1, prev_hash=b"\x02" * 32)
    garbled = replace(garbled, record_hash=audit_record_hash(garbled))
    for bad in (junk, garbled):
        restarted = _once(federation, None, [*topic, bad])
        assert restarted.head.count == topic[-1].seq + 1
        assert restarted.head.head_hash == topic[-1].record_hash


def test_a_forged_decision_id_is_not_remembered(federation):
    """Else the genuine decision of that id would be taken for a replay and never audited."""
    _, _, _, _, _, topic, _ = _first_run(federation)
    forged = _forged_after(topic[-1], decision_id="dec-to-hide")
    key = federation.load(NOW).member("broker").signing_key
    recovered = recover_chain(CHAIN, None, [*topic, forged], now=NOW, window=WINDOW, key=key)
    assert "dec-to-hide" not in recovered.recent
    genuine = {r.decision_id for r in topic if r.kind is AuditKind.DECISION}
    assert set(recovered.recent) == genuine


def test_records_vouched_for_by_a_checkpoint_are_recovered_without_their_own_signatures(
    federation,
):
    """A checkpoint vouches for its chain back through the hashes: one check, not one each."""
    _, _, _, _, _, topic, _ = _first_run(federation)
    chain = _once(federation, None, topic)
    checkpoint = chain.checkpoint(NOW + INTERVAL, reason="idle")
    unsigned = [replace(r, signature=b"") for r in topic]
    key = federation.load(NOW).member("broker").signing_key
    recovered = recover_chain(CHAIN, None, [*unsigned, checkpoint], now=NOW, window=WINDOW,
                              key=key)  # fmt: skip
    assert recovered.head.head_hash == checkpoint.record_hash
    assert set(recovered.recent) == {r.decision_id for r in topic if r.kind is AuditKind.DECISION}


def test_a_genuine_checkpoint_replayed_at_the_end_does_not_move_the_head_back(federation):
    """Attack: copy one of the broker's own checkpoints to the end of its chain's partition.

    No key is needed for a copy, and it verifies. Recovery took the last checkpoint
    *read* as the chain's frontier, so the restarted worker continued from the old
    position: the records after it were skipped as not linking, their decision ids
    forgotten, and the next append forked the chain at a sequence number already used.
    """
    directory, core, token, sightings, state, topic, _ = _first_run(federation)
    chain = _once(federation, None, topic)
    older = chain.checkpoint(NOW + INTERVAL, reason="idle")
    _, fresh = _step(core, token, sightings[2], state, chain, 2)
    assert fresh.audit
    key = directory.member("broker").signing_key
    for tail in ([], [chain.checkpoint(NOW + 2 * INTERVAL, reason="idle")]):
        genuine = [*topic, older, *fresh.audit, *tail]
        recovered = recover_chain(CHAIN, None, [*genuine, older], now=NOW, window=WINDOW, key=key)
        assert recovered.head.count == genuine[-1].seq + 1, "the head moved back to the copy"
        assert recovered.head.head_hash == genuine[-1].record_hash
        decided = {r.decision_id for r in genuine if r.kind is AuditKind.DECISION}
        assert set(recovered.recent) == decided


def test_a_replayed_old_record_read_first_does_not_become_the_head(federation):
    """Attack: no checkpoint in the tail read, and a copy of an old record read first.

    The tail read starts inside the chain (at ``now - window``), so its first
    genuine record links to one not read. With no checkpoint to start from, the
    first record read that the broker signed was taken as the start: a copy of an
    old one placed before the tail made the genuine records after it look
    unlinked, they were skipped, and the head moved back to the copy (the next
    append would fork the chain).
    """
    directory, core, token, sightings, state, topic, _ = _first_run(federation)
    chain = _once(federation, None, topic)
    _, fresh = _step(core, token, sightings[2], state, chain, 2)
    records = [*topic, *fresh.audit]
    assert len(records) >= 3 and all(r.kind is AuditKind.DECISION for r in records)
    key = directory.member("broker").signing_key
    tail = [records[0], *records[2:]]  # records[1] predates the window; records[0] is a copy
    recovered = recover_chain(CHAIN, None, tail, now=NOW, window=WINDOW, key=key)
    assert recovered.head.count == records[-1].seq + 1, "the head moved back to the copy"
    assert recovered.head.head_hash == records[-1].record_hash
    assert {r.decision_id for r in records[2:]} <= set(recovered.recent)
