"""An event id is its own council's: no council can have another's event dropped as a replay.

The broker deduplicates on event ids. Ids are digests the connector makes from
the event's council, system, reference, type and time, but nothing checked that
an event carried its own: council A could sign an event about a resident under
council B's id, publish it first, and B's real event was then taken for its
replay and silently suppressed (hostile review).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from broker import Matcher, Rejected
from broker._admission import AdmissionPolicy, admit
from broker._partition import PartitionCore, retention_for
from broker._sightings import Sighting
from consent import AuditChain, ChainHead, seal_envelope
from schemas import CitizenEvent, Codec, SignatureDomain, event_id_bound
from tests.broker.test_partition import FROM, NOW, TO, _event, federation

__all__ = ["federation"]


def _published(federation, council: str, event: CitizenEvent) -> tuple[str, bytes]:
    raw = seal_envelope(SignatureDomain.EVENT, event, federation.signing_key(council), council,
                        codec=Codec())  # fmt: skip
    return f"fed.events.{council}", raw


def _admit(federation, topic: str, raw: bytes) -> CitizenEvent:
    record = admit(raw, topic=topic, directory=federation.load(NOW), codec=Codec(), now=NOW,
                   policy=AdmissionPolicy())  # fmt: skip
    assert isinstance(record, CitizenEvent)
    return record


def test_another_councils_event_id_is_refused_and_the_real_event_is_not_a_duplicate(federation):
    real = _event(federation, TO, "M", "2026-09-04", "b-7")
    # Council A, holding the linkage key, writes about the same resident under B's id.
    forged = replace(_event(federation, FROM, "C", "2026-09-01", "a-1"), event_id=real.event_id)
    arrivals = [_published(federation, FROM, forged), _published(federation, TO, real)]
    core = PartitionCore(federation.load(NOW), Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    token = min(t.key() for t in real.tokens)
    state, outcomes = None, []
    for offset, (topic, raw) in enumerate(arrivals):
        try:
            event = _admit(federation, topic, raw)
        except Rejected as refused:
            outcomes.append(refused.reason)
            continue
        sighting = Sighting.from_event(event, retention=retention_for(core.directory, event))
        state, effects = core.on_sighting(
            token, sighting, state, None, chain, NOW, origin=f"{topic}/0/{offset}",
            seen_until=NOW + timedelta(days=30),
        )  # fmt: skip
        outcomes.append("duplicate" if effects.duplicate else "kept")
    assert outcomes == ["event-id-unbound", "kept"]
    assert state is not None and [s.source_council for s in state.sightings] == [TO]


@pytest.mark.parametrize(
    "change",
    [
        {"occurred_at": NOW - timedelta(days=3)},  # moved in time under the same id
        {"source_ref": "0" * 32},
        {"source_system": "housing"},
        {"event_id": "0" * 32},
    ],
    ids=["time", "reference", "system", "id"],
)
def test_an_id_that_is_not_the_events_own_is_refused_even_from_its_own_council(federation, change):
    event = replace(_event(federation, FROM, "C", "2026-09-01", "a-1"), **change)
    with pytest.raises(Rejected) as caught:
        _admit(federation, *_published(federation, FROM, event))
    assert caught.value.reason == "event-id-unbound"


def test_the_connectors_ids_survive_the_wire_in_summer_and_winter(federation):
    """The id hashes the time's ISO form: it must read back the same after Avro."""
    codec = Codec()
    for when in ("2026-07-01", "2026-07-01T09:30:15.123456", "2026-01-15T23:59:59+01:00"):
        event = _event(federation, FROM, "C", when, "a-1")
        assert event_id_bound(event)
        assert event_id_bound(codec.decode(codec.encode(event)))
        assert event.occurred_at.tzinfo is UTC
        assert isinstance(_admit(federation, *_published(federation, FROM, event)), CitizenEvent)


def test_an_events_id_does_not_depend_on_how_its_time_was_written(federation):
    a = _event(federation, FROM, "C", "2026-07-01T09:30:00+01:00", "a-1")
    b = _event(federation, FROM, "C", "2026-07-01T08:30:00Z", "a-1")
    assert a.event_id == b.event_id and a.occurred_at == b.occurred_at == datetime(
        2026, 7, 1, 8, 30, tzinfo=UTC
    )
