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
    effective_time,
    erased_since,
)
from schemas import ConsentRecord, ConsentState, LinkageToken

T = datetime(2026, 6, 1, tzinfo=UTC)
TOK = LinkageToken("nhs", 1, b"\x07" * 32)
OTHER = LinkageToken("name+dob", 1, b"\x08" * 32)
COUNCILS = frozenset({"E08000006"})  # the controllers of every agreement here


def rec(rid: str, state: ConsentState, *, scope: str = "a1", at: int = 0, tokens=(TOK,)):
    when = T + timedelta(minutes=at)
    return ConsentRecord(rid, "E08000006", tuple(tokens), scope, state, when, when, 1)


def state_of(ledger: ConsentLedger, agreement: str = "a1", purpose: str = "p", tokens=(TOK,)):
    entry = effective_consent(
        ledger, [t.key() for t in tokens], agreement_id=agreement, purpose=purpose,
        controllers=COUNCILS,
    )  # fmt: skip
    return entry.state if entry is not None else None


def test_latest_record_wins_whatever_the_arrival_order():
    grant, withdraw = rec("r1", ConsentState.GRANTED, at=0), rec("r2", ConsentState.WITHDRAWN, at=5)
    assert state_of(ConsentLedger.from_records([grant, withdraw])) is ConsentState.WITHDRAWN
    assert state_of(ConsentLedger.from_records([withdraw, grant])) is ConsentState.WITHDRAWN


def test_on_a_full_tie_the_refusal_wins_whatever_the_record_ids():
    """A tie used to fall to the record id's hash: a grant beat an objection one time in two."""
    for objection_id, grant_id in (("r-a", "r-b"), ("r-b", "r-a")):
        a = rec(objection_id, ConsentState.OBJECTED, at=0)
        b = rec(grant_id, ConsentState.GRANTED, at=0)
        assert state_of(ConsentLedger.from_records([a, b])) is ConsentState.OBJECTED
        assert state_of(ConsentLedger.from_records([b, a])) is ConsentState.OBJECTED


def test_same_time_ties_between_like_states_break_on_record_id():
    a, b = rec("r-a", ConsentState.OBJECTED, at=0), rec("r-b", ConsentState.WITHDRAWN, at=0)
    assert state_of(ConsentLedger.from_records([a, b])) is ConsentState.WITHDRAWN
    assert state_of(ConsentLedger.from_records([b, a])) is ConsentState.WITHDRAWN


def dated(rid: str, state: ConsentState, *, day: datetime, published_hour: int, tokens=(TOK,)):
    """A clerk's record dated by day (midnight), published at a given hour of that day."""
    return ConsentRecord(
        rid, "E08000006", tuple(tokens), "a1", state, day, day + timedelta(hours=published_hour), 1
    )


def test_a_same_day_withdrawal_published_after_the_grant_wins_for_every_record_id():
    """The attack: 13 of 40 residents kept 'granted' after a same-day withdrawal."""
    for n in range(40):
        grant = dated(f"g-{n}", ConsentState.GRANTED, day=T, published_hour=9)
        withdraw = dated(f"w-{n}", ConsentState.WITHDRAWN, day=T, published_hour=15)
        for order in ([grant, withdraw], [withdraw, grant]):
            assert state_of(ConsentLedger.from_records(order)) is ConsentState.WITHDRAWN


def test_a_namesakes_newer_grant_never_overrides_a_residents_objection():
    """Two people share ``name+dob`` but not their NHS numbers; A objected, B granted later."""
    a_nhs, b_nhs = LinkageToken("nhs", 1, b"\x01" * 32), LinkageToken("nhs", 1, b"\x02" * 32)
    shared = LinkageToken("name+dob", 1, b"\x03" * 32)
    objection = rec("r-a", ConsentState.OBJECTED, at=0, tokens=(a_nhs, shared))
    grant = rec("r-b", ConsentState.GRANTED, at=60, tokens=(b_nhs, shared))
    ledger = ConsentLedger.from_records([objection, grant])
    assert state_of(ledger, tokens=(a_nhs, shared)) is ConsentState.OBJECTED
    assert state_of(ledger, tokens=(b_nhs, shared)) is ConsentState.GRANTED


def test_a_state_written_by_the_previous_version_still_reads():
    held = TokenConsent().apply(rec("r1", ConsentState.OBJECTED, at=0)).to_dict()
    held["v"] = 2
    for entry in held["entries"]:
        del entry["published_at"]
    assert TokenConsent.from_dict(held).entries[0].state is ConsentState.OBJECTED


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
        b'{"v": 3}',
        b'{"v": 1, "entries": [], "erasure": null}',  # v1 ranked by raw recorded_at
        b'{"v": 2, "entries": 3}',
        b'{"v": 2, "entries": [{"scope": "x"}]}',
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


# --- a source cannot push a record's rank into the future (issue 11, item 1) ----------


def typo(rid: str, state: ConsentState, *, recorded: datetime, published: datetime):
    return ConsentRecord(rid, "E08000006", (TOK,), "a1", state, recorded, published, 1)


CLERK_TYPO = datetime(2062, 6, 1, 9, 30, tzinfo=UTC)  # 2062 typed for 2026


@pytest.mark.parametrize("later", [ConsentState.WITHDRAWN, ConsentState.ERASURE_REQUESTED])
def test_a_grant_dated_2062_does_not_beat_a_later_withdrawal_or_erasure(later):
    grant = typo("r1", ConsentState.GRANTED, recorded=CLERK_TYPO, published=T)
    after = T + timedelta(hours=1)
    refusal = typo("r2", later, recorded=after, published=after + timedelta(minutes=1))
    for order in ([grant, refusal], [refusal, grant]):
        assert state_of(ConsentLedger.from_records(order)) is later


