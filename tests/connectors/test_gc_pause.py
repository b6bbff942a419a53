"""gc_paused turns the cyclic collector off for its block and restores what it found."""

from __future__ import annotations

import gc

import pytest

from connectors._gc_pause import gc_paused


def test_the_collector_is_off_inside_and_back_on_after():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_nested_pauses_and_a_raising_block_leave_the_collector_as_found():
    with pytest.raises(ZeroDivisionError), gc_paused():
        with gc_paused():
            pass
        assert not gc.isenabled()  # the inner pause did not turn it back on
        raise ZeroDivisionError
    assert gc.isenabled()


def test_a_collector_already_off_stays_off():
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
