"""The worker's garbage-collection policy: survivors frozen, cycles still reclaimed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from broker._gc_policy import FrozenHeap, GcStep, after_full_collection


class Node:
    """A weak-referenceable object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def pauses() -> Iterator[list[tuple[int, float]]]:
    seen: list[tuple[int, float]] = []
    heap = FrozenHeap(observe=lambda generation, seconds: seen.append((generation, seconds)))
    gc.collect()
    heap.install()
    try:
        yield seen
    finally:
        heap.uninstall()


def test_freezes_until_the_frozen_set_outgrows_the_last_full_scan() -> None:
    assert after_full_collection(1_000, 0, 2.0) is GcStep.FREEZE  # no full scan yet
    assert after_full_collection(2_000, 1_000, 2.0) is GcStep.FREEZE
    assert after_full_collection(2_001, 1_000, 2.0) is GcStep.RESCAN


def test_a_full_collection_freezes_its_survivors_and_is_timed(
    pauses: list[tuple[int, float]],
) -> None:
    frozen_before = gc.get_freeze_count()  # what install froze
    survivor = [Node() for _ in range(1_000)]
    gc.collect()
    assert gc.get_freeze_count() - frozen_before >= len(survivor)  # frozen by the callback
    assert any(generation == 2 and seconds >= 0 for generation, seconds in pauses)
    assert not gc.garbage


def test_an_acyclic_object_frozen_and_dropped_is_freed_at_once(
    pauses: list[tuple[int, float]],
) -> None:
    node = Node()
    gone = weakref.ref(node)
    gc.collect()
    del node
    assert gone() is None  # reference counting still frees what is frozen


def test_a_cycle_that_dies_while_frozen_is_reclaimed_once_the_frozen_set_doubles() -> None:
    heap = FrozenHeap(growth=2.0, count_every_s=0)
    gc.collect()
    heap.install()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        gc.collect()  # the first full collection: a and b are frozen
        del a, b
        gc.collect()
        assert gone() is not None, "a frozen cycle waits for the next full scan"
        grown = [[] for _ in range(2 * gc.get_freeze_count())]  # the heap more than doubles
        gc.collect()  # frozen set doubled: unfrozen for a full scan
        gc.collect()  # which reclaims the dead cycle
        assert gone() is None
        assert gc.get_freeze_count() >= len(grown)  # and then freezes again
        assert heap.frozen() == gc.get_freeze_count()  # as counted then, not at each scrape
    finally:
        heap.uninstall()
