"""Consent state: latest record per token and scope, erasure tombstones, serialisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import (
    ConsentLedger,
    ConsentStateInvalid,
    TokenConsent,
    effective_consent,
)
from schemas import ConsentRecord, ConsentState, LinkageToken

T = datetime(2026, 6, 1, tzinfo=UTC)
TOK = LinkageToken("nhs", 1, b"\x07" * 32)
OTHER = LinkageToken("name+dob", 1, b"\x08" * 32)


def rec(rid: str, state: ConsentState, *, scope: str = "a1", at: int = 0, tokens=(TOK,)):
    when = T + timedelta(minutes=at)
    return ConsentRecord(rid, "E08000006", tuple(tokens), scope, state, when, when, 1)


def state_of(ledger: ConsentLedger, agreement: str = "a1", purpose: str = "p", tokens=(TOK,)):
    entry = effective_consent(
        ledger, [t.key() for t in tokens], agreement_id=agreement, purpose=purpose
    )
    return entry.state if entry is not None else None


def test_latest_record_wins_whatever_the_arrival_order():
    grant, withdraw = rec("r1", ConsentState.GRANTED, at=0), rec("r2", ConsentState.WITHDRAWN, at=5)
    assert state_of(ConsentLedger.from_records([grant, withdraw])) is ConsentState.WITHDRAWN
    assert state_of(ConsentLedger.from_records([withdraw, grant])) is ConsentState.WITHDRAWN


def test_same_time_ties_break_on_record_id():
    a, b = rec("r-a", ConsentState.OBJECTED, at=0), rec("r-b", ConsentState.GRANTED, at=0)
    assert state_of(ConsentLedger.from_records([a, b])) is ConsentState.GRANTED
    assert state_of(ConsentLedger.from_records([b, a])) is ConsentState.GRANTED


def test_scopes_agreement_purpose_and_everything():
    ledger = ConsentLedger.from_records(
        [
            rec("r1", ConsentState.GRANTED, scope="a1", at=0),
            rec("r2", ConsentState.OBJECTED, scope="purpose:p", at=1),
        ]
    )
    assert state_of(ledger) is ConsentState.OBJECTED  # the later purpose-wide objection
    assert state_of(ledger, agreement="a2", purpose="q") is None
    ledger = ledger.apply(rec("r3", ConsentState.GRANTED, scope="*", at=2))
    assert state_of(ledger, agreement="a2", purpose="q") is ConsentState.GRANTED
    assert state_of(ledger) is ConsentState.GRANTED


def test_any_of_a_subjects_tokens_carries_the_record():
    ledger = ConsentLedger.from_records([rec("r1", ConsentState.OBJECTED, tokens=(OTHER,))])
    assert state_of(ledger, tokens=(TOK, OTHER)) is ConsentState.OBJECTED
    assert state_of(ledger, tokens=(TOK,)) is None


def test_erasure_removes_state_and_ignores_older_records():
    ledger = ConsentLedger.from_records(
        [rec("r1", ConsentState.GRANTED, at=0), rec("r2", ConsentState.OBJECTED, scope="b", at=1)]
    )
    erased = ledger.apply(rec("r3", ConsentState.ERASURE_REQUESTED, scope="*", at=2))
    held = erased.get(TOK.key())
    assert held is not None and held.erased and held.entries == ()
    assert state_of(erased) is ConsentState.ERASURE_REQUESTED
    assert state_of(erased, agreement="zzz", purpose="q") is ConsentState.ERASURE_REQUESTED
    # a late-arriving record from before the erasure does not resurrect anything
    assert erased.apply(rec("r0", ConsentState.GRANTED, at=1)) == erased
    # a resident who comes back later can grant again
    regranted = erased.apply(rec("r4", ConsentState.GRANTED, at=3))
    assert state_of(regranted) is ConsentState.GRANTED


def test_serialisation_round_trips():
    ledger = ConsentLedger.from_records(
        [
            rec("r1", ConsentState.GRANTED, at=0, tokens=(TOK, OTHER)),
            rec("r2", ConsentState.ERASURE_REQUESTED, scope="*", at=1, tokens=(OTHER,)),
        ]
    )
    for key in ledger:
        held = ledger.get(key)
        assert TokenConsent.from_bytes(held.to_bytes()) == held
    assert ConsentLedger.from_dict(ledger.to_dict()) == ledger
    for bad in (
        b"nope",
        b'{"v": 2}',
        b'{"v": 1, "entries": 3}',
        b'{"v": 1, "entries": [{"scope": "x"}]}',
    ):
        with pytest.raises(ConsentStateInvalid):
            TokenConsent.from_bytes(bad)


records = st.lists(
    st.builds(
        rec,
        rid=st.sampled_from(["r1", "r2", "r3", "r4"]),
        state=st.sampled_from(list(ConsentState)),
        scope=st.sampled_from(["a1", "purpose:p", "*", "a2"]),
        at=st.integers(0, 3),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(records, st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_state(items, random):
    shuffled = list(items)
    random.shuffle(shuffled)
    assert ConsentLedger.from_records(items) == ConsentLedger.from_records(shuffled)
