"""decide(): deny by default, every failing condition named, never allows a broken case."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from consent import (
    Agreement,
    CandidateDisclosure,
    ConsentLedger,
    ConsentModel,
    DisclosedEvent,
    LawfulBasis,
    MatchRule,
    Reason,
    decide,
    decision_id,
)
from schemas import ConsentRecord, ConsentState, EventType, LinkageToken, Outcome

T = datetime(2026, 6, 1, tzinfo=UTC)
CONTROLLERS = frozenset({"E08000003", "E08000006"})
RECIPIENT = "gmca.supporting-families"


def agreement(model: ConsentModel = ConsentModel.OBJECTION, **changes) -> Agreement:
    base = Agreement(
        agreement_id="a1",
        title="t",
        purpose="p",
        lawful_basis=LawfulBasis("6(1)(e) public task", "Digital Economy Act 2017 Part 5"),
        controllers=CONTROLLERS,
        recipients=frozenset({RECIPIENT}),
        disclosures=MappingProxyType(
            {
                EventType.RENT_ARREARS: frozenset({"postcode", "tenancy_reference"}),
                EventType.PERSISTENT_ABSENCE: frozenset({"school_urn"}),
            }
        ),
        match=MatchRule(
            frozenset({EventType.RENT_ARREARS, EventType.PERSISTENT_ABSENCE}),
            2,
            2,
            timedelta(days=90),
        ),
        consent_model=model,
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_until=datetime(2027, 1, 1, tzinfo=UTC),
        retention=timedelta(days=365),
    )
    return dataclasses.replace(base, **changes)


def token(n: int) -> LinkageToken:
    return LinkageToken("nhs", 1, bytes([n]) * 32)


def event(n: int = 1, **changes) -> DisclosedEvent:
    base = DisclosedEvent(
        f"evt-{n}", "E08000003", EventType.RENT_ARREARS, T, frozenset({"postcode"})
    )
    return dataclasses.replace(base, **changes)


def candidate(events=None, subjects=None, **changes) -> CandidateDisclosure:
    return CandidateDisclosure(
        agreement_id=changes.pop("agreement_id", "a1"),
        recipient=changes.pop("recipient", RECIPIENT),
        events=tuple(
            events if events is not None else (event(1), event(2, source_council="E08000006"))
        ),
        subjects=tuple(subjects if subjects is not None else ((token(1).key(),),)),
    )


def record(n: int, state: ConsentState, scope: str = "a1", at: datetime = T, tok: int = 1):
    return ConsentRecord(f"r{n}", "E08000003", (token(tok),), scope, state, at, at, 1)


def test_allowed_when_everything_holds():
    decision = decide(agreement(), candidate(), ConsentLedger(), T)
    assert decision.outcome is Outcome.ALLOWED
    assert decision.reasons == (Reason.ALLOWED,)
    assert decision.allowed
    assert decision.event_ids == ("evt-1", "evt-2")
    assert decision.subject_tokens == (token(1).key(),)


def test_no_agreement_denies():
    decision = decide(None, candidate(), ConsentLedger(), T)
    assert decision.outcome is Outcome.DENIED
    assert decision.reasons == (Reason.NO_AGREEMENT,)


def test_each_condition_names_its_reason():
    ledger = ConsentLedger()
    cases = {
        Reason.AGREEMENT_MISMATCH: (agreement(), candidate(agreement_id="a2")),
        Reason.NOT_IN_FORCE: (agreement(), candidate([event(occurred_at=T.replace(year=2025))])),
        Reason.SOURCE_NOT_CONTROLLER: (agreement(), candidate([event(source_council="E08000009")])),
        Reason.EVENT_TYPE_NOT_ALLOWED: (
            agreement(),
            candidate([event(event_type=EventType.DEATH_REGISTERED)]),
        ),
        Reason.FIELD_NOT_ALLOWED: (
            agreement(),
            candidate([event(fields=frozenset({"arrears_amount"}))]),
        ),
        Reason.RECIPIENT_NOT_NAMED: (agreement(), candidate(recipient="E08000009.revenues")),
        Reason.NO_EVENTS: (agreement(), candidate([])),
        Reason.NO_SUBJECTS: (agreement(), candidate(subjects=[])),
        Reason.CONSENT_NOT_GRANTED: (agreement(ConsentModel.REQUIRED), candidate()),
    }
    for reason, (agr, cand) in cases.items():
        decision = decide(agr, cand, ledger, T)
        assert decision.outcome is Outcome.DENIED, reason
        assert decision.reasons == (reason,), (reason, decision.reasons)


def test_every_failing_condition_is_reported_together():
    cand = candidate(
        [event(source_council="E08000009", fields=frozenset({"arrears_amount"}))],
        recipient="nobody",
    )
    reasons = decide(agreement(), cand, ConsentLedger(), T).reasons
    assert set(reasons) == {
        Reason.SOURCE_NOT_CONTROLLER,
        Reason.FIELD_NOT_ALLOWED,
        Reason.RECIPIENT_NOT_NAMED,
    }


def test_consent_models():
    granted = ConsentLedger.from_records([record(1, ConsentState.GRANTED)])
    withdrawn = granted.apply(record(2, ConsentState.WITHDRAWN, at=T + timedelta(hours=1)))
    objected = ConsentLedger.from_records([record(1, ConsentState.OBJECTED, scope="purpose:p")])
    erased = ConsentLedger.from_records([record(1, ConsentState.ERASURE_REQUESTED, scope="*")])
    req, obj, nreq = (agreement(m) for m in ConsentModel)

    def reasons(agr, ledger):
        return decide(agr, candidate(), ledger, T).reasons

    assert reasons(req, granted) == (Reason.ALLOWED,)
    assert reasons(req, ConsentLedger()) == (Reason.CONSENT_NOT_GRANTED,)
    assert reasons(req, withdrawn) == (Reason.CONSENT_WITHDRAWN,)
    assert reasons(req, objected) == (Reason.OBJECTED,)
    assert reasons(obj, ConsentLedger()) == (Reason.ALLOWED,)
    assert reasons(obj, granted) == (Reason.ALLOWED,)
    assert reasons(obj, objected) == (Reason.OBJECTED,)
    assert reasons(obj, withdrawn) == (Reason.CONSENT_WITHDRAWN,)
    assert reasons(nreq, objected) == (Reason.ALLOWED,)
    for agr in (req, obj, nreq):
        assert reasons(agr, erased) == (Reason.ERASURE_REQUESTED,)


def test_consent_needed_for_every_subject():
    ledger = ConsentLedger.from_records([record(1, ConsentState.GRANTED, tok=1)])
    two = candidate(subjects=[(token(1).key(),), (token(2).key(),)])
    assert decide(agreement(ConsentModel.REQUIRED), two, ledger, T).reasons == (
        Reason.CONSENT_NOT_GRANTED,
    )
    both = ledger.apply(record(2, ConsentState.GRANTED, tok=2))
    assert decide(agreement(ConsentModel.REQUIRED), two, both, T).allowed


def test_a_grant_under_any_of_a_subjects_tokens_counts():
    ledger = ConsentLedger.from_records([record(1, ConsentState.GRANTED, tok=2)])
    cand = candidate(subjects=[(token(1).key(), token(2).key())])
    assert decide(agreement(ConsentModel.REQUIRED), cand, ledger, T).allowed


def test_decision_id_is_deterministic_and_order_free():
    a = candidate([event(1), event(2)])
    b = candidate([event(2), event(1)])
    assert (
        decision_id(a) == decision_id(b) == decide(agreement(), a, ConsentLedger(), T).decision_id
    )
    assert decision_id(a) != decision_id(candidate(recipient="other"))
    assert decision_id(a).startswith("dec-")


# --- property: any missing condition means denied -------------------------------------

BREAKERS = (
    "no-agreement",
    "mismatch",
    "not-in-force",
    "not-controller",
    "type",
    "field",
    "recipient",
    "no-events",
    "no-subjects",
    "consent",
)


@st.composite
def scenarios(draw):
    model = draw(st.sampled_from(list(ConsentModel)))
    broken = draw(st.frozensets(st.sampled_from(BREAKERS), max_size=4))
    n_events = draw(st.integers(1, 4))
    n_subjects = draw(st.integers(1, 3))
    bad_event = draw(st.integers(0, n_events - 1))
    bad_subject = draw(st.integers(0, n_subjects - 1))
    return model, broken, n_events, n_subjects, bad_event, bad_subject


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_never_allows_when_any_condition_is_missing(scenario):
    model, broken, n_events, n_subjects, bad_event, bad_subject = scenario
    events = []
    for i in range(n_events):
        ev = event(i, source_council=sorted(CONTROLLERS)[i % 2])
        if i == bad_event:
            if "not-in-force" in broken:
                ev = dataclasses.replace(ev, occurred_at=datetime(2027, 1, 1, tzinfo=UTC))
            if "not-controller" in broken:
                ev = dataclasses.replace(ev, source_council="E08000010")
            if "type" in broken:
                ev = dataclasses.replace(ev, event_type=EventType.SCHOOL_ENROLMENT)
            if "field" in broken:
                ev = dataclasses.replace(ev, fields=ev.fields | {"given_name"})
        events.append(ev)
    subjects = [(token(s + 1).key(),) for s in range(n_subjects)]
    records = []
    for s in range(n_subjects):
        if model is ConsentModel.REQUIRED:
            records.append(record(s, ConsentState.GRANTED, tok=s + 1))
        if s == bad_subject and "consent" in broken:
            state = (
                ConsentState.ERASURE_REQUESTED
                if model is ConsentModel.NOT_REQUIRED
                else (ConsentState.OBJECTED)
            )
            records.append(record(100 + s, state, tok=s + 1, at=T + timedelta(seconds=1)))
    cand = candidate(
        [] if "no-events" in broken else events,
        [] if "no-subjects" in broken else subjects,
        agreement_id="other" if "mismatch" in broken else "a1",
        recipient="E08000003.revenues" if "recipient" in broken else RECIPIENT,
    )
    agr = None if "no-agreement" in broken else agreement(model)
    decision = decide(agr, cand, ConsentLedger.from_records(records), T)
    if broken:
        assert decision.outcome is Outcome.DENIED
        assert Reason.ALLOWED not in decision.reasons
    else:
        assert decision.outcome is Outcome.ALLOWED
        assert decision.reasons == (Reason.ALLOWED,)
    if "no-agreement" in broken:
        assert Reason.NO_AGREEMENT in decision.reasons


@settings(max_examples=200, deadline=None)
@given(
    agreement_id=st.text(max_size=5),
    recipient=st.text(max_size=5),
    councils=st.lists(st.text(max_size=10), max_size=3),
    types=st.lists(st.sampled_from(list(EventType)), max_size=3),
    fields=st.frozensets(st.sampled_from(["postcode", "uprn", "given_name", "school_urn"])),
    model=st.sampled_from(list(ConsentModel)),
)
def test_allowed_only_if_every_condition_holds(
    agreement_id, recipient, councils, types, fields, model
):
    agr = agreement(model)
    events = [
        DisclosedEvent(f"e{i}", c, t, T, fields)
        for i, (c, t) in enumerate(zip(councils, types, strict=False))
    ]
    cand = CandidateDisclosure(agreement_id, recipient, tuple(events), ((token(1).key(),),))
    ledger = ConsentLedger.from_records([record(1, ConsentState.GRANTED)])
    decision = decide(agr, cand, ledger, T)
    holds = (
        agreement_id == "a1"
        and recipient == RECIPIENT
        and bool(events)
        and all(e.source_council in CONTROLLERS for e in events)
        and all(e.fields <= agr.allowed_fields(e.event_type) for e in events)
        and all(e.event_type in agr.match.event_types for e in events)
    )
    assert decision.allowed == holds


def test_disclosed_event_from_a_citizen_event():
    from schemas import CitizenEvent

    citizen = CitizenEvent(
        "evt-7", "E08000006", "housing", EventType.RENT_ARREARS, T, T, 1, "ref-7"
    )
    disclosed = DisclosedEvent.from_event(citizen, ["postcode"])
    assert disclosed == DisclosedEvent(
        "evt-7", "E08000006", EventType.RENT_ARREARS, T, frozenset({"postcode"})
    )


def test_required_consent_is_not_met_by_a_namesakes_grant():
    shared = LinkageToken("name+dob", 1, b"\x09" * 32)
    namesake = ConsentRecord("r-b", "E08000003", (token(2), shared), "a1",
                             ConsentState.GRANTED, T, T, 1)  # fmt: skip
    subject = (token(1).key(), shared.key())
    decision = decide(agreement(ConsentModel.REQUIRED), candidate(subjects=[subject]),
                      ConsentLedger.from_records([namesake]), T)  # fmt: skip
    assert decision.reasons == (Reason.CONSENT_NOT_GRANTED,)
