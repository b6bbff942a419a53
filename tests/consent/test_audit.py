"""The audit chain: built, checkpointed, and every kind of tampering found."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import (
    AuditChain,
    AuditInvalid,
    ChainHead,
    Decision,
    ProblemKind,
    Reason,
    audit_record_hash,
    generate_signing_key,
    verify_audit,
)
from schemas import AuditKind, Outcome

T = datetime(2026, 6, 1, tzinfo=UTC)
KEY = generate_signing_key()
PUB = KEY.public_key()


def decision(n: int, at: datetime = T) -> Decision:
    return Decision(
        decision_id=f"dec-{n}",
        agreement_id="gm-multiple-disadvantage",
        recipient="gmca.supporting-families",
        outcome=Outcome.ALLOWED if n % 2 else Outcome.DENIED,
        reasons=(Reason.ALLOWED,) if n % 2 else (Reason.OBJECTED,),
        event_ids=(f"evt-{n}",),
        subject_tokens=(f"nhs:1:{n:064x}",),
        decided_at=at,
    )


def build(n: int, *, every: int = 4, chain: str = "p0", close: bool = True):
    audit = AuditChain(
        ChainHead(chain), KEY, checkpoint_every=every, checkpoint_interval=timedelta(days=1)
    )
    audit.start(T)
    records = []
    for i in range(n):
        records.extend(audit.append(decision(i)))
    if close:
        records.append(audit.checkpoint(T, reason="shutdown"))
    return records, audit


def kinds(report):
    return [(p.kind, p.seq) for p in report.problems]


def test_a_chain_links_checkpoints_and_verifies():
    records, audit = build(10)
    assert [r.seq for r in records] == list(range(len(records)))
    checkpoints = [r for r in records if r.kind is AuditKind.CHECKPOINT]
    assert [c.seq for c in checkpoints] == [4, 9, 12]  # after every 4 decisions, then shutdown
    assert checkpoints[-1].reasons == ("shutdown",)
    assert all(c.prev_hash == records[c.seq - 1].record_hash for c in checkpoints)
    report = verify_audit(records, PUB)
    assert report.ok, kinds(report)
    summary = report.chains["p0"]
    assert summary.verified == len(records) and summary.unanchored == 0
    assert audit.head.count == len(records)
    assert ChainHead.from_dict(audit.head.to_dict()) == audit.head
    assert ChainHead.after(records[-1]).count == audit.head.count
    # audit records hold tokens and references only
    assert records[0].subject_tokens[0].startswith("nhs:1:")


def test_interval_checkpoint_and_erasure_record():
    audit = AuditChain(
        ChainHead("p1"), KEY, checkpoint_every=100, checkpoint_interval=timedelta(minutes=1)
    )
    assert not audit.checkpoint_due(T)
    audit.start(T)
    assert len(audit.append(decision(1, T))) == 1
    erasure = audit.append_erasure("era-1", ("nhs:1:ab",), T)
    assert erasure.kind is AuditKind.ERASURE
    out = audit.append(decision(2, T + timedelta(minutes=2)))
    assert [r.kind for r in out] == [AuditKind.DECISION, AuditKind.CHECKPOINT]
    assert verify_audit([*([]), *out], PUB).problems  # missing the start
    with pytest.raises(AuditInvalid):
        AuditChain(ChainHead("x"), KEY, checkpoint_every=0)
    with pytest.raises(AuditInvalid):
        ChainHead.from_dict({"chain": "x"})


def test_altered_record_is_found():
    records, _ = build(6)
    records[3] = dataclasses.replace(records[3], outcome=Outcome.DENIED, reasons=("objected",))
    assert kinds(verify_audit(records, PUB))[0] == (ProblemKind.ALTERED, 3)


def test_altered_record_with_recomputed_hash_breaks_the_next_link():
    records, _ = build(6)
    forged = dataclasses.replace(records[2], recipients=("someone-else",))
    records[2] = dataclasses.replace(forged, record_hash=audit_record_hash(forged))
    assert kinds(verify_audit(records, PUB))[0] == (ProblemKind.ALTERED, 2)


def test_missing_record_is_found():
    records, _ = build(6)
    del records[2]
    report = verify_audit(records, PUB)
    assert kinds(report) == [(ProblemKind.MISSING, 2)]
    assert "2 absent" in str(report.problems[0])
    records, _ = build(6)
    assert kinds(verify_audit(records[3:], PUB)) == [(ProblemKind.MISSING, 0)]


def test_duplicated_record_is_found():
    records, _ = build(6)
    records.insert(4, records[3])
    assert kinds(verify_audit(records, PUB)) == [(ProblemKind.DUPLICATED, 3)]


def test_reordered_records_are_found():
    records, _ = build(6)
    records[2], records[3] = records[3], records[2]
    assert kinds(verify_audit(records, PUB)) == [(ProblemKind.REORDERED, 3)]


def test_forged_checkpoint_is_found():
    records, _ = build(6)
    other = generate_signing_key()
    from consent import audit_bytes, sign

    records[4] = dataclasses.replace(records[4], signature=sign(other, audit_bytes(records[4])))
    assert kinds(verify_audit(records, PUB)) == [(ProblemKind.BAD_CHECKPOINT, 4)]


def test_truncated_tail_is_found_against_an_earlier_checkpoint():
    records, _ = build(10)
    anchor = records[-1]  # the auditor kept the shutdown checkpoint last time
    assert verify_audit(records, PUB, anchors=[anchor]).ok
    cut = records[:9]  # everything after the second checkpoint is cut
    report = verify_audit(cut, PUB, anchors=[anchor])
    assert kinds(report) == [(ProblemKind.TRUNCATED, 9)]
    assert "tail cut" in str(report.problems[0])
    # without an anchor the cut chain is consistent, but its unprotected tail is reported
    records2, _ = build(5, close=False)
    summary = verify_audit(records2, PUB).chains["p0"]
    assert summary.unanchored == 1 and summary.last_checkpoint.seq == 4


def test_rewritten_history_differs_from_the_anchor():
    records, _ = build(6)
    anchor = records[4]
    rebuilt, _ = build(6)  # same decisions, different checkpoint signatures
    other, _ = build(7)
    report = verify_audit(other, PUB, anchors=[anchor])
    assert report.ok  # same content => same hashes up to the anchor
    changed = [dataclasses.replace(r, decided_at=T + timedelta(seconds=1)) for r in rebuilt]
    audit = AuditChain(ChainHead("p0"), KEY, checkpoint_every=4)
    relinked = []
    for r in changed:
        if r.kind is AuditKind.DECISION:
            relinked.extend(audit.append(decision(int(r.decision_id[4:]), r.decided_at)))
    report = verify_audit(relinked, PUB, anchors=[anchor])
    assert kinds(report) == [(ProblemKind.ALTERED, 4)]


def test_bad_anchor_and_interleaved_chains():
    a, _ = build(3, chain="p0")
    b, _ = build(3, chain="p1")
    interleaved = [r for pair in zip(a, b, strict=False) for r in pair]
    report = verify_audit(interleaved, PUB)
    assert report.ok and set(report.chains) == {"p0", "p1"}
    bad = dataclasses.replace(a[-1], signature=b"\x00" * 64)
    report = verify_audit(interleaved, PUB, anchors=[bad])
    assert kinds(report) == [(ProblemKind.BAD_CHECKPOINT, a[-1].seq)]


def test_audit_records_round_trip_as_json_and_subject_query():
    from consent import audit_record_from_dict, audit_record_to_dict, decisions_concerning

    records, _ = build(5)
    assert [audit_record_from_dict(audit_record_to_dict(r)) for r in records] == records
    with pytest.raises(AuditInvalid):
        audit_record_from_dict({"seq": 1})
    person = records[1].subject_tokens[0]
    found = decisions_concerning(records, [person, "nobody"])
    assert [r.decision_id for r in found] == ["dec-1"]


# --- property: every single tampering is found -----------------------------------------


_CLOSED, _ = build(9, every=3)


@settings(max_examples=200, deadline=None)
@given(
    action=st.sampled_from(["alter", "delete", "duplicate", "swap", "forge-link"]),
    index=st.integers(0, len(_CLOSED) - 1),
    field=st.sampled_from(["agreement_id", "recipients", "event_ids", "reasons", "decided_at"]),
)
def test_any_single_tampering_is_found(action, index, field):
    records = list(_CLOSED)
    anchor = records[-1]
    record = records[index]
    value = {
        "agreement_id": "other",
        "recipients": ("elsewhere",),
        "event_ids": ("evt-x",),
        "reasons": ("allowed", "x"),
        "decided_at": T + timedelta(days=1),
    }[field]
    if action == "alter":
        records[index] = dataclasses.replace(record, **{field: value})
    elif action == "forge-link":
        forged = dataclasses.replace(record, **{field: value})
        records[index] = dataclasses.replace(forged, record_hash=audit_record_hash(forged))
    elif action == "delete":
        del records[index]
    elif action == "duplicate":
        records.insert(index, record)
    else:
        other = (index + 1) % len(records)
        records[index], records[other] = records[other], records[index]
    assert not verify_audit(records, PUB, anchors=[anchor]).ok


# --- vouching: what no signed checkpoint covers is not trusted (issue 11, item 4) --------

DAY_LATER = T + timedelta(days=1)


def forged_tail(records, n: int, *, at=T, outcome=Outcome.DENIED):
    """Keep the chain up to its last checkpoint, then relink ``n`` forged decisions after it."""
    last = max(i for i, r in enumerate(records) if r.kind is AuditKind.CHECKPOINT)
    kept = records[: last + 1]
    forger = AuditChain(
        ChainHead.after(kept[-1]),
        generate_signing_key(),
        checkpoint_every=10**6,
        checkpoint_interval=timedelta(days=10**4),  # it cannot sign one anyway
    )
    tail = []
    for i in range(n):
        d = dataclasses.replace(decision(100 + i, at), outcome=outcome, reasons=(Reason.OBJECTED,))
        tail.extend(forger.append(d))
    return kept + tail


def test_an_allowed_decision_rewritten_to_denied_after_the_last_checkpoint_fails():
    records, _ = build(6, close=False)  # decisions 0-3, checkpoint at seq 4, then seqs 5 and 6
    assert records[6].outcome is Outcome.ALLOWED
    forged = dataclasses.replace(records[6], outcome=Outcome.DENIED, reasons=("objected",))
    records[6] = dataclasses.replace(forged, record_hash=audit_record_hash(forged))
    # the links alone cannot see it, but every link is signed: at once, not only when due
    for report in (verify_audit(records, PUB), verify_audit(records, PUB, now=T)):
        assert kinds(report) == [(ProblemKind.ALTERED, 6)]
        assert "not signed by the broker key" in str(report.problems[0])
        assert not report.intact("p0")
    honest, _ = build(6, close=False)
    report = verify_audit(honest, PUB, now=DAY_LATER)
    assert kinds(report) == [(ProblemKind.UNVOUCHED, 5)]
    assert "2 record(s) after the last signed checkpoint (seq 4) unvouched" in str(
        report.problems[0]
    )
    assert report.intact("p0")  # a vouching problem, not a broken link


def test_a_young_tail_is_pending_and_strict_fails_on_it():
    records, _ = build(5, close=False)
    soon = T + timedelta(seconds=30)
    report = verify_audit(records, PUB, now=soon)
    assert report.ok
    summary = report.chains["p0"]
    assert summary.unanchored == 1
    assert summary.vouch_deadline == records[4].decided_at + timedelta(minutes=3)
    strict = verify_audit(records, PUB, now=soon, strict=True)
    assert kinds(strict) == [(ProblemKind.PENDING, 5)]
    # the interval and margin are the caller's: a 1-hour interval keeps it pending
    assert verify_audit(
        records, PUB, now=T + timedelta(minutes=30), checkpoint_interval=timedelta(hours=1)
    ).ok
    assert not verify_audit(records, PUB, now=T + timedelta(minutes=30)).ok
    # a closed chain has nothing pending
    closed, _ = build(5)
    assert verify_audit(closed, PUB, now=DAY_LATER, strict=True).ok


def test_a_forged_tail_dated_now_is_judged_from_the_signed_checkpoint_not_its_own_dates():
    records, _ = build(8, close=True)
    forged = forged_tail(records, 3, at=DAY_LATER)  # the forger dates its records "now"
    report = verify_audit(forged, PUB, now=DAY_LATER)
    assert kinds(report) == [(ProblemKind.ALTERED, len(records))]  # it cannot sign them
    # the broker's own tail, dated later than it should be, is judged from the checkpoint
    audit = AuditChain(ChainHead.after(records[-1]), KEY, checkpoint_every=10**6,
                       checkpoint_interval=timedelta(days=10**4))  # fmt: skip
    late = [r for i in range(3) for r in audit.append(decision(100 + i, DAY_LATER))]
    report = verify_audit([*records, *late], PUB, now=DAY_LATER)
    assert kinds(report) == [(ProblemKind.UNVOUCHED, len(records))]


def test_a_chain_with_no_checkpoint_fails_even_when_fresh():
    fabricated = AuditChain(ChainHead("p7"), generate_signing_key(), checkpoint_every=100)
    records = [r for i in range(3) for r in fabricated.append(decision(i, DAY_LATER))]
    assert kinds(verify_audit(records, PUB)) == [(ProblemKind.ALTERED, 0)]  # not the broker's
    unvouched = AuditChain(ChainHead("p7"), KEY, checkpoint_every=100)  # killed before one
    records = [r for i in range(3) for r in unvouched.append(decision(i, DAY_LATER))]
    assert verify_audit(records, PUB).ok  # consistent, signed links, nothing more
    report = verify_audit(records, PUB, now=DAY_LATER)
    assert kinds(report) == [(ProblemKind.NO_CHECKPOINT, 0)]
    assert "no signed checkpoint" in str(report.problems[0])
    # a fabricated checkpoint under another key is a bad checkpoint, not a voucher
    records.append(fabricated.checkpoint(DAY_LATER))
    assert kinds(verify_audit(records, PUB, now=DAY_LATER)) == [(ProblemKind.BAD_CHECKPOINT, 3)]


def test_anchors_are_kept_per_key_and_chain_and_catch_a_chain_cut_to_its_first_checkpoint(
    tmp_path,
):
    from consent import AuditInvalid, load_anchors, save_anchors

    path = tmp_path / "state" / "anchors.json"
    assert load_anchors(path, PUB) == ()
    records, _ = build(10)  # checkpoints at 4, 9 and the shutdown one at 12
    report = verify_audit(records, PUB, anchors=load_anchors(path, PUB), now=DAY_LATER)
    assert report.ok
    assert save_anchors(path, PUB, report) == ["p0"]
    assert [a.seq for a in load_anchors(path, PUB)] == [12]
    assert load_anchors(path, generate_signing_key().public_key()) == ()  # keyed by broker key
    assert [p.name for p in path.parent.iterdir()] == ["anchors.json"]  # no temp file left

    cut = records[:5]  # back to the first checkpoint: consistent and vouched on its own
    assert verify_audit(cut, PUB, now=DAY_LATER).ok
    report = verify_audit(cut, PUB, anchors=load_anchors(path, PUB), now=DAY_LATER)
    assert kinds(report) == [(ProblemKind.TRUNCATED, 5)]
    assert save_anchors(path, PUB, report) == []  # a failed chain never moves its anchor
    assert [a.seq for a in load_anchors(path, PUB)] == [12]
    # the whole chain gone is a cut too
    report = verify_audit([], PUB, anchors=load_anchors(path, PUB), now=DAY_LATER)
    assert kinds(report) == [(ProblemKind.TRUNCATED, 0)]
    # an anchor never moves back
    shorter = verify_audit(records[:10], PUB, now=DAY_LATER)
    assert save_anchors(path, PUB, shorter) == []

    path.write_text("{not json")
    with pytest.raises(AuditInvalid) as caught:
        load_anchors(path, PUB)
    assert caught.value.reason == "anchors-invalid"


def test_a_checkpoint_dated_near_the_end_of_time_does_not_crash_verification():
    audit = AuditChain(ChainHead("p9"), KEY, checkpoint_every=2)
    end = datetime.max.replace(tzinfo=UTC) - timedelta(seconds=1)
    records = [*audit.append(decision(0, end)), *audit.append(decision(1, end))]
    records += audit.append(decision(3, end))
    report = verify_audit(records, PUB, now=T)
    assert report.ok and report.chains["p9"].vouch_deadline.year == 9999
    assert kinds(verify_audit(records, PUB, now=T, strict=True)) == [(ProblemKind.PENDING, 3)]


def test_a_decision_appended_twice_fails_even_when_every_link_and_checkpoint_holds():
    """A re-delivered event decided and appended again: a well-linked chain, one decision twice."""
    audit = AuditChain(
        ChainHead("p0"), KEY, checkpoint_every=100, checkpoint_interval=timedelta(days=1)
    )
    audit.start(T)
    records = [*audit.append(decision(1)), *audit.append(decision(2)), *audit.append(decision(1))]
    records.append(audit.checkpoint(T, reason="shutdown"))
    report = verify_audit(records, PUB)
    assert kinds(report) == [(ProblemKind.REPEATED_DECISION, records[2].seq)]


def test_a_chain_continued_twice_from_one_place_is_reported_as_forked():
    """Two workers (one a zombie) both continued the chain from seq 3, each signing its own.

    It was reported as ``reordered``, "seq 3 after seq 3", which sends an auditor
    looking for a reordering that never happened; both records are genuine, the
    chain has two branches.
    """
    records, _ = build(6, every=100, close=False)
    branch = AuditChain(ChainHead.after(records[2]), KEY, checkpoint_every=100)
    other = [*branch.append(decision(50)), *branch.append(decision(51))]
    for read in ([*records, *other], [*records[:4], other[0], *records[4:], other[1]]):
        report = verify_audit(read, PUB)
        assert kinds(report) == [(ProblemKind.FORKED, 3)], [str(p) for p in report.problems]
        detail = str(report.problems[0])
        assert "two different records signed by the broker" in detail
        assert f"position {read.index(records[3])}" in detail


def test_a_record_appended_far_ahead_by_someone_without_the_key_is_a_forgery_not_a_gap():
    """Attack: append an unsigned record claiming seq 500 to a chain of 10.

    It was reported as ``missing``, "record(s) 10..499 absent": an auditor (and
    now a subject-access answer) was sent looking for 490 deleted decisions
    that never existed, when one record was forged.
    """
    records, _ = build(6)
    forger = AuditChain(ChainHead("p0", count=500, head_hash=b"\x07" * 32), generate_signing_key())
    forged = forger.append(decision(99))
    report = verify_audit([*records, *forged], PUB)
    assert kinds(report) == [(ProblemKind.ALTERED, 500)], [str(p) for p in report.problems]
    assert "not signed by the broker key" in str(report.problems[0])
    # a genuine gap is still a gap
    report = verify_audit([*records[:3], *records[5:]], PUB)
    assert kinds(report) == [(ProblemKind.MISSING, 3)]
