"""Threshold fitting: unsupervised, reported, overridable, and good enough for F1 0.99."""

from __future__ import annotations

import pytest

from broker import (
    DEFAULT_DICE_THRESHOLD,
    Matcher,
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
