"""Token states as references, sightings stored once per partition (issue 15 item 1).

The tables here are dicts that count their reads and writes: what a Faust
table would send to its changelog is one record per write or delete.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from broker import Sighting, StateInvalid, TokenState
from broker._sightings import Seen
from broker._state_cache import StateBatch, StateCache, decode_state
from broker._sweep import _is_token
from schemas import EventType, SealedPayload
from tests.broker.conftest import T0


def _kind(key: str) -> str:
    return "state" if _is_token(key) else "row"


class Table(dict[str, bytes | None]):
    """The worker's one table of states and rows, counting what it is asked by kind,
    as the changelog would see it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.deletes: Counter[str] = Counter()

    def get(self, key, default=None):  # type: ignore[no-untyped-def, override]
        self.reads[_kind(key)] += 1
        return super().get(key, default)

    def __setitem__(self, key: str, value: bytes | None) -> None:
        self.writes[_kind(key)] += 1
        super().__setitem__(key, value)

    def pop(self, key, default=None):  # type: ignore[no-untyped-def, override]
        self.deletes[_kind(key)] += 1
        return super().pop(key, default)

    def rows(self) -> list[str]:
        return [key for key in self if _kind(key) == "row"]


def _payload(n: int) -> SealedPayload:
    return SealedPayload("E08000009.revenues", "agr", b"e" * 32, bytes([n]) * 900, ("name",))


@pytest.fixture
def make(sighting_factory: Callable[..., Sighting]) -> Callable[..., Sighting]:
    def sighting(n: int, **fields: object) -> Sighting:
        values: dict[str, object] = {
            "fuzzy": bytes([n]) * 128,
            "sealed": (_payload(n),),
            "expires_at": T0 + timedelta(days=30),
        }
        values.update(fields)
        return sighting_factory(f"ev-{n}", **values)

    return sighting


def test_each_sighting_is_stored_once_however_many_tokens_hold_it(make):
    table = Table()
    batch = StateBatch(table, StateCache(), 0)
    events = [make(n) for n in range(5)]
    for token in ("exact", "block-1", "block-2"):
        state = batch.get(token) or TokenState()
        for sighting in events:
            state = state.add(sighting)
        batch.set(token, state)
    batch.get("untouched")
    assert batch.flush() == (3, 5)
    assert (table.reads["state"], table.writes["state"], table.writes["row"]) == (4, 3, 5)
    # a restarted worker (nothing in memory) reads the same states back
    fresh = StateBatch(table, StateCache(), 0)
    for token in ("exact", "block-1", "block-2"):
        assert fresh.get(token) == TokenState(tuple(events))


def test_a_token_state_holds_references_not_payloads(make):
    table = Table()
    batch = StateBatch(table, StateCache(), 0)
    state = TokenState()
    for n in range(20):
        state = state.add(make(n))
    batch.set("busy", state)
    batch.flush()
    stored = table["busy"] or b""
    assert len(stored) < 20 * 60  # an id and a digest per sighting
    assert b"ev-3" in stored and b"revenues" not in stored
    # one more sighting rewrites the references, never the 20 stored rows
    more = StateBatch(table, StateCache(), 0)
    more.set("busy", (more.get("busy") or TokenState()).add(make(20)))
    assert more.flush() == (1, 1)
    assert table.writes["row"] == 21


def test_an_erased_sighting_loses_its_row_and_no_other_token_serves_it(make):
    table = Table()
    cache = StateCache()
    kept, erased = make(1), make(2)
    batch = StateBatch(table, cache, 0)
    for token in ("a", "b"):
        batch.set(token, TokenState((kept, erased)))
    batch.flush()
    # erasure reaches token "a" first (its cascade reaches "b" later)
    batch = StateBatch(table, cache, 0)
    batch.set("a", (batch.get("a") or TokenState()).without({"ev-2"}))
    assert batch.flush() == (1, 0)
    assert table.deletes["row"] == 1 and len(table.rows()) == 1
    assert [
        s.event_id for s in (StateBatch(table, cache, 0).get("b") or TokenState()).sightings
    ] == ["ev-1"]
    restarted = StateBatch(table, StateCache(), 0)
    assert (restarted.get("b") or TokenState()).sightings == (kept,)


