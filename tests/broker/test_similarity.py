"""Dice on Bloom-filter bytes: the exact formula, edge cases, vector = scalar."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker import DiceAtThreshold, EncodingMismatch, ThresholdInvalid, dice, dice_many, popcount


def test_dice_formula_on_known_bits():
    a = bytes([0b1111_0000])
    b = bytes([0b1100_1100])
    assert popcount(a) == 4
    assert dice(a, b) == pytest.approx(2 * 2 / 8)


def test_identical_is_one_disjoint_is_zero_empty_is_zero():
    a = os.urandom(64)
    assert dice(a, a) == 1.0
    assert dice(b"\x0f", b"\xf0") == 0.0
    assert dice(bytes(8), bytes(8)) == 0.0


def test_lengths_must_match():
    with pytest.raises(EncodingMismatch) as caught:
        dice(b"\x01", b"\x01\x02")
    assert caught.value.reason == "encoding-mismatch"


@given(st.binary(min_size=16, max_size=16), st.lists(st.binary(min_size=16, max_size=16)))
def test_vectorised_equals_scalar(query, candidates):
    assert dice_many(query, candidates).tolist() == pytest.approx(
        [dice(query, c) for c in candidates]
    )


def test_vectorised_scores_stray_lengths_zero():
    a = os.urandom(32)
    assert dice_many(a, [a, b"short", a]).tolist() == [1.0, 0.0, 1.0]
    assert dice_many(a, []).tolist() == []


def test_dice_at_threshold():
    comparison = DiceAtThreshold(0.9)
    assert comparison.agrees(0.9) and not comparison.agrees(0.89)
    assert comparison.score(b"\xff", b"\xff") == 1.0
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ThresholdInvalid):
            DiceAtThreshold(bad)
