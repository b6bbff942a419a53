"""Encodings of two parameter sets (clk-v1, clk-v2) are never compared by the broker."""

from __future__ import annotations

import os

from broker import Matcher, Sighting, match_batch, run_batch
from schemas import DEFAULT_ENCODING


def test_sightings_of_different_encodings_are_neither_matched_nor_scored(sighting_factory):
    fuzzy = os.urandom(128)  # identical bytes: Dice 1.0 if they were ever compared
    old = sighting_factory("ev-old", blocking=("blk:1:aa",), fuzzy=fuzzy, encoding="clk-v1")
    new = sighting_factory("ev-new", blocking=("blk:1:aa",), fuzzy=fuzzy, encoding="clk-v2")
    again = sighting_factory("ev-again", blocking=("blk:1:aa",), fuzzy=fuzzy, encoding="clk-v2")
    result = run_batch([old, new], Matcher(0.5))
    assert result.matches == () and result.scores == ()
    pairs = {m.event_ids for m in match_batch([old, new, again], 0.5)}
    assert pairs == {("ev-again", "ev-new")}


def test_exact_tokens_still_match_across_encodings(sighting_factory):
    old = sighting_factory("ev-old", tokens=("nhs:1:aa",), encoding="clk-v1")
    new = sighting_factory("ev-new", tokens=("nhs:1:aa",), encoding="clk-v2")
    assert [m.method for m in match_batch([old, new], 0.99)] == ["exact"]


def test_the_encoding_survives_state_round_trips_and_old_rows_read_as_clk_v1(sighting_factory):
    new = sighting_factory("ev-new", blocking=("blk:1:aa",), fuzzy=b"\x01" * 128,
                           encoding="clk-v2")  # fmt: skip
    assert Sighting.from_dict(new.to_dict()) == new
    assert Sighting.from_row(new.to_row()) == new
    before_v3 = new.to_row()[:-1]  # state written by a broker of the previous release
    assert Sighting.from_row(before_v3).encoding == DEFAULT_ENCODING == "clk-v1"
    legacy_dict = {k: v for k, v in new.to_dict().items() if k != "encoding"}
    assert Sighting.from_dict(legacy_dict).encoding == "clk-v1"
