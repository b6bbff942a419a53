"""clk-v2: independent keyed positions, keyed diffusion, versioned, batch = single."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from connectors import BLOOM_BITS, ENCODING, BloomEncoder, bigrams
from connectors._bloom import _diffusion_taps, _positions

SECRET = b"s" * 32
FIELDS = {"given_name": "robert", "family_name": "smith", "date_of_birth": "1980-03-04",
          "postcode": "M1 1AE"}  # fmt: skip


def test_the_parameter_set_is_named():
    assert ENCODING == "clk-v2"


def test_positions_are_not_an_arithmetic_progression():
    """Double hashing (h1 + i*h2) gave every bigram's positions a constant step mod bits;
    an operator could enumerate all 1024 x 512 such patterns. No bigram may keep one."""
    progressions = 0
    for gram in bigrams("abcdefghijklmnopqrstuvwxyz"):
        positions = _positions(SECRET, "family_name", gram, 14, BLOOM_BITS)
        assert len(positions) == 14
        steps = {(b - a) % BLOOM_BITS for a, b in pairwise(positions)}
        progressions += len(steps) == 1
    assert progressions == 0


def test_positions_are_keyed_and_field_separated():
    mine = _positions(SECRET, "family_name", "sm", 14, BLOOM_BITS)
    assert mine != _positions(b"o" * 32, "family_name", "sm", 14, BLOOM_BITS)
    assert mine != _positions(SECRET, "given_name", "sm", 14, BLOOM_BITS)
    assert len(_positions(SECRET, "x", "sm", 40, BLOOM_BITS)) == 40  # more than one block


def test_diffusion_feeds_every_input_bit_equally_and_is_keyed():
    taps = _diffusion_taps(SECRET, BLOOM_BITS, 3)
    assert taps.shape == (BLOOM_BITS, 3)
    assert np.bincount(taps.ravel(), minlength=BLOOM_BITS).tolist() == [3] * BLOOM_BITS
    assert not np.array_equal(taps, _diffusion_taps(b"o" * 32, BLOOM_BITS, 3))


def test_encodings_are_balanced_so_no_bit_marks_a_bigram():
    """About half the bits set (a plain CLK of these fields sets about a quarter)."""
    encoder = BloomEncoder(SECRET)
    names = ["smith", "jones", "patel", "okonkwo", "li", "fitzgerald-smythe"]
    for name in names:
        encoded = encoder.encode({**FIELDS, "family_name": name})
        assert len(encoded) == BLOOM_BITS // 8
        ones = int.from_bytes(encoded, "little").bit_count()
        assert 0.35 * BLOOM_BITS < ones < 0.65 * BLOOM_BITS


def test_batch_equals_single_and_is_deterministic():
    encoder = BloomEncoder(SECRET)
    records = [FIELDS, {**FIELDS, "family_name": "smiht"}, {"postcode": "OL1 3AB"}]
    assert encoder.encode_many(records) == [encoder.encode(r) for r in records]
    assert encoder.encode_many([]) == []
    assert BloomEncoder(SECRET).encode(FIELDS) == encoder.encode(FIELDS)
    assert BloomEncoder(b"o" * 32).encode(FIELDS) != encoder.encode(FIELDS)


def test_the_secret_is_not_in_the_repr():
    assert SECRET.hex() not in repr(BloomEncoder(SECRET))
    assert repr(SECRET) not in repr(BloomEncoder(SECRET))


def _dice(a: bytes, b: bytes) -> float:
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    return 2 * (x & y).bit_count() / (x.bit_count() + y.bit_count())


def test_given_and_family_names_swapped_by_a_clerk_still_score_high():
    """Both names share one key: a swap moves no bit of either name."""
    encoder = BloomEncoder(SECRET)
    swapped = {**FIELDS, "given_name": "smith", "family_name": "robert"}
    other = {**FIELDS, "given_name": "ayesha", "family_name": "khan"}
    score = _dice(encoder.encode(FIELDS), encoder.encode(swapped))
    assert score > 0.9
    assert score > _dice(encoder.encode(FIELDS), encoder.encode(other)) + 0.2
