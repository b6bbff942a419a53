"""Sightings: built from events, expire by retention, survive the row round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker import Sighting, StateInvalid, TokenState
from broker._sightings import Seen
from schemas import CitizenEvent, EventType, LinkageToken, SealedPayload

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _event() -> CitizenEvent:
    return CitizenEvent(
        event_id="ev-1",
        source_council="E08000003",
        source_system="revs",
        event_type=EventType.ADDRESS_CHANGE,
        occurred_at=T0,
        published_at=T0 + timedelta(minutes=1),
        key_epoch=3,
        source_ref="ref-1",
        tokens=(LinkageToken("nino", 3, b"\x01" * 32), LinkageToken("nhs", 3, b"\x02" * 32)),
        blocking_tokens=(LinkageToken("soundex+yob", 3, b"\x03" * 32),),
        fuzzy=b"\xaa" * 16,
        attributes={"tenure": "owner"},
        sealed=(SealedPayload("E08000009.revenues", "agr", b"e", b"c"),),
    )


def test_from_event_keeps_references_tokens_and_retention():
    sighting = Sighting.from_event(_event(), retention=timedelta(days=90))
    assert sighting.tokens == tuple(sorted(t.key() for t in _event().tokens))
    assert sighting.blocking == (_event().blocking_tokens[0].key(),)
    assert sighting.all_tokens() == sighting.tokens + sighting.blocking
    assert sighting.expires_at == T0 + timedelta(days=90)
    assert not sighting.expired(T0 + timedelta(days=89))
    assert sighting.expired(T0 + timedelta(days=90))
    assert not Sighting.from_event(_event(), retention=None).expired(T0 + timedelta(days=10**4))


def test_round_trip_through_dict_and_row():
    sighting = Sighting.from_event(_event(), retention=timedelta(days=1))
    bare = Sighting("ev-2", "E08000006", "r", EventType.RENT_ARREARS, T0, 3)
    state = TokenState((sighting, bare))
    assert Sighting.from_row(sighting.to_row()) == sighting
    assert TokenState.from_dict(state.to_dict()) == state
    with pytest.raises(StateInvalid):
        TokenState.from_dict({"sightings": [{"event_id": "e"}]})
    with pytest.raises(StateInvalid):
        TokenState.from_dict({})
    assert Sighting.from_dict(sighting.to_dict()) == sighting


def test_state_adds_once_expires_and_erases(sighting_factory):
    old = sighting_factory("a", expires_at=T0 + timedelta(days=1))
    new = sighting_factory("b", expires_at=T0 + timedelta(days=30))
    state = TokenState().add(old).add(new).add(old)
    assert [s.event_id for s in state.sightings] == ["a", "b"]
    assert state.live(T0 + timedelta(days=2)).sighting_count() == 1
    assert state.live(None) is state
    assert state.without({"b"}).event_ids() == {"a"}


def test_a_state_holding_only_remembered_ids_is_still_a_state():
    """``__len__`` made such a state falsy, so ``if state`` took a replay guard for nothing."""
    remembered = TokenState(seen=(Seen("ev-1", "fed.events.E08000003/0/7", T0),))
    assert remembered and remembered.sighting_count() == 0
    assert not hasattr(TokenState, "__len__"), "count sightings explicitly"
