"""Erasure against read order: an event published before an erasure but read after it.

The broker reads each council's topic at its own pace, so an event council A
published before council B published a resident's erasure request can be read
after it (A's topic lagging). The erasure removed the subject's state; the late
event must not put it back, nor be disclosed once the resident grants again.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from broker import Matcher, Sighting
from broker._partition import PartitionCore, retention_for
from connectors import EventFactory, SourceRow, Tokeniser
from consent import AuditChain, ChainHead, ConsentLedger
from schemas import CitizenEvent, ConsentRecord, ConsentState
from tests.broker.test_partition import FROM, KEY, MAPPING, NOW, PERSON, TO, _event, federation  # noqa: F401

ERASED_AT = NOW + timedelta(minutes=1)
GRANTED_AT = NOW + timedelta(minutes=2)
READ_AT = NOW + timedelta(minutes=3)


def _published(federation, council: str, code: str, when: str, ref: str, at) -> CitizenEvent:
    factory = EventFactory(council, federation.signing_key(council), federation.load(NOW),
                           Tokeniser([KEY]), KEY)  # fmt: skip
    row = SourceRow("x.csv", 1, {**PERSON, "e": code, "t": when, "ref": ref})
    return factory.event(row, MAPPING, now=at)


def _ledger(federation, *, regrant: bool) -> ConsentLedger:
    tokens = _event(federation, TO, "M", "2026-09-04", "r").tokens
    erasure = ConsentRecord(
        "e" * 32, TO, tokens, "*", ConsentState.ERASURE_REQUESTED, ERASED_AT, ERASED_AT, 1
    )
    records = [erasure]
    if regrant:
        records.append(replace(erasure, record_id="f" * 32, state=ConsentState.GRANTED,
                               recorded_at=GRANTED_AT, published_at=GRANTED_AT))  # fmt: skip
    return ConsentLedger.from_records(records)


def _core(federation):
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    return directory, core, AuditChain(ChainHead("test/0"), federation.signing_key("broker"))


def _sight(core, directory, token, event, state, consent, chain):
    sighting = Sighting.from_event(event, retention=retention_for(directory, event))
    return core.on_sighting(
        token, sighting, state, consent, chain, READ_AT,
        origin=f"fed.events.{event.source_council}/0/{event.event_id[:8]}",
        seen_until=event.published_at + timedelta(days=30),
        published_at=event.published_at,
    )  # fmt: skip


def test_an_event_published_before_an_erasure_and_read_after_it_is_not_kept(federation):
    directory, core, chain = _core(federation)
    late = _event(federation, FROM, "C", "2026-09-01", "a-1")  # published at NOW
    assert late.published_at < ERASED_AT
    token = min(t.key() for t in late.tokens)
    state, effects = _sight(core, directory, token, late, None, _ledger(federation, regrant=False),
                            chain)  # fmt: skip
    assert state.sighting_count() == 0, "the erased subject's state came back"
    assert effects.matches == () and effects.notifications == []
    assert state.remembered(late.event_id) is not None, "a replay of it is still a duplicate"


def test_a_late_pre_erasure_event_is_not_disclosed_after_the_resident_grants_again(federation):
    directory, core, chain = _core(federation)
    consent = _ledger(federation, regrant=True)
    late = _event(federation, FROM, "C", "2026-09-01", "a-1")  # published at NOW
    fresh = _published(federation, TO, "M", "2026-09-10", "b-7", READ_AT)  # after the grant
    token = min(t.key() for t in late.tokens)
    state, _ = _sight(core, directory, token, late, None, consent, chain)
    state, effects = _sight(core, directory, token, fresh, state, consent, chain)
    disclosed = {e.event_id for n in effects.notifications for e in n.events}
    assert late.event_id not in disclosed
    assert state.sighting_count() == 1, "the event published after the grant is kept"


def test_an_event_published_after_the_erasure_is_kept(federation):
    directory, core, chain = _core(federation)
    fresh = _published(federation, TO, "M", "2026-09-10", "b-7", READ_AT)
    token = min(t.key() for t in fresh.tokens)
    state, _ = _sight(core, directory, token, fresh, None, _ledger(federation, regrant=False),
                      chain)  # fmt: skip
    assert state.sighting_count() == 1


def test_two_erasures_published_out_of_their_recorded_order_still_erase_a_late_event(federation):
    """Attack: a clerk's erasure (recorded 00:01) is published late (00:10), after another's.

    The second request (recorded 00:05, published 00:06) ranks latest and was
    the only one kept, so an event published at 00:08 and read late was taken
    as published after every erasure: kept, matched, and once the resident
    granted again (00:07) disclosed, though read in publication order the
    00:10 erasure removes it.
    """
    directory, core, chain = _core(federation)
    tokens = _event(federation, TO, "M", "2026-09-04", "r").tokens
    first = ConsentRecord("e" * 32, TO, tokens, "*", ConsentState.ERASURE_REQUESTED,
                          NOW + timedelta(minutes=1), NOW + timedelta(minutes=10), 1)  # fmt: skip
    second = replace(first, record_id="d" * 32, recorded_at=NOW + timedelta(minutes=5),
                     published_at=NOW + timedelta(minutes=6))  # fmt: skip
    at = NOW + timedelta(minutes=7)
    regrant = replace(first, record_id="f" * 32, state=ConsentState.GRANTED, recorded_at=at,
                      published_at=at)  # fmt: skip
    late = _published(federation, FROM, "C", "2026-09-01", "a-1", NOW + timedelta(minutes=8))
    fresh = _published(federation, TO, "M", "2026-09-10", "b-7", NOW + timedelta(minutes=11))
    for order in ([first, second], [second, first]):
        consent = ConsentLedger.from_records([*order, regrant])
        token = min(t.key() for t in late.tokens)
        state, effects = _sight(core, directory, token, late, None, consent, chain)
        assert state.sighting_count() == 0, "the erased subject's state came back"
        state, effects = _sight(core, directory, token, fresh, state, consent, chain)
        disclosed = {e.event_id for n in effects.notifications for e in n.events}
        assert late.event_id not in disclosed
        assert state.sighting_count() == 1, "the event published after both is kept"
