"""Matching quality: precision, recall and F1 against synthetic ground truth.

The broker bench (``bench/broker``) calls ``run()`` for its quality figures; run
alone with ``python -m bench.linkage_quality``. It fits the Dice threshold
without labels exactly as the broker does (EM over the blocked pairs' scores),
matches with the broker's own ``match_batch`` at that threshold, and only then
looks at the labels. The figure at the guessed ``DEFAULT_DICE_THRESHOLD`` is
printed next to it, because that gap is why the threshold is fitted.

Data: the connectors' synthetic federation (realistic typos, transpositions,
moved addresses, missing identifiers), encoded by the connector's tokeniser,
when it is available; otherwise a bit-vector model of noisy Bloom filters.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from broker import (
    DEFAULT_DICE_THRESHOLD,
    FUZZY,
    Match,
    Matcher,
    Sighting,
    ThresholdFit,
    choose_threshold,
    fit_threshold,
    match_batch,
    run_batch,
)
from schemas import EventType

if TYPE_CHECKING:
    from connectors import LinkageKey

__all__ = [
    "BlockingFigures",
    "LinkageQuality",
    "LinkageReport",
    "bench_key",
    "bit_vector_dataset",
    "blocking_figures",
    "evaluate",
    "main",
    "quality",
    "run",
]

Pair = tuple[str, str]
DEFAULT_SEED = 20261123
DEFAULT_BLOCKS = 400
_BITS, _HASHES, _GRAMS, _SHARED = 1024, 20, 25, 12
_T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LinkageQuality:
    """Pairwise confusion counts and the three figures."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def line(self) -> str:
        return (
            f"precision {self.precision:.4f}  recall {self.recall:.4f}  F1 {self.f1:.4f}  "
            f"(tp {self.true_positives}, fp {self.false_positives}, fn {self.false_negatives})"
        )


@dataclass(frozen=True, slots=True)
class LinkageReport:
    """What one quality run measured."""

    data: str
    events: int
    true_pairs: int
    fit: ThresholdFit
    fitted: LinkageQuality
    at_default: LinkageQuality
    seconds: float
    blocking: BlockingFigures | None = None

    def lines(self) -> list[str]:
        lines = [
            f"data: {self.data}; {self.events} events, {self.true_pairs} true pairs",
            self.fit.describe(),
            f"at fitted threshold {self.fit.threshold:.3f}: {self.fitted.line()}",
            f"at guessed {DEFAULT_DICE_THRESHOLD:.2f}:         {self.at_default.line()}",
            f"time: {self.seconds:.2f}s (fit + two matching passes)",
        ]
        if self.blocking is not None:
            lines.extend(self.blocking.lines())
        return lines


@dataclass(frozen=True, slots=True)
class BlockingFigures:
    """Where F1 is lost: pairs blocking never compares, and how the compared ones score.

    ``recall`` is the share of true pairs sharing at least one token (the most
    any threshold can find); ``histogram`` counts true and false fuzzy-scored
    pairs per ``HISTOGRAM_STEP`` of Dice (pairs owned by an exact token score 1.0
    and are left out, so the histogram shows what the threshold decides).
    """

    recall: float
    best_f1: float
    best_threshold: float
    histogram: tuple[tuple[float, int, int], ...]

    def lines(self) -> list[str]:
        rows = [
            f"blocking recall {self.recall:.4f}; best F1 any threshold could give "
            f"{self.best_f1:.4f} (at {self.best_threshold:.3f}, found with the labels)",
            "fuzzy-scored pairs by Dice: from  true  false",
        ]
        rows.extend(f"  {low:.2f} {true:6d} {false:6d}" for low, true, false in self.histogram)
        return rows


HISTOGRAM_STEP = 0.05


def blocking_figures(scored: Iterable[Match], truth: set[Pair]) -> BlockingFigures:
    """Blocking recall, the labelled score histogram and the labels' best F1.

    ``scored`` are the matches of a pass at threshold 0 (every blocked pair).
    """
    score_of: dict[Pair, tuple[float, bool]] = {}
    for match in scored:
        score_of[_pair(*match.event_ids)] = (match.score, match.method == FUZZY)
    blocked = sum(1 for pair in truth if pair in score_of)
    bins: dict[int, list[int]] = {}
    for pair, (score, fuzzy) in score_of.items():
        if fuzzy:
            counts = bins.setdefault(min(int(score / HISTOGRAM_STEP), int(1 / HISTOGRAM_STEP) - 1),
                                     [0, 0])  # fmt: skip
            counts[0 if pair in truth else 1] += 1
    best = max(
        (quality((p for p, (s, _) in score_of.items() if s >= t / 200), truth).f1, t / 200)
        for t in range(201)
    )
    return BlockingFigures(
        blocked / len(truth) if truth else 1.0,
        best[0],
        best[1],
        tuple((k * HISTOGRAM_STEP, c[0], c[1]) for k, c in sorted(bins.items())),
    )


def _pair(a: str, b: str) -> Pair:
    return (a, b) if a <= b else (b, a)


def quality(found: Iterable[Pair], truth: Iterable[Pair]) -> LinkageQuality:
    """Confusion counts of found pairs against true pairs (order within a pair ignored)."""
    found_set = {_pair(*p) for p in found}
    truth_set = {_pair(*p) for p in truth}
    tp = len(found_set & truth_set)
    return LinkageQuality(tp, len(found_set) - tp, len(truth_set) - tp)


def truth_pairs(subject_of: dict[str, str]) -> set[Pair]:
    """Every pair of events about the same subject, from event id -> subject id."""
    by_subject: dict[str, list[str]] = {}
    for event_id, subject in subject_of.items():
        by_subject.setdefault(subject, []).append(event_id)
    return {_pair(a, b) for ids in by_subject.values() for i, a in enumerate(ids) for b in ids[:i]}


