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


def _clk_v2_reference(secret: bytes, fields: dict[str, str]) -> bytes:
    """clk-v2 as first released (one record at a time), kept as the oracle for the batch."""
    array = np.zeros(BLOOM_BITS, dtype=np.bool_)
    for name, value in sorted(fields.items()):
        k = {"given_name": 12, "family_name": 14, "date_of_birth": 8, "postcode": 6}.get(name, 4)
        keyed = "name" if name in ("given_name", "family_name") else name
        hits: list[int] = []
        for gram in set(bigrams(value)):
            hits.extend(_positions(secret, keyed, gram, k, BLOOM_BITS))
        array[hits] = True
    taps = _diffusion_taps(secret, BLOOM_BITS, 3)
    diffused = np.bitwise_xor.reduce(array[taps], axis=-1)
    return np.packbits(diffused, bitorder="little").tobytes()


def _many_records(count: int) -> list[dict[str, str]]:
    rng = np.random.default_rng(20261202)
    alphabet = list("abcdefghijklmnopqrstuvwxyz' -") + ["é", "ł", "ß"]
    records = []
    for i in range(count):

        def word(lo: int, hi: int) -> str:
            return "".join(rng.choice(alphabet, size=int(rng.integers(lo, hi))))

        record = {"given_name": word(1, 9), "family_name": word(1, 14),
                  "date_of_birth": f"19{i % 100:02d}-0{i % 9 + 1}-1{i % 10}",
                  "postcode": f"M{i % 40} {i % 10}AE", "address": word(0, 30)}  # fmt: skip
        # Some records lack fields, some are empty, as real rows are.
        for name in list(record)[: i % 6]:
            if rng.random() < 0.3:
                del record[name]
        records.append(record)
    return records


def test_batch_encoding_is_bit_identical_to_the_released_clk_v2_on_many_rows():
    """The connector and ``link`` encode in batches; the broker compares against encodings
    made one at a time (and by other councils): not one bit may differ."""
    records = _many_records(3000)
    for secret in (SECRET, b"o" * 32):
        encoder = BloomEncoder(secret)
        expected = [_clk_v2_reference(secret, r) for r in records]
        assert encoder.encode_many(records) == expected
        assert encoder.encode_many(iter(records[:5])) == expected[:5]
        assert [encoder.encode(r) for r in records[:50]] == expected[:50]
    assert BloomEncoder(SECRET).encode({}) == _clk_v2_reference(SECRET, {})


def test_batches_larger_than_one_chunk_keep_their_order(monkeypatch):
    monkeypatch.setattr("connectors._bloom.ENCODE_CHUNK", 7)
    records = _many_records(30)
    encoder = BloomEncoder(SECRET)
    assert encoder.encode_many(records) == [_clk_v2_reference(SECRET, r) for r in records]
