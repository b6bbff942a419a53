"""The state cache gives exactly what decoding and encoding from scratch would."""

from __future__ import annotations

from collections.abc import Callable

from broker import Sighting, TokenState
from broker._state_cache import StateCache


def test_appending_encodes_as_a_full_encoding_would(sighting_factory: Callable[..., Sighting]):
    cache = StateCache()
    stored: bytes | None = None
    state: TokenState | None = None
    for n in range(5):
        after = (state or TokenState()).add(sighting_factory(f"e{n}", fuzzy=bytes([n]) * 128))
        stored = cache.encode("t", state, stored, after)
        assert stored == after.to_bytes()
        state = cache.load("t", stored)
        assert state == after


def test_a_shrunk_state_is_encoded_in_full(sighting_factory: Callable[..., Sighting]):
    cache = StateCache()
    full = TokenState((sighting_factory("a"), sighting_factory("b")))
    stored = cache.encode("t", None, None, full)
    shrunk = full.without({"a"})
    assert cache.encode("t", full, stored, shrunk) == shrunk.to_bytes()


def test_stale_or_evicted_entries_are_decoded_again(sighting_factory: Callable[..., Sighting]):
    cache = StateCache(capacity=1)
    one = TokenState((sighting_factory("a"),))
    two = TokenState((sighting_factory("b"),))
    cache.encode("t", None, None, one)
    assert cache.load("t", two.to_bytes()) == two, "other bytes stored: the cache is stale"
    cache.encode("u", None, None, one)  # evicts "t"
    assert cache.load("t", one.to_bytes()) == one
    assert cache.load("t", None) is None