def test_an_expired_sighting_loses_its_row(make):
    table = Table()
    old = make(1, expires_at=T0 + timedelta(days=1))
    batch = StateBatch(table, StateCache(), 0)
    batch.set("t", TokenState((old, make(2))))
    batch.flush()
    batch = StateBatch(table, StateCache(), 0)
    batch.set("t", (batch.get("t") or TokenState()).live(T0 + timedelta(days=2)).add(make(3)))
    assert batch.flush() == (1, 1)
    assert sorted(k.split("/")[0] for k in table.rows()) == ["ev-2", "ev-3"]
    assert all(k.endswith("/0") for k in table.rows()), "each row's key names its partition"


def test_two_events_claiming_one_id_keep_their_own_rows(make):
    table = Table()
    first = make(1)
    forged = Sighting(first.event_id, "E08000006", "other-ref", EventType.RENT_ARREARS, T0, 3)
    batch = StateBatch(table, StateCache(), 0)
    batch.set("a", TokenState((first,)))
    batch.set("b", TokenState((forged,)))
    assert batch.flush() == (2, 2)
    fresh = StateBatch(table, StateCache(), 0)
    assert (fresh.get("a") or TokenState()).sightings == (first,)
    assert (fresh.get("b") or TokenState()).sightings == (forged,)


def test_seen_ids_survive_and_a_stale_cache_is_decoded_again(make):
    table = Table()
    cache = StateCache(capacity=1)
    seen = Seen("ev-9", "fed.events.X/0/9", T0 + timedelta(days=30))
    batch = StateBatch(table, cache, 0)
    batch.set("t", TokenState((make(1),), (seen,)))
    batch.set("u", TokenState((make(2),)))  # evicts "t" from a cache of one
    batch.flush()

    def read(key: str) -> bytes | None:
        return table.get(f"{key}/0")

    assert StateCache().load("t", table["t"], read) == TokenState((make(1),), (seen,))
    other = StateCache()
    table["t"] = other.encode("t", TokenState((make(3),)))  # written elsewhere
    table.update({f"{other.keyed(make(3))[0]}/0": other.keyed(make(3))[1]})
    assert cache.load("t", table["t"], read) == TokenState((make(3),))
    assert cache.load("t", None, read) is None
    assert StateCache().load("u", table["u"], read) == TokenState((make(2),))


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"{}",
        b'[["e", "f"]]',
        b"[[7]]",
        # a whole sighting inline: the per-token format of an earlier release
        b'[["e", "c", "r", "address-change", "2026-06-01T00:00:00+00:00", 1, [], [], null, {},'
        b" [], null]]",
    ],
)
def test_bad_state_bytes_are_refused(data):
    with pytest.raises(StateInvalid) as caught:
        decode_state(data, lambda key: None)
    assert caught.value.reason == "state-invalid"


def test_a_bad_sighting_row_is_refused(make):
    table = Table()
    cache = StateCache()
    table["t"] = cache.encode("t", TokenState((make(1),)))
    key = cache.keyed(make(1))[0]
    for junk in (b"not json", b"{}", b'["e"]'):
        table[f"{key}/0"] = junk
        with pytest.raises(StateInvalid):
            StateBatch(table, StateCache(), 0).get("t")


def test_rows_and_their_deletions_are_queued_before_the_states(make):
    """A worker killed between them leaves nothing that names a missing row."""
    order: list[str] = []

    class Logged(Table):
        def __setitem__(self, key: str, value: bytes | None) -> None:
            order.append(_kind(key))
            super().__setitem__(key, value)

        def pop(self, key, default=None):  # type: ignore[no-untyped-def, override]
            order.append(f"{_kind(key)}-deleted")
            return super().pop(key, default)

    table = Logged()
    cache = StateCache()
    batch = StateBatch(table, cache, 0)
    batch.set("a", TokenState((make(1), make(2))))
    batch.flush()
    assert order == ["row", "row", "state"]
    order.clear()
    batch = StateBatch(table, cache, 0)
    batch.set("a", (batch.get("a") or TokenState()).without({"ev-1"}).add(make(3)))
    batch.set("b", TokenState((make(3),)))
    batch.flush()
    assert order == ["row-deleted", "row", "state", "state"]
    order.clear()
    # A token the sweep emptied is deleted after every row and state of the batch.
    batch = StateBatch(table, cache, 0)
    batch.drop("b")
    batch.set("a", (batch.get("a") or TokenState()).add(make(4)))
    batch.flush()
    assert order == ["row", "state", "state-deleted"]
    assert "b" not in table