def test_the_rank_is_clamped_to_publication_and_survives_serialisation():
    grant = typo("r1", ConsentState.GRANTED, recorded=CLERK_TYPO, published=T)
    entry = effective_consent(
        ConsentLedger.from_records([grant]), [TOK.key()], agreement_id="a1", purpose="p",
        controllers=COUNCILS,
    )  # fmt: skip
    assert entry is not None and entry.effective_at == T
    assert effective_time(grant) == T
    held = ConsentLedger.from_records([grant]).get(TOK.key())
    assert TokenConsent.from_bytes(held.to_bytes()).entries[0].effective_at == T
    # an honest record keeps its own time: it was recorded before it was published
    honest = typo("r3", ConsentState.GRANTED, recorded=T - timedelta(days=2), published=T)
    assert effective_time(honest) == T - timedelta(days=2)


def test_a_future_dated_erasure_cannot_shadow_a_later_real_grant_either():
    erasure = typo("r1", ConsentState.ERASURE_REQUESTED, recorded=CLERK_TYPO, published=T)
    regrant_at = T + timedelta(days=1)
    regrant = typo("r2", ConsentState.GRANTED, recorded=regrant_at, published=regrant_at)
    assert state_of(ConsentLedger.from_records([erasure, regrant])) is ConsentState.GRANTED


@settings(max_examples=200, deadline=None)
@given(
    grant_recorded=st.datetimes(timezones=st.just(UTC)),
    grant_published=st.integers(0, 10**6),
    gap=st.integers(1, 10**6),
    lag=st.integers(0, 10**4),
    later=st.sampled_from(
        [ConsentState.WITHDRAWN, ConsentState.OBJECTED, ConsentState.ERASURE_REQUESTED]
    ),
)
def test_whatever_a_grant_claims_a_refusal_published_after_it_wins(
    grant_recorded, grant_published, gap, lag, later
):
    """A refusal recorded after the grant was published (and published itself) always wins."""
    published = T + timedelta(seconds=grant_published)
    grant = typo("r-z", ConsentState.GRANTED, recorded=grant_recorded, published=published)
    refused_at = published + timedelta(seconds=gap)
    refusal = typo("r-a", later, recorded=refused_at, published=refused_at + timedelta(seconds=lag))
    for order in ([grant, refusal], [refusal, grant]):
        assert state_of(ConsentLedger.from_records(order)) is later


def test_a_namesakes_grant_is_not_the_residents_consent():
    """B (same name and birth date, another NHS number) granted; A never did.

    A's subject held a grant through the shared ``name+dob`` token, so an
    agreement under the ``required`` model disclosed A on B's consent.
    """
    a_nhs, b_nhs = LinkageToken("nhs", 1, b"\x01" * 32), LinkageToken("nhs", 1, b"\x02" * 32)
    a_nino = LinkageToken("nino", 1, b"\x04" * 32)
    shared = LinkageToken("name+dob", 1, b"\x03" * 32)
    ledger = ConsentLedger.from_records(
        [rec("r-b", ConsentState.GRANTED, at=0, tokens=(b_nhs, shared))]
    )
    assert state_of(ledger, tokens=(a_nhs, shared)) is None
    assert state_of(ledger, tokens=(a_nino, shared)) is None
    assert state_of(ledger, tokens=(b_nhs, shared)) is ConsentState.GRANTED
    # nothing tells a subject known by name and birth date alone from B
    assert state_of(ledger, tokens=(shared,)) is ConsentState.GRANTED
    # A's own grant, recorded with a unique identifier only, is A's
    ledger = ledger.apply(rec("r-a", ConsentState.GRANTED, at=1, tokens=(a_nino,)))
    assert state_of(ledger, tokens=(a_nhs, a_nino, shared)) is ConsentState.GRANTED


# --- two erasures whose recorded and published orders disagree ----------------------


def test_an_event_published_before_either_of_two_erasures_is_erased_whatever_their_order():
    """Attack: the first erasure request is published late, after a second one.

    Only the erasure that ranks latest (recorded 10:05) was kept, with its own
    publication time (10:06); the one recorded at 10:01 but published at 10:10
    was forgotten. An event published at 10:08, read late, was then taken as
    published after every erasure and kept, though the 10:10 erasure removes
    it when read in publication order.
    """
    first = typo("r1", ConsentState.ERASURE_REQUESTED, recorded=T + timedelta(minutes=1),
                 published=T + timedelta(minutes=10))  # fmt: skip
    second = typo("r2", ConsentState.ERASURE_REQUESTED, recorded=T + timedelta(minutes=5),
                  published=T + timedelta(minutes=6))  # fmt: skip
    event_published = T + timedelta(minutes=8)
    for order in ([first, second], [second, first]):
        ledger = ConsentLedger.from_records(order)
        assert erased_since(ledger, [TOK.key()], event_published), order
        held = ledger.get(TOK.key())
        again = TokenConsent.from_bytes(held.to_bytes())  # as the consent table keeps it
        assert again == held and erased_since(ConsentLedger({TOK.key(): again}), [TOK.key()],
                                              event_published)  # fmt: skip
    assert not erased_since(ConsentLedger.from_records([first, second]), [TOK.key()],
                            T + timedelta(minutes=11))  # fmt: skip
