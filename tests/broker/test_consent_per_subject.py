"""Consent is decided per subject: a match never merges two residents' choices.

DESIGN section 10. A false fuzzy match joins two people; one has objected, the
other's newest record grants. Merged into one subject, the newest record won
and the objector's event was disclosed. Each event's own exact tokens are one
subject now, and every subject must consent.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from broker import Matcher, Sighting, subjects_of
from broker._partition import PartitionCore, retention_for
from consent import AuditChain, ChainHead, ConsentLedger, ConsentModel
from schemas import ConsentRecord, ConsentState
from tests.broker.test_partition import FROM, NOW, TO, _event, _shared_blocking, federation

__all__ = ["federation"]

MOVE = "gm-cross-boundary-move"


def _record(federation, event, state: ConsentState, recorded_days_ago: int, rid: str):
    return ConsentRecord(rid * 32, FROM, event.tokens, MOVE, state,
                         NOW - timedelta(days=recorded_days_ago), NOW, 1)  # fmt: skip


def _objection_core(federation):
    directory = federation.load(NOW)
    moving = replace(directory.agreements[MOVE], consent_model=ConsentModel.OBJECTION)
    directory = replace(directory, agreements={**directory.agreements, MOVE: moving})
    # A low threshold makes the two people's encodings match: a false fuzzy match.
    return directory, PartitionCore(directory, Matcher(0.3), federation.signing_key("broker"))


def test_a_false_match_cannot_let_one_residents_grant_override_anothers_objection(federation):
    directory, core = _objection_core(federation)
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    objector = _event(federation, FROM, "C", "2026-09-01", "a-1")
    other = _event(federation, TO, "M", "2026-09-04", "b-7", f="Alicia", n="")
    token = _shared_blocking(objector, other)
    consent = ConsentLedger.from_records([
        _record(federation, objector, ConsentState.OBJECTED, 20, "a"),
        _record(federation, other, ConsentState.GRANTED, 2, "b"),  # newer, another person
    ])  # fmt: skip
    state, effects = None, None
    for event in (objector, other):
        sighting = Sighting.from_event(event, retention=retention_for(directory, event))
        state, effects = core.on_sighting(token, sighting, state, consent, chain, NOW)
    assert effects is not None and [m.method for m in effects.matches] == ["fuzzy"]
    assert effects.notifications == []
    assert {r for a in effects.audit for r in a.reasons} == {"objected"}
    assert all(len(a.subject_tokens) == len(objector.tokens) + len(other.tokens)
               for a in effects.audit)  # fmt: skip


def test_without_the_objection_the_same_match_is_notified(federation):
    """The control: the denial above is the objection's doing, nothing else."""
    directory, core = _objection_core(federation)
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    objector = _event(federation, FROM, "C", "2026-09-01", "a-1")
    other = _event(federation, TO, "M", "2026-09-04", "b-7", f="Alicia", n="")
    token = _shared_blocking(objector, other)
    consent = ConsentLedger.from_records([_record(federation, other, ConsentState.GRANTED, 2, "b")])
    state, effects = None, None
    for event in (objector, other):
        sighting = Sighting.from_event(event, retention=retention_for(directory, event))
        state, effects = core.on_sighting(token, sighting, state, consent, chain, NOW)
    assert effects is not None and effects.notifications
    assert {n.agreement_id for n in effects.notifications} == {MOVE}


def test_each_event_is_its_own_subject(sighting_factory):
    a = sighting_factory("a", tokens=("name+dob:1:bb", "nhs:1:aa"))
    b = sighting_factory("b", tokens=("name+dob:1:cc",))
    c = sighting_factory("c", tokens=("name+dob:1:bb", "nhs:1:aa"))
    assert subjects_of([a, b, c]) == (("name+dob:1:bb", "nhs:1:aa"), ("name+dob:1:cc",))
