"""Fitting the Dice threshold without labels, from the scores themselves.

Among blocked candidate pairs, Dice scores form two populations: pairs that are
the same person (near 1) and pairs that merely share a coarse blocking key
(spread lower). As Fellegi–Sunter tools do with EM over agreement patterns, we
fit a two-component mixture by EM, here of Beta distributions on the scores
(method-of-moments M-step), and pick the threshold that the fitted model
expects to give the best F1. A guessed 0.8 costs several points of F1 on
published benchmarks (DESIGN section 5), so the threshold is fitted, reported
and overridable by configuration (``choose_threshold``).

Two refinements, both measured on FEBRL and the synthetic councils (docs/linkage.md):

- **A prior for the non-matches** (``NullPrior``). Blocking on rare keys can
  leave almost no non-matches in the sample (FEBRL: none); a free two-component
  fit then splits the matches in two and sets the threshold inside them (F1
  0.88). What unrelated people score is known from the encoding, not from the
  sample: under ``clk-v2``'s diffusion every output bit is set for about half
  of all people, so two unrelated encodings score about 0.5 (sd about 0.025,
  measured on random pairs of FEBRL and the synthetic councils). That shape
  enters the fit as pseudo-counts, a tenth of the sample's weight: enough to
  anchor the non-match component where no data are, too little to move it
  where there are.
- **Into the gap.** A Beta fitted by moments has the wrong tails for a match
  population with a long left tail, so the model's best-F1 point can sit at
  the upper edge of the non-matches (synthetic councils: 0.61, with 40 false
  pairs). Above that point, but never past ``DEFAULT_GAP_QUANTILE`` of the
  scores above it, the threshold moves to the middle of the first stretch
  where the observed histogram is empty (no score within 0.01):
  where the data themselves say the two populations part. Its emptiness must
  be evidence (``DEFAULT_GAP_EVIDENCE``): the sparse lower tail of the matches
  has empty stretches by chance (FEBRL1: one at 0.57 cut true pairs at
  0.55-0.57). With no such stretch (the populations overlap) the model's
  point stands.

Scores are held as a fixed-size ``ScoreHistogram``: constant memory, mergeable
across workers, and a plain dict for a Faust table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from broker._errors import StateInvalid
from broker._similarity import DEFAULT_DICE_THRESHOLD, check_threshold

__all__ = [
    "DEFAULT_GAP_EVIDENCE",
    "DEFAULT_GAP_QUANTILE",
    "DEFAULT_HISTOGRAM_BINS",
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_MIN_SCORES",
    "DEFAULT_NULL_PRIOR",
    "NullPrior",
    "ScoreHistogram",
    "ThresholdFit",
    "ThresholdSource",
    "choose_threshold",
    "fit_threshold",
]

#: 0.005-wide bins: finer than any threshold a clerk would set by hand.
DEFAULT_HISTOGRAM_BINS = 200
#: Below this many scored pairs a mixture fit is noise; the default is used.
DEFAULT_MIN_SCORES = 50
DEFAULT_MAX_ITERATIONS = 500
DEFAULT_TOLERANCE = 1e-10
#: The gap search never cuts more than this share of the scores above the model's point.
DEFAULT_GAP_QUANTILE = 0.05
#: Scores the fitted mixture must expect near an empty stretch above the model's
#: point for it to count as the gap: one expected to hold 10 is empty by chance
#: once in 20,000 (Poisson). Measured: real gaps 25-100, chance ones 3-4.
DEFAULT_GAP_EVIDENCE = 10.0
# Starting point for the matches; the non-matches start at the prior.
_START_MATCH_MEAN, _START_MATCH_SHARE, _START_SD = 0.9, 0.5, 0.1
# Half-width, in bins, of the window in which the gap search counts scores.
_GAP_WINDOW = 2
_EPS = 1e-6

ThresholdSource = Literal["fitted", "configured", "default"]


@dataclass(frozen=True, slots=True)
class NullPrior:
    """What unrelated encodings score, added to the fit as pseudo-counts.

    Args:
        mean: Dice of two unrelated encodings (0.5 under ``clk-v2``'s diffusion).
        sd: its spread (about 0.025 for 1,024-bit ``clk-v2`` encodings).
        weight: pseudo-counts as a share of the scored pairs (0: no prior).
    """

    mean: float = 0.5
    sd: float = 0.025
    weight: float = 0.1


#: The prior for ``clk-v2`` encodings (the only ones the broker compares now).
DEFAULT_NULL_PRIOR = NullPrior()


@dataclass(frozen=True, slots=True)
class ScoreHistogram:
    """Counts of Dice scores in equal-width bins over [0, 1] (1.0 in the last bin)."""

    counts: tuple[int, ...] = (0,) * DEFAULT_HISTOGRAM_BINS

    @classmethod
    def of(cls, scores: Iterable[float], *, bins: int = DEFAULT_HISTOGRAM_BINS) -> ScoreHistogram:
        return cls((0,) * bins).add(scores)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def add(self, scores: Iterable[float]) -> ScoreHistogram:
        """With ``scores`` counted (values outside [0, 1] are clipped)."""
        values = np.clip(np.fromiter(scores, dtype=np.float64), 0.0, 1.0)
        if values.size == 0:
            return self
        bins = len(self.counts)
        index = np.minimum((values * bins).astype(np.int64), bins - 1)
        added = np.bincount(index, minlength=bins)
        return ScoreHistogram(tuple(int(a + b) for a, b in zip(self.counts, added, strict=True)))

    def merge(self, other: ScoreHistogram) -> ScoreHistogram:
        """Sum of two histograms with the same bins (workers' partial counts)."""
        if len(other.counts) != len(self.counts):
            raise StateInvalid("score histograms with different bins cannot be merged")
        return ScoreHistogram(tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)))

    def to_dict(self) -> dict[str, Any]:
        return {"counts": list(self.counts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreHistogram:
        try:
            return cls(tuple(int(c) for c in data["counts"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise StateInvalid("score histogram cannot be read back") from exc


@dataclass(frozen=True, slots=True)
class ThresholdFit:
    """A threshold and where it came from, with the fitted mixture for the report."""

    threshold: float
    source: ThresholdSource
    samples: int = 0
    match_share: float = math.nan
    match_mean: float = math.nan
    nonmatch_mean: float = math.nan
    expected_f1: float = math.nan
    iterations: int = 0
    converged: bool = False
    model_threshold: float = math.nan

    def _moved(self) -> str:
        return "" if self.threshold == self.model_threshold else ", moved into the empty gap"

    def describe(self) -> str:
        """One line for logs and the ``link`` command's output."""
        if self.source != "fitted":
            return f"threshold {self.threshold:.3f} ({self.source}; {self.samples} scored pairs)"
        return (
            f"threshold {self.threshold:.3f} (fitted by EM on {self.samples} scored pairs: "
            f"match share {self.match_share:.3f}, means {self.match_mean:.3f}/"
            f"{self.nonmatch_mean:.3f}, expected F1 {self.expected_f1:.4f} at "
            f"{self.model_threshold:.3f}{self._moved()}, "
            f"{self.iterations} iterations{'' if self.converged else ', not converged'})"
        )


def _beta_pdf(x: npt.NDArray[np.float64], mean: float, var: float) -> npt.NDArray[np.float64]:
    mean = min(max(mean, _EPS), 1 - _EPS)
    var = min(max(var, _EPS * _EPS), mean * (1 - mean) * (1 - _EPS))
    common = mean * (1 - mean) / var - 1
    a, b = mean * common, (1 - mean) * common
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    return np.exp(log_norm + (a - 1) * np.log(x) + (b - 1) * np.log1p(-x))


def _moments(x: npt.NDArray[np.float64], w: npt.NDArray[np.float64]) -> tuple[float, float]:
    total = float(w.sum())
    if total <= 0:
        return 0.5, 0.05
    mean = float((w * x).sum() / total)
    var = float((w * (x - mean) ** 2).sum() / total)
    return mean, var


def _gap(
    counts: npt.NDArray[np.float64],
    expected: npt.NDArray[np.float64],
    low: int,
    high: int,
    *,
    evidence: float = DEFAULT_GAP_EVIDENCE,
    window: int = _GAP_WINDOW,
) -> int:
    """The middle of the first stretch of edges in [low, high] with no score near them.

    Moving into a stretch that starts at ``low`` crosses no score, so it is
    always taken. A later stretch is taken only where the fitted mixture
    (``expected``: counts per bin) expected at least ``evidence`` scores near
    it, so that its emptiness is evidence that the populations part there: the
    sparse lower tail of the matches has empty stretches by chance (FEBRL1:
    one at 0.57, expected to hold 3-4 scores, cut true pairs at 0.55-0.57;
    the synthetic councils' gap was expected to hold 25-100). ``low`` (the
    model's point) when there is no such stretch: where the two populations
    overlap, the model's tails are the best guess there is.
    """
    bins = len(counts)
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    edges = np.arange(low, high + 1)
    around = (
        cumulative[np.minimum(edges + window, bins)] - cumulative[np.maximum(edges - window, 0)]
    )
    stretches: list[list[int]] = []
    for edge in (int(e) for e in edges[around == 0]):
        if stretches and edge == stretches[-1][-1] + 1:
            stretches[-1].append(edge)
        else:
            stretches.append([edge])
    for stretch in stretches:
        near = expected[max(stretch[0] - window, 0) : min(stretch[-1] + window, bins)]
        if stretch[0] == low or float(near.sum()) >= evidence:
            return stretch[len(stretch) // 2]
    return low


def fit_threshold(
    scores: ScoreHistogram | Iterable[float],
    *,
    prior: NullPrior = DEFAULT_NULL_PRIOR,
    min_scores: int = DEFAULT_MIN_SCORES,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    gap_quantile: float = DEFAULT_GAP_QUANTILE,
    gap_evidence: float = DEFAULT_GAP_EVIDENCE,
) -> ThresholdFit:
    """Fit a two-component Beta mixture to the blocked pairs' Dice scores by EM.

    Args:
        scores: a ``ScoreHistogram`` or raw scores (binned here).
        prior: the non-match prior (default ``DEFAULT_NULL_PRIOR``).
        min_scores: fewer scores than this fall back to ``DEFAULT_DICE_THRESHOLD``
            (default ``DEFAULT_MIN_SCORES``).
        max_iterations: EM iteration cap (default ``DEFAULT_MAX_ITERATIONS``).
        gap_quantile: how far above the model's best-F1 point the gap search may
            go, as the share of the observed scores above that point it may cut
            (default ``DEFAULT_GAP_QUANTILE``; 0 keeps the model's point).
        gap_evidence: how many scores the fitted mixture must expect near an
            empty stretch above the model's point for it to be the gap
            (default ``DEFAULT_GAP_EVIDENCE``).

    Returns:
        The threshold in the histogram's gap (module docstring), with the fit.
    """
    hist = scores if isinstance(scores, ScoreHistogram) else ScoreHistogram.of(scores)
    n = hist.total
    if n < min_scores:
        return ThresholdFit(DEFAULT_DICE_THRESHOLD, "default", samples=n)
    bins = len(hist.counts)
    x = np.clip((np.arange(bins) + 0.5) / bins, _EPS, 1 - _EPS)
    observed = np.asarray(hist.counts, dtype=np.float64)
    null = _beta_pdf(x, prior.mean, prior.sd**2)
    w = observed + null * (prior.weight * n / max(float(null.sum()), 1e-300))
    total_weight = float(w.sum())
    share, m_mean, u_mean = _START_MATCH_SHARE, _START_MATCH_MEAN, prior.mean
    m_var, u_var = _START_SD**2, prior.sd**2
    previous, converged, iteration = -math.inf, False, 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - reported
        pm = share * _beta_pdf(x, m_mean, m_var)
        pu = (1 - share) * _beta_pdf(x, u_mean, u_var)
        total = np.maximum(pm + pu, 1e-300)
        loglik = float((w * np.log(total)).sum())
        resp = pm / total
        share = float((w * resp).sum() / total_weight)
        m_mean, m_var = _moments(x, w * resp)
        u_mean, u_var = _moments(x, w * (1 - resp))
        if abs(loglik - previous) < DEFAULT_TOLERANCE * max(1.0, abs(loglik)):
            converged = True
            break
        previous = loglik
    if m_mean < u_mean:  # EM may swap labels; the match component is the higher one
        share, m_mean, m_var, u_mean, u_var = 1 - share, u_mean, u_var, m_mean, m_var
    pm = share * _beta_pdf(x, m_mean, m_var)
    pu = (1 - share) * _beta_pdf(x, u_mean, u_var)
    pm, pu = pm / max(float((pm + pu).sum()), 1e-300), pu / max(float((pm + pu).sum()), 1e-300)
    # Expected counts above each bin edge k (threshold = k / bins).
    tp = np.cumsum(pm[::-1])[::-1]
    fp = np.cumsum(pu[::-1])[::-1]
    f1 = 2 * tp / np.maximum(tp + fp + float(pm.sum()), 1e-300)
    best = int(np.argmax(f1))
    # The search stops where it would cut ``gap_quantile`` of the scores above
    # the model's point: the observed ones, as the fitted tails are what is in doubt.
    above = np.cumsum(observed[best:])
    high = best + int(np.searchsorted(above, gap_quantile * float(above[-1]), side="right"))
    expected = (pm + pu) * n
    edge = _gap(observed, expected, best, high, evidence=gap_evidence) if gap_quantile > 0 else best
    return ThresholdFit(
        threshold=check_threshold(edge / bins),
        source="fitted",
        samples=n,
        match_share=share,
        match_mean=m_mean,
        nonmatch_mean=u_mean,
        expected_f1=float(f1[best]),
        iterations=iteration,
        converged=converged,
        model_threshold=best / bins,
    )


def choose_threshold(configured: float | None, fit: ThresholdFit | None) -> ThresholdFit:
    """Configuration wins, then the fit, then the default; always reported.

    Raises:
        ThresholdInvalid: the configured value is outside [0, 1].
    """
    samples = fit.samples if fit is not None else 0
    if configured is not None:
        return ThresholdFit(check_threshold(configured), "configured", samples=samples)
    if fit is not None:
        return fit
    return ThresholdFit(DEFAULT_DICE_THRESHOLD, "default")
