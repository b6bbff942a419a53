"""The operator's attacks on Bloom-filter encodings: mine bigram patterns, align, re-identify.

The attacker holds encodings, knows the parameters (bits, ``k`` per field,
bigrams; Kerckhoffs) and a public surname list with frequencies, not the key.
Two ways to find the bit patterns of frequent surname bigrams:

* ``enumerated_patterns`` (Christen et al. 2017, for double hashing): every
  bigram's ``k`` positions are ``h1 + i*h2 mod bits``, so there are only
  ``bits * bits/2`` candidate patterns; count the records that set all of each
  and keep the frequent ones.
* ``mined_patterns`` (after Vidanage et al. 2019, any hashing): grow frequent
  itemsets of positions greedily from every seed position, keep the ``k``-sets
  whose support holds steady as they grow (a true bigram's bits all come
  together).

``align`` then groups records by the set of patterns they contain (a surname's
bigrams), and assigns surnames to groups from the most frequent down, by
frequency and by bigram consistency (a pattern stands for one bigram, so a
label given to one group constrains every other), re-identifying each group.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench._privacy_people import SurnameList
from connectors import bigrams

__all__ = [
    "LEGACY_FIELD_HASHES",
    "Pattern",
    "align",
    "bit_matrix",
    "enumerated_patterns",
    "legacy_clk_v1",
    "mined_patterns",
]

Bits = npt.NDArray[np.bool_]
LEGACY_FIELD_HASHES = {"given_name": 12, "family_name": 14, "date_of_birth": 8, "postcode": 6}
_FAMILY_K = LEGACY_FIELD_HASHES["family_name"]
_STABLE = 0.8  # support of a k-pattern over support of its (k-2)-prefix
_SEED_CHUNK = 32
_COMMON = 0.5  # positions set in more than this share of records are mined out
_PASSES = 2  # a second pass uses what the first pinned down
_EXTRA_PENALTY = 3.0  # nats: one spurious pattern in a group
_FREQUENCY_RATIO = 4.0  # a group and a surname's expected count may differ this much


def legacy_clk_v1(secret: bytes, fields: Mapping[str, str], bits: int = 1024) -> bytes:
    """The encoding main used at ``a0b9835`` (double hashing), kept here to be attacked."""
    array = 0
    for name, value in sorted(fields.items()):
        k = LEGACY_FIELD_HASHES.get(name, 4)
        key = hmac.new(secret, b"bloom-field:" + name.encode(), hashlib.sha256).digest()
        for gram in bigrams(value):
            digest = hmac.digest(key, gram.encode(), "sha256")
            h1 = int.from_bytes(digest[:8], "little")
            h2 = int.from_bytes(digest[8:16], "little") | 1
            for i in range(k):
                array |= 1 << ((h1 + i * h2) % bits)
    return array.to_bytes(bits // 8, "little")


def bit_matrix(encodings: Sequence[bytes]) -> Bits:
    """Records x bit positions, bit ``i`` = bit ``i % 8`` of byte ``i // 8``."""
    raw = np.frombuffer(b"".join(encodings), dtype=np.uint8).reshape(len(encodings), -1)
    return np.unpackbits(raw, axis=1, bitorder="little").astype(np.bool_)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A candidate bigram: its positions and the records that set all of them."""

    positions: tuple[int, ...]
    records: Bits


Words = npt.NDArray[np.uint64]


def _columns(matrix: Bits) -> Words:
    """Per position, the set of records that set it, 64 records to a word."""
    n, bits = matrix.shape
    padded = np.zeros((bits, -(-n // 64) * 64), dtype=np.bool_)
    padded[:, :n] = matrix.T
    return np.packbits(padded, axis=1).view(np.uint64)


def _records(words: Words, n: int) -> Bits:
    return np.unpackbits(words.view(np.uint8), count=n).astype(np.bool_)


def _support(packed: Words) -> npt.NDArray[np.int64]:
    return np.bitwise_count(packed).sum(axis=-1, dtype=np.int64)


def _dedupe(found: list[Pattern], records: int) -> list[Pattern]:
    by_records: dict[bytes, Pattern] = {}
    for pattern in found:
        by_records.setdefault(np.packbits(pattern.records).tobytes(), pattern)
    del records
    return list(by_records.values())


def enumerated_patterns(matrix: Bits, *, min_support: int, k: int = _FAMILY_K) -> list[Pattern]:
    """Every double-hashing pattern with ``k`` positions set in at least ``min_support`` records."""
    n, bits = matrix.shape
    cols = _columns(matrix)
    h1 = np.arange(bits)[:, None]
    steps = np.arange(k)[None, :]
    found: list[Pattern] = []
    for h2 in range(1, bits, 2):
        positions = (h1 + steps * h2) % bits  # (bits, k)
        gathered = cols[positions]  # (bits, k, words)
        middle = np.bitwise_and.reduce(gathered[:, 2 : k - 2], axis=1)
        prefix = middle & gathered[:, 0] & gathered[:, 1]
        suffix = middle & gathered[:, k - 2] & gathered[:, k - 1]
        full = prefix & suffix
        support = _support(full)
        # A true pattern's records set every position; a pattern shifted off a
        # true one (or off a shorter field's) loses most of them at one end.
        before = np.maximum(_support(prefix), _support(suffix))
        keep = np.nonzero((support >= min_support) & (support >= _STABLE * before))[0]
        for row in keep:
            records = _records(full[row], n)
            found.append(Pattern(tuple(int(p) for p in positions[row]), records))
    return _dedupe(found, n)


def mined_patterns(matrix: Bits, *, min_support: int, k: int = _FAMILY_K) -> list[Pattern]:
    """Frequent, closed ``k``-itemsets of positions, grown greedily from every seed.

    Positions set in most records (the date-of-birth bigrams everyone shares,
    such as "19") are left out first, or every itemset would collect them.
    """
    n, bits = matrix.shape
    cols = _columns(matrix)
    column_support = _support(cols)
    usable = (column_support >= min_support) & (column_support <= _COMMON * n)
    found: dict[frozenset[int], Pattern] = {}
    seeds_all = np.nonzero(usable)[0]
    for start in range(0, len(seeds_all), _SEED_CHUNK):
        seeds = seeds_all[start : start + _SEED_CHUNK]
        rows = np.arange(len(seeds))
        current = cols[seeds].copy()  # (seeds, words)
        chosen = np.zeros((len(seeds), bits), dtype=np.bool_)
        chosen[rows, seeds] = True
        for _ in range(k - 1):
            support = _support(current[:, None, :] & cols[None, :, :])  # (seeds, bits)
            support[chosen | ~usable[None, :]] = -1
            best = np.argmax(support, axis=1)
            chosen[rows, best] = True
            current &= cols[best]
        for i in np.nonzero(_support(current) >= min_support)[0]:
            positions = frozenset(np.nonzero(chosen[i])[0].tolist())
            if positions not in found and _closed(cols, sorted(positions)):
                found[positions] = Pattern(tuple(sorted(positions)), _records(current[i], n))
    return list(found.values())


def _closed(cols: Words, positions: list[int]) -> bool:
    """Whether leaving out any one position gains few records (all bits come together)."""
    members = cols[positions]
    full = int(_support(np.bitwise_and.reduce(members, axis=0)))
    for leave in range(len(positions)):
        rest = np.bitwise_and.reduce(np.delete(members, leave, axis=0), axis=0)
        if full < _STABLE * int(_support(rest)):
            return False
    return True


@dataclass(slots=True)
class _Constraint:
    """Which bigrams a pattern may still stand for."""

    allowed: set[str]
    forbidden: set[str]

    def admits(self, gram: str) -> bool:
        return gram in self.allowed and gram not in self.forbidden


def _matchable(grams: frozenset[str], signature: Sequence[int], cons: list[_Constraint]) -> bool:
    """Whether each bigram of the name can be a distinct pattern of the group (matching)."""
    owner: dict[int, str] = {}

    def place(gram: str, seen: set[int]) -> bool:
        for p in signature:
            if p in seen or not cons[p].admits(gram):
                continue
            seen.add(p)
            if p not in owner or place(owner[p], seen):
                owner[p] = gram
                return True
        return False

    return all(place(gram, set()) for gram in sorted(grams))


def _nll(count: int, expected: float) -> float:
    """Negative log Poisson probability of ``count`` given ``expected``."""
    expected = max(expected, 1e-9)
    return expected - count * math.log(expected) + math.lgamma(count + 1)


def _plausible(support: int, expected: float) -> bool:
    """A pattern's support is a sample of its bigram's expected count (Poisson, loose)."""
    return abs(support - expected) <= 4 * math.sqrt(expected) + 0.25 * expected


def align(patterns: Sequence[Pattern], surnames: SurnameList, records: int) -> dict[int, str]:
    """Record index -> surname guessed, for the records the patterns let it label."""
    if not patterns:
        return {}
    members = np.stack([p.records for p in patterns], axis=1)  # (records, patterns)
    groups: dict[frozenset[int], list[int]] = defaultdict(list)
    for row in range(records):
        signature = frozenset(np.nonzero(members[row])[0].tolist())
        if signature:
            groups[signature].append(row)
    grams = {name: frozenset(bigrams(name)) for name in surnames.names}
    share = dict(zip(surnames.names, surnames.shares, strict=True))
    gram_share: dict[str, float] = defaultdict(float)
    for name, gs in grams.items():
        for gram in gs:
            gram_share[gram] += share[name]
    supports = [int(p.records.sum()) for p in patterns]
    cons = [
        _Constraint({g for g, f in gram_share.items() if _plausible(s, records * f)}, set())
        for s in supports
    ]
    used: set[str] = set()
    labels: dict[int, str] = {}
    ordered = [(sig, rows) for sig, rows in groups.items() if len(rows) >= 2]
    ordered.sort(key=lambda item: -len(item[1]))
    for _ in range(_PASSES):
        for signature, rows in ordered:
            if rows[0] in labels:
                continue
            best = _best_name(signature, rows, surnames, grams, share, gram_share, supports, cons,
                              used, records)  # fmt: skip
            if best is None:
                continue
            used.add(best)
            _assign(cons, signature, grams[best])
            labels.update(dict.fromkeys(rows, best))
    _decode(groups, labels, grams, share, cons)
    return labels


def _best_name(
    signature: frozenset[int],
    rows: Sequence[int],
    surnames: SurnameList,
    grams: Mapping[str, frozenset[str]],
    share: Mapping[str, float],
    gram_share: Mapping[str, float],
    supports: Sequence[int],
    cons: list[_Constraint],
    used: set[str],
    records: int,
) -> str | None:
    """The surname most likely to be this group, consistent with what is known.

    A group may carry one spurious pattern (a shorter field's bigram that
    passed the checks by chance), so a name with one bigram fewer competes too.
    """
    best, best_score = None, math.inf
    for name in surnames.names:
        extra = len(signature) - len(grams[name])
        if name in used or extra not in (0, 1):
            continue
        ratio = len(rows) / (records * share[name])
        if not 1 / _FREQUENCY_RATIO <= ratio <= _FREQUENCY_RATIO:
            continue
        # Poisson likelihood of the group's size and of its patterns' supports
        # (paired in sorted order with the bigrams' expected counts).
        seen = sorted(supports[p] for p in signature)
        wanted = sorted(records * gram_share[g] for g in grams[name])
        if extra:
            seen = seen[1:]  # the spurious one is most likely the rarest
        score = _nll(len(rows), records * share[name]) + _EXTRA_PENALTY * extra
        score += sum(_nll(k, e) for k, e in zip(seen, wanted, strict=True))
        if score < best_score and _matchable(grams[name], sorted(signature), cons):
            best, best_score = name, score
    return best


def _assign(cons: list[_Constraint], signature: frozenset[int], grams: frozenset[str]) -> None:
    exact = len(signature) == len(grams)
    for p, constraint in enumerate(cons):
        if p in signature:
            if exact:
                constraint.allowed &= grams
        else:
            constraint.forbidden |= grams
    # A pattern pinned to one bigram takes that bigram from every other pattern.
    changed = True
    while changed:
        changed = False
        for p, constraint in enumerate(cons):
            live = constraint.allowed - constraint.forbidden
            if len(live) != 1:
                continue
            (gram,) = live
            for q, other in enumerate(cons):
                if q != p and gram in other.allowed and gram not in other.forbidden:
                    other.forbidden.add(gram)
                    changed = True


def _decode(
    groups: Mapping[frozenset[int], list[int]],
    labels: dict[int, str],
    grams: Mapping[str, frozenset[str]],
    share: Mapping[str, float],
    cons: list[_Constraint],
) -> None:
    """Label the remaining groups whose every pattern is pinned to one bigram."""
    by_grams: dict[frozenset[str], str] = {}
    for name in sorted(grams, key=lambda n: -share[n]):
        by_grams.setdefault(grams[name], name)
    for signature, rows in groups.items():
        if rows[0] in labels:
            continue
        pinned = [cons[p].allowed - cons[p].forbidden for p in signature]
        if all(len(live) == 1 for live in pinned):
            name = by_grams.get(frozenset(next(iter(live)) for live in pinned))
            if name is not None:
                labels.update(dict.fromkeys(rows, name))
