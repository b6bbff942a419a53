"""Re-identification by the broker's operator: today's encoding against the hardened one.

The operator holds what the broker holds (fuzzy encodings and blocking tokens
of synthetic people with realistic surname frequencies), a public surname list
and the encoders' parameters; not the key. It runs the pattern-mining attacks of
``bench/_privacy_attacks.py`` on the encodings and the frequency alignment of
``bench/_privacy_blocking.py`` on the blocking tokens, and this prints, for
``clk-v1`` (main at ``a0b9835``, double hashing), the independent-positions
ablation (``clk-v2`` without diffusion) and ``clk-v2``, the share of people
with the 20 commonest surnames it re-identifies and the share of its labels that
are right, then one ``BENCH {json}`` line with every figure.

Run: ``python -m bench.privacy [--people 2000] [--blocking-people 20000]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bench._privacy_attacks import (
    Pattern,
    align,
    bit_matrix,
    enumerated_patterns,
    legacy_clk_v1,
    mined_patterns,
)
from bench._privacy_blocking import (
    LEGACY_SURNAME_DOMAINS,
    SURNAME_DOMAINS,
    align_components,
    align_tokens,
    legacy_keys,
    legacy_tokens,
)
from bench._privacy_people import Person, SurnameList, people, surname_list
from connectors import ENCODING, BloomEncoder, LinkageKey, Tokeniser, bigrams, blocking_keys

__all__ = [
    "AIM_HARDENED",
    "AIM_LEGACY",
    "ATTACKS",
    "Outcome",
    "attack_blocking",
    "attack_encodings",
    "bench_key",
    "encodings",
    "main",
    "run",
]

DEFAULT_PEOPLE = 2000
DEFAULT_BLOCKING_PEOPLE = 20000
DEFAULT_SEED = 20261201
TOP = 20
#: The attack is real only if it re-identifies at least this share under clk-v1 ...
AIM_LEGACY = 0.5
#: ... and the hardened encoding and tokens pass only if it re-identifies at most this.
AIM_HARDENED = 0.01
_RECOVERED_JACCARD = 0.9
_ABLATION = "independent-only"

Attack = Callable[..., list[Pattern]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attack on one encoding (or token set)."""

    target: str
    attack: str
    reidentified_top: float
    labels: int
    labels_correct: float
    patterns: int
    bigrams_recovered: int
    seconds: float


def _fields(person: Person) -> dict[str, str]:
    identity = person.identity
    assert identity.date_of_birth is not None
    return {
        "given_name": identity.given_name or "",
        "family_name": identity.family_name or "",
        "date_of_birth": identity.date_of_birth.isoformat(),
        "postcode": identity.postcode or "",
    }


def _score(
    labels: Mapping[int, str], crowd: Sequence[Person], top: frozenset[str]
) -> tuple[float, float]:
    tops = [i for i, p in enumerate(crowd) if p.surname in top]
    hit = sum(1 for i in tops if labels.get(i) == crowd[i].surname)
    right = sum(1 for i, name in labels.items() if name == crowd[i].surname)
    return hit / max(len(tops), 1), right / len(labels) if labels else 0.0


def _recovered(patterns: Sequence[Pattern], crowd: Sequence[Person]) -> int:
    """Oracle check: patterns whose records are exactly one surname bigram's (Jaccard >= 0.9)."""
    holders: dict[str, set[int]] = {}
    for row, person in enumerate(crowd):
        for gram in set(bigrams(person.surname)):
            holders.setdefault(gram, set()).add(row)
    found = 0
    for pattern in patterns:
        rows = set(np.nonzero(pattern.records)[0].tolist())
        if any(len(rows & h) >= _RECOVERED_JACCARD * len(rows | h) for h in holders.values()):
            found += 1
    return found


def bench_key(seed: int) -> bytes:
    """A linkage key of the seed's own, so a run can be repeated; the attacker never sees it."""
    return hashlib.sha256(f"bench.privacy:{seed}".encode()).digest()


def encodings(
    crowd: Sequence[Person], secret: bytes, targets: Collection[str] | None = None
) -> dict[str, list[bytes]]:
    """What the broker would hold under each parameter set (or ``targets``), under one key.

    ``clk-v2`` comes through the connector's own tokeniser, as events carry it.
    """
    tokeniser = Tokeniser([LinkageKey(1, secret)])
    makers: dict[str, Callable[[], list[bytes]]] = {
        "clk-v1": lambda: [legacy_clk_v1(secret, _fields(p)) for p in crowd],
        _ABLATION: lambda: BloomEncoder(secret, taps=1).encode_many([_fields(p) for p in crowd]),
        ENCODING: lambda: [tokeniser.tokenise(p.identity).fuzzy or b"" for p in crowd],
    }
    return {t: make() for t, make in makers.items() if targets is None or t in targets}


ATTACKS: Mapping[str, Attack] = {"enumerate": enumerated_patterns, "mine": mined_patterns}


