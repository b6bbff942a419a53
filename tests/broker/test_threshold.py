"""Threshold fitting: unsupervised, reported, overridable, and good enough for F1 0.99."""

from __future__ import annotations

import numpy as np
import pytest

from broker import (
    DEFAULT_DICE_THRESHOLD,
    DEFAULT_NULL_PRIOR,
    Matcher,
    NullPrior,
    ScoreHistogram,
    StateInvalid,
    ThresholdInvalid,
    choose_threshold,
    fit_threshold,
    match_batch,
    run_batch,
)
from tests.broker.conftest import synthetic_blocks


def _f1(sighting_factory, seed: int) -> tuple[float, float]:
    records = synthetic_blocks(seed=seed, blocks=300)
    sightings = [
        sighting_factory(f"e{i}", blocking=(b,), fuzzy=enc) for i, (_, b, enc) in enumerate(records)
    ]
    person = {f"e{i}": p for i, (p, _, _) in enumerate(records)}
    fit = fit_threshold(run_batch(sightings, Matcher(0.0)).scores)
    found = {m.event_ids for m in match_batch(sightings, fit.threshold)}
    by_person: dict[int, list[str]] = {}
    for event_id, p in person.items():
        by_person.setdefault(p, []).append(event_id)
    truth = {
        tuple(sorted((a, b)))
        for ids in by_person.values()
        for i, a in enumerate(ids)
        for b in ids[:i]
    }
    tp = len(found & truth)
    precision, recall = tp / len(found), tp / len(truth)
    return fit.threshold, 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize("seed", [11, 12])
def test_fitted_threshold_reaches_f1_099_without_labels(seed, sighting_factory):
    threshold, f1 = _f1(sighting_factory, seed)
    assert 0.5 < threshold < 0.95
    assert f1 >= 0.99


def test_fit_is_reported():
    scores = [0.4 + 0.001 * (i % 200) for i in range(2000)] + [0.97] * 300
    fit = fit_threshold(scores)
    assert fit.source == "fitted" and fit.samples == 2300
    assert fit.match_mean > fit.nonmatch_mean
    assert 0.6 < fit.threshold <= 0.97
    assert "fitted by EM" in fit.describe() and f"{fit.threshold:.3f}" in fit.describe()


def test_too_few_scores_fall_back_to_the_default():
    fit = fit_threshold([0.9, 0.2])
    assert (fit.threshold, fit.source, fit.samples) == (DEFAULT_DICE_THRESHOLD, "default", 2)
    assert "default" in fit.describe()


def test_configuration_overrides_the_fit():
    fit = fit_threshold([0.3] * 100 + [0.95] * 20)
    assert choose_threshold(0.85, fit).threshold == 0.85
    assert choose_threshold(0.85, fit).source == "configured"
    assert choose_threshold(None, fit) is fit
    assert choose_threshold(None, None).source == "default"
    with pytest.raises(ThresholdInvalid):
        choose_threshold(1.2, fit)


def test_histogram_adds_merges_and_round_trips():
    hist = ScoreHistogram.of([0.0, 0.5, 1.0, 1.0])
    assert hist.total == 4 and hist.counts[-1] == 2 and hist.counts[0] == 1
    both = hist.merge(ScoreHistogram().add([0.25]))
    assert both.total == 5
    assert ScoreHistogram.from_dict(both.to_dict()) == both
    assert hist.add([]) is hist
    with pytest.raises(StateInvalid):
        hist.merge(ScoreHistogram((0, 0)))
    with pytest.raises(StateInvalid):
        ScoreHistogram.from_dict({"counts": None})
    assert fit_threshold(both.merge(ScoreHistogram.of([0.4] * 100))).samples == 105


def _synthetic_councils_like(seed: int) -> list[float]:
    """Blocked scores shaped like the synthetic councils' under clk-v2.

    Non-matches around 0.52 with a tail to 0.655 (household members, shared
    birthdays), then nothing until the fuzzy matches from 0.775, and the pairs
    that also share an exact token near 1.
    """
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            np.clip(rng.normal(0.52, 0.03, 2200), 0.0, 0.655),
            rng.uniform(0.56, 0.655, 120),
            np.clip(rng.normal(0.975, 0.012, 1000), 0.0, 1.0),
            0.775 + 0.21 * rng.beta(3, 1.5, 320),
        ]
    ).tolist()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fit_lands_in_the_gap_of_a_bimodal_histogram_and_says_so(seed):
    fit = fit_threshold(_synthetic_councils_like(seed))
    # The gap is [0.655, 0.775); a threshold at its edge is one typo from an error.
    assert 0.675 <= fit.threshold <= 0.755
    assert fit.model_threshold < fit.threshold  # the model's own point sat lower
    described = fit.describe()
    assert f"{fit.threshold:.3f}" in described and "moved into the empty gap" in described
    assert f"at {fit.model_threshold:.3f}" in described


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fit_keeps_every_match_when_blocking_leaves_no_non_matches(seed):
    """FEBRL's shape: blocking so fine that every scored pair is a match (0.55-1.0).

    A free two-component fit split the matches and set 0.75-0.80 (recall 0.8);
    the null prior puts the non-matches where unrelated clk-v2 encodings score.
    """
    scores = (0.545 + 0.45 * np.random.default_rng(seed).beta(3.5, 1.8, 500)).tolist()
    fit = fit_threshold(scores)
    assert abs(fit.nonmatch_mean - DEFAULT_NULL_PRIOR.mean) < 0.01
    assert fit.threshold <= min(scores)
    assert fit.threshold >= DEFAULT_NULL_PRIOR.mean + 2 * DEFAULT_NULL_PRIOR.sd


def test_fit_keeps_the_models_point_where_the_populations_overlap():
    rng = np.random.default_rng(5)
    scores = np.concatenate([rng.normal(0.55, 0.05, 2000), rng.normal(0.75, 0.08, 1000)])
    fit = fit_threshold(np.clip(scores, 0.0, 1.0).tolist())
    assert fit.threshold == fit.model_threshold
    assert "gap" not in fit.describe()


def test_the_prior_and_the_gap_search_can_be_turned_off():
    scores = _synthetic_councils_like(1)
    plain = fit_threshold(scores, prior=NullPrior(weight=0.0), gap_quantile=0.0)
    assert plain.threshold == plain.model_threshold
    assert fit_threshold(scores, gap_quantile=0.0).threshold < fit_threshold(scores).threshold


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_chance_gap_in_the_sparse_tail_of_the_matches_does_not_move_the_threshold(seed):
    """FEBRL1's shape: a few non-matches, matches thinning out below 0.6 with holes.

    An empty stretch there held few scores in the fitted mixture, so it is chance,
    not the parting of the populations; moving into it cut true pairs.
    """
    rng = np.random.default_rng(seed)
    scores = np.concatenate(
        [
            np.clip(rng.normal(0.5, 0.015, 10), 0.0, 0.525),
            [0.545, 0.55],
            0.575 + 0.42 * rng.beta(3, 1.8, 500),
        ]
    ).tolist()
    fit = fit_threshold(scores)
    assert fit.threshold == fit.model_threshold
    assert "gap" not in fit.describe()
    chance = fit_threshold(scores, gap_evidence=0.0)  # any empty stretch, as before
    assert chance.threshold > fit.threshold
