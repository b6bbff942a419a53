"""Match rules over a new event and its matches: types, sources, count, window, recipients."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from broker import EXACT, FUZZY, Match, disclosures_for, evaluate, evaluate_rule, recipients_for
from consent import ConsentLedger, Routing, build_dev_federation, decide
from schemas import EventType, SealedPayload
from tests.broker.conftest import T0

CLOSED = EventType.COUNCIL_TAX_ACCOUNT_CLOSED
MOVED = EventType.ADDRESS_CHANGE


@pytest.fixture
def pair(sighting_factory):
    old = sighting_factory(
        "old", event_type=CLOSED, source_council="E08000006", tokens=("nino:1:aa",)
    )
    new = sighting_factory(
        "new",
        event_type=MOVED,
        source_council="E08000009",
        occurred_at=T0 + timedelta(days=3),
        tokens=("nino:1:aa",),
        sealed=(
            SealedPayload("E08000009.revenues", "test-agreement", b"e", b"c"),
            SealedPayload("E08000009.revenues", "other-agreement", b"e", b"c"),
        ),
    )
    return new, old, Match(new, old, 1.0, EXACT, "nino:1:aa")


def test_two_sources_within_window_make_a_hit(agreement_factory, pair):
    new, old, match = pair
    hit = evaluate_rule(agreement_factory(), new, [match])
    assert hit is not None
    assert [s.event_id for s in hit.sightings] == ["old", "new"]
    assert (hit.score, hit.method, hit.event_ids) == (1.0, EXACT, ("new", "old"))
    assert hit.source_councils == ("E08000006", "E08000009")
    assert hit.destination_council == "E08000009"


def test_rule_needs_its_types_sources_count_and_window(agreement_factory, pair, sighting_factory):
    new, old, match = pair
    assert evaluate_rule(agreement_factory(event_types=(CLOSED,)), new, [match]) is None
    assert evaluate_rule(agreement_factory(distinct_sources_min=3), new, [match]) is None
    assert evaluate_rule(agreement_factory(count_min=3), new, [match]) is None
    assert evaluate_rule(agreement_factory(window=timedelta(days=2)), new, [match]) is None
    same = sighting_factory("same", event_type=CLOSED, source_council="E08000009")
    one_source = Match(new, same, 1.0, EXACT, "t")
    assert evaluate_rule(agreement_factory(), new, [one_source]) is None
    assert evaluate_rule(agreement_factory(distinct_sources_min=1), new, [one_source]) is not None


def test_unrelated_and_expired_matches_are_ignored(agreement_factory, pair, sighting_factory):
    new, old, _ = pair
    a, b = sighting_factory("a"), sighting_factory("b")
    assert evaluate_rule(agreement_factory(), new, [Match(a, b, 1.0, EXACT, "t")]) is None
    gone = sighting_factory(
        "gone", event_type=CLOSED, source_council="E08000006", expires_at=T0 + timedelta(days=1)
    )
    late = Match(new, gone, 1.0, EXACT, "t")
    assert evaluate_rule(agreement_factory(), new, [late], now=T0 + timedelta(days=4)) is None
    assert evaluate_rule(agreement_factory(), new, [late]) is not None


def test_weakest_fuzzy_join_sets_score_and_method(agreement_factory, pair, sighting_factory):
    new, old, match = pair
    third = sighting_factory("third", event_type=CLOSED, source_council="E08000003")
    joins = [match, Match(third, new, 0.91, FUZZY, "b"), Match(new, third, 0.85, FUZZY, "b")]
    hit = evaluate_rule(agreement_factory(), new, joins)
    assert hit is not None and len(hit.sightings) == 3
    assert (hit.score, hit.method) == (0.91, FUZZY)


def test_the_largest_window_containing_the_event_is_chosen(agreement_factory, sighting_factory):
    new = sighting_factory("new", source_council="E08000009", occurred_at=T0 + timedelta(days=40))
    early = sighting_factory("early", source_council="E08000003", occurred_at=T0)
    near = [
        sighting_factory(
            f"n{i}", source_council="E08000006", occurred_at=T0 + timedelta(days=20 + i)
        )
        for i in range(2)
    ]
    matches = [Match(new, o, 1.0, EXACT, "t") for o in [early, *near]]
    hit = evaluate_rule(agreement_factory(), new, matches)
    assert hit is not None and {s.event_id for s in hit.sightings} == {"n0", "n1", "new"}


def test_disclosures_one_per_recipient_with_fields_only_where_sealed(agreement_factory, pair):
    new, old, match = pair
    agreement = agreement_factory()
    candidates = evaluate(agreement, new, [match])
    assert [c.recipient for c in candidates] == ["E08000006.revenues", "E08000009.revenues"]
    fields = {c.recipient: {e.event_id: e.fields for e in c.events} for c in candidates}
    assert fields["E08000009.revenues"] == {"old": frozenset(), "new": frozenset({"postcode"})}
    assert fields["E08000006.revenues"]["new"] == frozenset()
    assert candidates[0].subjects == (("nino:1:aa",),)
    decision = decide(agreement, candidates[1], ConsentLedger(), T0)
    assert decision.allowed, decision.reasons


def test_no_hit_no_disclosures_and_fuzzy_only_subjects_are_empty(
    agreement_factory, sighting_factory
):
    agreement = agreement_factory()
    lonely = sighting_factory("x")
    assert evaluate(agreement, lonely, []) == []
    other = sighting_factory("y", event_type=CLOSED, source_council="E08000006")
    hit = evaluate_rule(agreement, lonely, [Match(lonely, other, 0.9, FUZZY, "b")])
    assert hit is not None
    (candidate,) = disclosures_for(agreement, hit, ["E08000009.revenues"])
    assert candidate.subjects == ((),)
    assert not decide(agreement, candidate, ConsentLedger(), T0).allowed


def test_recipients_follow_the_agreement_routing(agreement_factory, pair, tmp_path):
    new, old, match = pair
    agreement = agreement_factory()
    hit = evaluate_rule(agreement, new, [match])
    assert hit is not None
    assert recipients_for(agreement, hit, None) == ("E08000006.revenues", "E08000009.revenues")
    federation = build_dev_federation(
        tmp_path, councils=["E08000003", "E08000006", "E08000009"], now=T0
    )
    directory = federation.load(now=T0)
    moving = directory.agreements["gm-cross-boundary-move"]
    hit = evaluate_rule(moving, new, [match])
    assert hit is not None
    assert recipients_for(moving, hit, directory) == (
        "E08000009.electoral-registration",
        "E08000009.revenues",
    )
    sourced = replace(agreement, routing=Routing.SOURCE_COUNCILS)
    assert {c.recipient for c in evaluate(sourced, new, [match], directory=directory)} == {
        "E08000006.revenues",
        "E08000009.revenues",
    }
