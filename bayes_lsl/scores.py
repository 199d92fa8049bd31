"""Proper scoring rules for predictive distributions of scores in (0, 1).

Three rules, each of one observed score against a predictive distribution, each a
function of arrays (one score per element):

- :func:`crps`: the continuous ranked probability score from predictive draws, in the
  energy form ``E|X - y| - E|X - X'| / 2`` (Gneiting & Raftery 2007, eq. 21), on the
  score's own scale (lower is better; for a point forecast it is the absolute error);
- :func:`interval_score`: the score of a central ``(1 - alpha)`` interval, its width plus
  ``2 / alpha`` times the distance by which the observation falls outside it (Gneiting &
  Raftery 2007, eq. 43; lower is better);
- :func:`log_predictive_density`: the log of the predictive density at the observed
  score, the density being the mean over draws of a Beta density (higher is better).

All three are proper: in expectation over the truth, no forecast scores better than the
true distribution. MAE and coverage are not (a point at the median minimizes MAE whatever
the spread; an interval that covers 95% of the cells can be calibrated on average while
too wide here and too narrow there).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from bayes_lsl.errors import BayesLslError
from bayes_lsl.model.likelihood import score_logp_shapes

#: The model clips scores into ``[eps, 1 - eps]`` before its Beta likelihood (``ScalingData.eps``).
DEFAULT_EPS = 1e-3


def crps(draws: np.ndarray, observed: np.ndarray | float, *, axis: int = 0) -> np.ndarray:
    """CRPS of each observed value against predictive draws, in O(S log S) by sorting.

    Parameters
    ----------
    draws : array
        Predictive draws, ``S`` of them along ``axis``.
    observed : array or float
        The observed values, broadcastable to ``draws`` without ``axis``.
    axis : int
        The axis of the draws.

    Returns
    -------
    ndarray
        ``mean_i |x_i - y| - sum_{i != j} |x_i - x_j| / (2 S (S - 1))``, shape of
        ``draws`` without ``axis``; NaN where ``observed`` is NaN.

    Notes
    -----
    The second term averages over the ``S (S - 1)`` pairs of distinct draws, so that it is
    an unbiased estimate of ``E|X - X'|`` (the "fair" CRPS of Ferro 2014): the estimate is
    unbiased for the CRPS of the distribution the draws come from. On sorted draws
    ``x_(1) <= ... <= x_(S)``, ``sum_{i, j} |x_i - x_j| = 2 sum_i (2 i - S - 1) x_(i)``.
    """
    x = np.moveaxis(np.asarray(draws, float), axis, 0)
    S = x.shape[0]
    if S < 2:
        raise BayesLslError(f"draws: CRPS needs at least 2 draws along axis {axis}, got {S}")
    y = np.asarray(observed, float)
    spread_to_truth = np.abs(x - y).mean(axis=0)
    weights = (2.0 * np.arange(1, S + 1) - S - 1).reshape((S,) + (1,) * (x.ndim - 1))
    pair_sum = 2.0 * (weights * np.sort(x, axis=0)).sum(axis=0)  # sum over all ordered pairs, i = j adds 0
    return spread_to_truth - pair_sum / (2.0 * S * (S - 1))


def interval_score(
    lower: np.ndarray | float, upper: np.ndarray | float, observed: np.ndarray | float, *, alpha: float = 0.05
) -> np.ndarray:
    """Interval score of central ``(1 - alpha)`` intervals ``[lower, upper]``.

    ``(upper - lower) + (2 / alpha) (lower - y) 1{y < lower} + (2 / alpha) (y - upper) 1{y > upper}``:
    proper for intervals whose ends are the ``alpha / 2`` and ``1 - alpha / 2`` quantiles
    (Gneiting & Raftery 2007, section 6.2). The default scores 95% intervals.

    Parameters
    ----------
    lower, upper, observed : array or float
        Broadcastable to one another.
    alpha : float
        One minus the intervals' level, in (0, 1).

    Returns
    -------
    ndarray
        The score of each interval (lower is better); NaN where an input is NaN.
    """
    if not 0 < alpha < 1:
        raise BayesLslError(f"alpha must be in (0, 1), got {alpha}")
    lo, hi, y = (np.asarray(v, float) for v in (lower, upper, observed))
    below = np.clip(lo - y, 0.0, None)  # NaN stays NaN
    above = np.clip(y - hi, 0.0, None)
    return (hi - lo) + (2.0 / alpha) * (below + above)


def log_predictive_density(
    shape_a: np.ndarray, shape_b: np.ndarray, observed: np.ndarray | float, *, axis: int = 0,
    eps: float = DEFAULT_EPS, score_eps: np.ndarray | float | None = None, score_kappa: float | None = None,
) -> np.ndarray:  # fmt: skip
    """Log of the predictive density at the observed score: ``log mean_s Beta(y | a_s, b_s)``.

    Parameters
    ----------
    shape_a, shape_b : array
        Beta shapes of each draw (parameters, and family effects where they are drawn),
        ``S`` of them along ``axis``.
    observed : array or float
        Observed scores, broadcastable to the shapes without ``axis``.
    axis : int
        The axis of the draws.
    eps : float
        Scores are clipped into ``[eps, 1 - eps]`` before the density is evaluated, as the
        model clips them before its likelihood (``ScalingData.eps``, 1e-3 by default): a
        score of exactly 0 or 1, impossible under a Beta, is scored as the model saw it
        in training. Use the fit's ``eps`` (``FitInfo.eps``) to match its likelihood.
    score_eps, score_kappa : optional
        A ``scores="beta-mixture"`` fit's mixture: its weight per draw (broadcasting
        against the shapes, draws along ``axis``) and its precision factor; the density is
        then the mixture's (:func:`bayes_lsl.model.likelihood.score_logp_shapes`).

    Returns
    -------
    ndarray
        The log density (higher is better), shape of the shapes without ``axis``; NaN
        where ``observed`` is NaN.

    Notes
    -----
    The mean of densities is a log-sum-exp of log densities minus ``log S``, so that no
    density under- or overflows: a sharp predictive far from the score has log densities
    of -1000 and less, whose exponentials are 0 in floating point.
    """
    if not 0 <= eps < 0.5:
        raise BayesLslError(f"eps must be in [0, 0.5), got {eps}")
    a = np.moveaxis(np.asarray(shape_a, float), axis, 0)
    b = np.moveaxis(np.asarray(shape_b, float), axis, 0)
    y = np.clip(np.asarray(observed, float), eps, 1.0 - eps)
    if score_eps is not None:
        score_eps = np.moveaxis(np.broadcast_to(np.asarray(score_eps, float), np.shape(shape_a)), axis, 0)
    logpdf = score_logp_shapes(y, a, b, score_eps, score_kappa)
    return logsumexp(logpdf, axis=0) - np.log(a.shape[0])
