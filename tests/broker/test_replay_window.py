"""A replay within the freshness window is refused even after its sighting expired (item 7).

Sightings are kept only as long as the agreements' retention; the freshness
window (``max_age``, 30 days) is longer. An event re-sent 29 days later used
to be matched as new once its sighting had gone, and disclosed again with
whatever had arrived since.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from broker import Matcher, Sighting, TokenState
from broker._partition import PartitionCore, retention_for
from broker._state_cache import StateCache
from broker._verify import DEFAULT_MAX_AGE, DEFAULT_MAX_SKEW
from connectors import EventFactory, SourceRow, Tokeniser
from consent import AuditChain, ChainHead
from tests.broker.test_partition import FROM, KEY, MAPPING, NOW, PERSON, TO, federation

__all__ = ["federation"]

MOVE = "gm-cross-boundary-move"


def _event(federation, council, code, when, ref, published):
    factory = EventFactory(council, federation.signing_key(council), federation.load(NOW),
                           Tokeniser([KEY]), KEY)  # fmt: skip
    row = SourceRow("x.csv", 1, {**PERSON, "e": code, "t": when, "ref": ref})
    return factory.event(row, MAPPING, now=published)


def test_a_replay_29_days_later_is_refused_after_its_sighting_expired(federation):
    directory = federation.load(NOW)
    moving = directory.agreements[MOVE]
    short = replace(moving, retention=timedelta(days=20),
                    match=replace(moving.match, window=timedelta(days=60)))  # fmt: skip
    directory = replace(directory, agreements={**directory.agreements, MOVE: short})
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    later = NOW + timedelta(days=29)
    first = _event(federation, FROM, "C", "2026-09-01", "a-1", NOW)
    moved = _event(federation, TO, "M", "2026-09-04", "b-7", NOW)
    again = _event(federation, TO, "M", "2026-10-08", "b-9", later)
    token = min(t.key() for t in first.tokens)
    state = None

    def feed(event, origin, now):
        nonlocal state
        sighting = Sighting.from_event(event, retention=retention_for(directory, event))
        state, effects = core.on_sighting(token, sighting, state, None, chain, now, origin=origin,
                                          seen_until=event.published_at + DEFAULT_MAX_AGE
                                          + DEFAULT_MAX_SKEW)  # fmt: skip
        return effects

    feed(first, "fed.events.A/0/1", NOW)
    notified = feed(moved, "fed.events.B/0/1", NOW).notifications  # one per recipient
    assert notified and {n.agreement_id for n in notified} == {MOVE}
    assert not feed(again, "fed.events.B/0/2", later).notifications, "the others have expired"
    assert first.event_id not in state.event_ids(), "its sighting expired with the retention"
    replayed = feed(first, "fed.events.A/1/77", later + timedelta(hours=1))  # still fresh
    assert replayed.duplicate
    assert replayed.notifications == [] and replayed.audit == [] and replayed.matches == ()


def test_a_crashed_workers_redelivery_is_processed_as_the_first_time(federation):
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    first = _event(federation, FROM, "C", "2026-09-01", "a-1", NOW)
    moved = _event(federation, TO, "M", "2026-09-04", "b-7", NOW)
    token = min(t.key() for t in first.tokens)
    until = NOW + DEFAULT_MAX_AGE
    sightings = [
        Sighting.from_event(e, retention=retention_for(directory, e)) for e in (first, moved)
    ]
    state, _ = core.on_sighting(token, sightings[0], None, None, chain, NOW, origin="A/0/1",
                                seen_until=until)  # fmt: skip
    state, sent = core.on_sighting(token, sightings[1], state, None, chain, NOW, origin="B/0/1",
                                   seen_until=until)  # fmt: skip
    _, again = core.on_sighting(token, sightings[1], state, None, chain, NOW, origin="B/0/1",
                                seen_until=until)  # fmt: skip
    assert again.redelivered and sent.notifications
    assert not again.duplicate, "the same message read again is not refused as a replay"
    assert [n.notification_id for n in again.notifications] == [
        n.notification_id for n in sent.notifications
    ]


def test_seen_ids_survive_the_state_encoding_and_expire_with_the_window(federation):
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    first = _event(federation, FROM, "C", "2026-09-01", "a-1", NOW)
    sighting = Sighting.from_event(first, retention=timedelta(0))  # no agreement keeps it
    state, _ = core.on_sighting("t", sighting, None, None, chain, NOW, origin="A/0/1",
                                seen_until=NOW + DEFAULT_MAX_AGE)  # fmt: skip
    assert state.sighting_count() == 0 and state.remembered(first.event_id) is not None
    encoded = StateCache().encode("t", state)
    assert StateCache().load("t", encoded, lambda key: None) == state
    assert TokenState.from_dict(state.to_dict()) == state
    assert state.live(NOW + DEFAULT_MAX_AGE).remembered(first.event_id) is None