def evaluate(
    sightings: Sequence[Sighting],
    subject_of: dict[str, str],
    *,
    data: str,
    threshold: float | None = None,
) -> LinkageReport:
    """Fit (unless ``threshold`` is given), match, and score against the truth."""
    started = time.perf_counter()
    everything = run_batch(sightings, Matcher(0.0))
    fit = choose_threshold(threshold, fit_threshold(everything.scores))
    truth = truth_pairs(subject_of)
    fitted = quality((m.event_ids for m in match_batch(sightings, fit.threshold)), truth)
    default = quality((m.event_ids for m in match_batch(sightings, DEFAULT_DICE_THRESHOLD)), truth)
    seconds = time.perf_counter() - started
    blocking = blocking_figures(everything.matches, truth)
    return LinkageReport(data, len(sightings), len(truth), fit, fitted, default, seconds, blocking)


def _bloom(grams: Iterable[int]) -> bytes:
    value = 0
    for gram in grams:
        for i in range(_HASHES):
            value |= 1 << (hash((gram, i)) % _BITS)
    return value.to_bytes(_BITS // 8, "big")


def bit_vector_dataset(
    seed: int = DEFAULT_SEED, blocks: int = DEFAULT_BLOCKS
) -> tuple[list[Sighting], dict[str, str]]:
    """Noisy Bloom filters in look-alike blocks, no exact tokens (the hard case).

    People in one block share a third of their q-grams (same surname sound and
    birth year); each record of a person replaces 0 to 8 of 37 q-grams.
    """
    rng = random.Random(seed)
    sightings: list[Sighting] = []
    subject_of: dict[str, str] = {}
    person = 0
    for block in range(blocks):
        shared = [rng.randrange(10**12) for _ in range(_SHARED)]
        for _ in range(rng.randint(2, 6)):
            grams = shared + [rng.randrange(10**12) for _ in range(_GRAMS)]
            for _ in range(rng.randint(1, 3)):
                copy = list(grams)
                for _ in range(rng.choice([0, 0, 1, 2, 3, 5, 8])):
                    copy[rng.randrange(len(copy))] = rng.randrange(10**12)
                event_id = f"ev-{len(sightings):06d}"
                sightings.append(
                    Sighting(
                        event_id=event_id,
                        source_council=f"C{rng.randrange(3)}",
                        source_ref=event_id,
                        event_type=EventType.ADDRESS_CHANGE,
                        occurred_at=_T0 + timedelta(minutes=len(sightings)),
                        key_epoch=1,
                        blocking=(f"blk:1:{block:06x}",),
                        fuzzy=_bloom(copy),
                    )
                )
                subject_of[event_id] = f"p{person}"
            person += 1
    return sightings, subject_of


def bench_key(key_seed: int | None) -> LinkageKey:
    """A linkage key derived from ``key_seed``, or a fresh random one for None.

    F1 on FEBRL moves with the key (it moves the few borderline scores), so a
    result is reported under several named keys, each repeatable.
    """
    from connectors import LinkageKey, generate_linkage_key

    if key_seed is None:
        return generate_linkage_key(1)
    return LinkageKey(1, hashlib.sha256(f"fedbroker-quality-key|{key_seed}".encode()).digest())


def run(
    *,
    seed: int = DEFAULT_SEED,
    threshold: float | None = None,
    data: str = "auto",
    key: LinkageKey | None = None,
) -> LinkageReport:
    """The quality figures the broker bench prints (data ``auto``, ``synth`` or ``bits``).

    ``key`` encodes the synthetic councils (default None: a fresh random key).
    """
    if data in ("auto", "synth"):
        try:
            from bench._synth_linkage import synthetic_federation_sightings
        except ImportError:
            if data == "synth":
                raise
        else:
            sightings, subject_of, label = synthetic_federation_sightings(seed=seed, key=key)
            return evaluate(sightings, subject_of, data=label, threshold=threshold)
    sightings, subject_of = bit_vector_dataset(seed)
    return evaluate(
        sightings, subject_of, data="bit-vector model (no exact tokens)", threshold=threshold
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--threshold", type=float, default=None, help="override the fit")
    parser.add_argument("--data", choices=("auto", "synth", "bits"), default="auto")
    parser.add_argument(
        "--key-seed",
        type=int,
        action="append",
        default=None,
        help="derive the linkage key from this number (repeat for several keys; "
        "default: one fresh random key)",
    )
    parser.add_argument(
        "--febrl",
        type=Path,
        default=None,
        help="folder with FEBRL dataset1.csv and dataset2.csv: also link each with "
        "fedbroker link at its own fitted threshold (see bench/_febrl.py)",
    )
    args = parser.parse_args(argv)
    for key_seed in args.key_seed or [None]:
        if key_seed is not None:
            print(f"== linkage key from --key-seed {key_seed}")
        _one_key(args, bench_key(key_seed))


def _one_key(args: argparse.Namespace, key: LinkageKey) -> None:
    report = run(seed=args.seed, threshold=args.threshold, data=args.data, key=key)
    print("\n".join(report.lines()))
    figures: dict[str, float] = {"synth_f1": report.fitted.f1,
                                 "synth_threshold": report.fit.threshold}  # fmt: skip
    if args.febrl is not None:
        from bench._febrl import run_febrl

        for dataset in ("dataset1", "dataset2"):
            febrl = run_febrl(args.febrl, dataset, key=key)
            print("\n".join(febrl.lines()))
            figures[f"febrl_{dataset}_f1"] = febrl.fitted.f1
            figures[f"febrl_{dataset}_threshold"] = febrl.threshold
    print("BENCH " + json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