def attack_encodings(
    crowd: Sequence[Person],
    surnames: SurnameList,
    secret: bytes,
    *,
    min_support: int,
    plan: Collection[tuple[str, str]] | None = None,
) -> list[Outcome]:
    """Each attack on each encoding (``plan``: only these (target, attack) pairs)."""
    top = frozenset(surnames.top(TOP))
    outcomes = []
    targets = None if plan is None else {t for t, _ in plan}
    for target, encoded in encodings(crowd, secret, targets).items():
        matrix = bit_matrix(encoded)
        for name, attack in ATTACKS.items():
            if plan is not None and (target, name) not in plan:
                continue
            started = time.perf_counter()
            patterns = attack(matrix, min_support=min_support)
            labels = align(patterns, surnames, len(crowd))
            share, correct = _score(labels, crowd, top)
            outcomes.append(
                Outcome(target, name, share, len(labels), correct, len(patterns),
                        _recovered(patterns, crowd), time.perf_counter() - started)
            )  # fmt: skip
    return outcomes


def attack_blocking(
    crowd: Sequence[Person], public: Sequence[Person], surnames: SurnameList, secret: bytes
) -> list[Outcome]:
    """Both token attacks on the old keys and the current ones."""
    top = frozenset(surnames.top(TOP))
    tokeniser = Tokeniser([LinkageKey(1, secret)])
    current = [
        [(t.domain, t.value) for t in tokeniser.tokenise(p.identity).blocking_tokens] for p in crowd
    ]
    outcomes = []
    for target, observed, keys, domains in (
        ("blocking-v1", legacy_tokens(crowd, secret), legacy_keys, LEGACY_SURNAME_DOMAINS),
        ("blocking-v2", current, blocking_keys, SURNAME_DOMAINS),
    ):
        for attack in ("frequency", "linked"):
            started = time.perf_counter()
            if attack == "frequency":
                labels = align_tokens(observed, public, keys, domains)
            else:
                labels = align_components(observed, public, domains)
            share, correct = _score(labels, crowd, top)
            outcomes.append(
                Outcome(target, attack, share, len(labels), correct, 0, 0,
                        time.perf_counter() - started)
            )  # fmt: skip
    return outcomes


def run(
    *,
    people_count: int = DEFAULT_PEOPLE,
    blocking_people: int = DEFAULT_BLOCKING_PEOPLE,
    seed: int = DEFAULT_SEED,
    min_support: int | None = None,
) -> dict[str, object]:
    """Every figure, as the ``BENCH`` line carries it."""
    surnames = surname_list()
    secret = bench_key(seed)
    crowd = people(people_count, seed=seed, surnames=surnames)
    support = min_support if min_support is not None else max(5, people_count // 400)
    outcomes = attack_encodings(crowd, surnames, secret, min_support=support)
    block_crowd = people(blocking_people, seed=seed + 1, surnames=surnames)
    public = people(2 * blocking_people, seed=seed + 2, surnames=surnames)
    outcomes += attack_blocking(block_crowd, public, surnames, secret)
    best: dict[str, float] = {}
    for o in outcomes:
        best[o.target] = max(best.get(o.target, 0.0), o.reidentified_top)
    return {
        "people": people_count,
        "blocking_people": blocking_people,
        "min_support": support,
        "top": TOP,
        "outcomes": [asdict(o) for o in outcomes],
        "best": best,
        "legacy_attack_real": best["clk-v1"] >= AIM_LEGACY,
        "hardened_ok": best[ENCODING] <= AIM_HARDENED and best["blocking-v2"] <= AIM_HARDENED,
    }


def _table(figures: Mapping[str, object]) -> list[str]:
    lines = [
        f"{'target':<18}{'attack':<11}{'top-20 re-id':>13}{'labels':>8}{'correct':>9}"
        f"{'patterns':>10}{'bigrams':>9}{'seconds':>9}"
    ]
    outcomes = figures["outcomes"]
    assert isinstance(outcomes, list)
    for o in outcomes:
        lines.append(
            f"{o['target']:<18}{o['attack']:<11}{o['reidentified_top']:>13.3f}{o['labels']:>8}"
            f"{o['labels_correct']:>9.3f}{o['patterns']:>10}{o['bigrams_recovered']:>9}"
            f"{o['seconds']:>9.1f}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=DEFAULT_PEOPLE)
    parser.add_argument("--blocking-people", type=int, default=DEFAULT_BLOCKING_PEOPLE)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--min-support", type=int, default=None)
    args = parser.parse_args(argv)
    figures = run(
        people_count=args.people,
        blocking_people=args.blocking_people,
        seed=args.seed,
        min_support=args.min_support,
    )
    print(
        f"{args.people} encodings, {args.blocking_people} people's blocking tokens; "
        f"share of people with the {TOP} commonest surnames re-identified, best attack:"
    )
    print("\n".join(_table(figures)))
    print(
        f"aims: clk-v1 >= {AIM_LEGACY} (attack is real): {figures['legacy_attack_real']}; "
        f"{ENCODING} and blocking-v2 <= {AIM_HARDENED}: {figures['hardened_ok']}"
    )
    print("BENCH " + json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
