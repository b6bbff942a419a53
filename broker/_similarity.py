"""Sørensen–Dice similarity of Bloom-filter encodings, on the broker's side.

The connector encodes q-grams of name, date of birth and postcode into a keyed
Bloom filter; the broker compares two filters by Dice,
``2 |A ∩ B| / (|A| + |B|)``, without ever learning what was encoded (DESIGN
sections 5 and 9: the similarity lives here, the encoders in ``connectors``).

One comparison uses Python's ``int.bit_count`` (a single popcount instruction on
the whole filter); comparing one encoding against a block of many uses numpy's
``bitwise_count`` over a byte matrix, which is what keeps large blocks cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from broker._errors import EncodingMismatch, ThresholdInvalid

__all__ = [
    "DEFAULT_DICE_THRESHOLD",
    "DiceAtThreshold",
    "check_threshold",
    "dice",
    "dice_many",
    "popcount",
]

#: Used only when no fit is possible (too few scores) and nothing is configured;
#: published Bloom-filter linkage loses several points of F1 at a guessed value,
#: so ``fit_threshold`` replaces it as soon as there is a distribution to fit.
DEFAULT_DICE_THRESHOLD = 0.8


def popcount(encoding: bytes) -> int:
    """Number of set bits in ``encoding``."""
    return int.from_bytes(encoding, "big").bit_count()


def check_threshold(threshold: float) -> float:
    """Return ``threshold`` if it is a usable similarity threshold, else raise.

    Raises:
        ThresholdInvalid: not a number in [0, 1].
    """
    if not 0.0 <= threshold <= 1.0:  # also false for NaN
        raise ThresholdInvalid(f"threshold {threshold!r} is outside [0, 1]")
    return float(threshold)


def dice(a: bytes, b: bytes) -> float:
    """Sørensen–Dice similarity of two equal-length Bloom filters, in [0, 1].

    Two empty filters score 0.0: an encoding with no bits says nothing about a
    person, so it must never make a match.

    Raises:
        EncodingMismatch: the filters have different lengths.
    """
    if len(a) != len(b):
        raise EncodingMismatch(f"encodings of {len(a)} and {len(b)} bytes cannot be compared")
    left = int.from_bytes(a, "big")
    right = int.from_bytes(b, "big")
    total = left.bit_count() + right.bit_count()
    if total == 0:
        return 0.0
    return 2.0 * (left & right).bit_count() / total


def dice_many(query: bytes, candidates: Sequence[bytes]) -> npt.NDArray[np.float64]:
    """Dice of ``query`` against every candidate, vectorised.

    Candidates whose length differs from the query's score 0.0 rather than raise:
    in a block of many, one stray encoding must not stop the others from being
    compared (``dice`` is the strict single comparison).
    """
    scores = np.zeros(len(candidates), dtype=np.float64)
    same = [i for i, c in enumerate(candidates) if len(c) == len(query)]
    if not same or not query:
        return scores
    q = np.frombuffer(query, dtype=np.uint8)
    matrix = np.frombuffer(b"".join(candidates[i] for i in same), dtype=np.uint8).reshape(
        len(same), len(query)
    )
    common = np.bitwise_count(matrix & q).sum(axis=1, dtype=np.int64)
    totals = np.bitwise_count(matrix).sum(axis=1, dtype=np.int64) + int(
        np.bitwise_count(q).sum(dtype=np.int64)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(totals > 0, 2.0 * common / np.maximum(totals, 1), 0.0)
    scores[same] = values
    return scores


@dataclass(frozen=True, slots=True)
class DiceAtThreshold:
    """The fuzzy comparison: two encodings agree when their Dice reaches ``threshold``.

    Named as splink names its comparisons (``…AtThreshold``); the threshold is
    normally the fitted one (``fit_threshold``), or configuration's override.
    """

    threshold: float = DEFAULT_DICE_THRESHOLD

    def __post_init__(self) -> None:
        check_threshold(self.threshold)

    def score(self, a: bytes, b: bytes) -> float:
        """Dice of ``a`` and ``b`` (see ``dice``)."""
        return dice(a, b)

    def agrees(self, score: float) -> bool:
        """Whether a score is a match at this threshold (inclusive)."""
        return score >= self.threshold
