"""Recalibrated intervals: width factors learned from held-out predictions, conformal-style (off by default).

The model's intervals are model-based: quantiles of its predictive distribution. Where
they are too narrow for a task (the paper's model under-covers when it extrapolates
within a family to a much larger model), :func:`recalibrate` learns, for each nominal
level ``L`` in :data:`~bayes_lsl.holdout.INTERVAL_LEVELS`, the factor ``s_L`` by which the
distances from the predictive median to the interval's ends must be scaled so that a
fraction ``L`` of the held-out cells is covered; :meth:`Recalibration.apply` scales the
intervals of other predictions by it (clipped to ``[0, 1]``) and marks them
``recalibrated``. Nothing else of the prediction changes: the median, the mean and the
predictive draws (hence the CRPS and log density) stay the model's.

Learn the factors from held-out predictions of the *training* data made the way the
target predictions will be made: for "what will my family's next, larger model score?",
a largest-in-family cross-validation (``bl.cross_validate(train, scheme=
"largest-in-family")``). Never learn them from the cells they are then scored on.

The factor (split conformal)
    Each held-out cell with observed score ``y``, median ``m`` and central ``L`` interval
    ``[l, u]`` has the score ``r = (y - m) / (u - m)`` above the median and
    ``(m - y) / (m - l)`` below it: the smallest factor whose scaled interval covers ``y``.
    ``s_L`` is the ``ceil((n + 1) L)``-th smallest of the ``n`` scores, the split-conformal
    quantile with its finite-sample correction (infinite when ``(n + 1) L > n``).

Exchangeability is by family, not by cell
    The guarantee of split conformal (coverage at least ``L`` for a new cell) needs the
    new cell to be exchangeable with the calibration cells. Held-out cells are not: the
    cells of one model, and the models of one family group, share their prediction
    error. What is exchangeable (at best) is families. The factor pools every cell
    (weights by cell, as the reported coverage averages over cells), so it targets the
    coverage as the summaries report it; but its sampling error is that of the number
    of family groups, not of cells, and the finite-sample correction computed with ``n``
    cells is smaller than one computed with the groups would be. :class:`Recalibration`
    therefore reports each factor's cluster-bootstrap interval (resampling family
    groups) and the number of groups it was learned from: with a few dozen groups, expect
    the recalibrated coverage of new families to scatter by several points around ``L``.
    The interval is indicative only: a percentile bootstrap of a tail quantile over
    clusters is rough (for a well-specified predictor and 150 families, the 95% factor's
    interval can miss 1 narrowly; ``tests/test_recalibration.py`` checks coverage instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from bayes_lsl.data import DataError
from bayes_lsl.errors import BayesLslError
from bayes_lsl.holdout import (
    INTERVAL_LEVELS,
    HoldoutResult,
    _cluster_codes,
    _interval,
    _resample_counts,
    _resampled_means,
    interval_columns,
)
from bayes_lsl.scores import interval_score

#: Bootstrap resamples of the factors' intervals.
N_BOOT = 1000


@dataclass(frozen=True)
class Recalibration:
    """Interval-width factors per nominal level, and what they were learned from.

    Attributes
    ----------
    factors : dict
        Level to factor ``s``: the model's distances from the median to the interval's
        ends are multiplied by ``s`` (above 1: the model's intervals were too narrow).
    table : DataFrame
        Indexed by ``level``: ``factor``, its cluster-bootstrap ``factor_lower`` and
        ``factor_upper`` (95%), ``coverage_before`` (of the model's intervals on the
        learning cells), ``n_cells`` and ``n_clusters``.
    n_cells, n_clusters : int
        Held-out cells and family groups the factors were learned from.
    cluster : str or None
        The column the clusters came from.
    """

    factors: dict[float, float]
    table: pd.DataFrame
    n_cells: int
    n_clusters: int
    cluster: str | None = "group"
    levels: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(sorted(self.factors)))

    def factor(self, level: float) -> float:
        """The factor of ``level``; an error naming the learned levels if it has none."""
        for known, s in self.factors.items():
            if np.isclose(known, level):
                return s
        raise BayesLslError(f"level: no factor learned for {level}; learned levels are {list(self.levels)}")

    def apply(self, prediction, *, level: float = 0.95):
        """The prediction with its intervals scaled about the median, clipped to ``[0, 1]``.

        Parameters
        ----------
        prediction : DataFrame or bayes_lsl.predict.Prediction
            A table with ``median`` and intervals: ``lower``/``upper`` (at ``level``) and
            any of the level columns ``lower_50``, ``upper_50``, ... (as in
            :attr:`bayes_lsl.holdout.HoldoutResult.predictions`), e.g. from
            :func:`bayes_lsl.predict` or :func:`bayes_lsl.evaluate_holdout`; or a
            :class:`~bayes_lsl.predict.Prediction`, whose table is scaled (its draws stay
            the model's).
        level : float
            The level of the table's ``lower``/``upper`` (``predict``'s ``level``).

        Returns
        -------
        DataFrame or Prediction
            The same, with the intervals scaled, ``recalibrated`` set to True, the
            factors in ``attrs["recalibration"]``, and ``interval_score`` (when the
            table has one and an ``observed`` column) recomputed for the new
            ``lower``/``upper``.

        Raises
        ------
        BayesLslError
            If the table has no ``median``, is already recalibrated, or has intervals at
            a level without a factor.
        """
        if hasattr(prediction, "table") and hasattr(prediction, "draws"):
            return replace(prediction, table=self.apply(prediction.table, level=level))
        table = prediction
        if "median" not in table.columns:
            raise BayesLslError("prediction: recalibration scales intervals about the median; the table has none")
        if "recalibrated" in table.columns and table["recalibrated"].any():
            raise BayesLslError("prediction: its intervals are already recalibrated")
        ends = {(lo, hi): self.factor(lvl) for lvl in self.levels
                for lo, hi in [interval_columns(lvl)] if lo in table.columns}  # fmt: skip
        if "lower" in table.columns:
            ends[("lower", "upper")] = self.factor(level)
        if not ends:
            raise BayesLslError("prediction: no interval columns (lower/upper or lower_50 ...) to recalibrate")
        out = table.copy()
        median = table["median"].to_numpy(float)
        for (lo, hi), s in ends.items():
            out[lo] = np.clip(median - s * (median - table[lo].to_numpy(float)), 0.0, 1.0)
            out[hi] = np.clip(median + s * (table[hi].to_numpy(float) - median), 0.0, 1.0)
        if {"interval_score", "observed", "lower"} <= set(out.columns):
            out["interval_score"] = interval_score(out["lower"], out["upper"], out["observed"], alpha=1 - level)
        out["recalibrated"] = True
        out.attrs["recalibration"] = {float(k): float(v) for k, v in self.factors.items()}
        return out

    def _repr_html_(self) -> str:
        return self.table._repr_html_()

    def __repr__(self) -> str:
        return (f"Recalibration(from {self.n_cells} cells in {self.n_clusters} clusters,\n"
                f"{self.table.round(3).to_string()}\n)")  # fmt: skip


def conformity_scores(observed: np.ndarray, median: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The smallest factor by which each interval, scaled about its median, covers its observed score.

    ``(y - m) / (u - m)`` above the median, ``(m - y) / (m - l)`` below; 0 at the median;
    infinite where the score lies on a side of width 0.
    """
    y, m, lo, hi = (np.asarray(v, float) for v in (observed, median, lower, upper))
    distance = np.where(y >= m, y - m, m - y)
    half = np.where(y >= m, hi - m, m - lo)
    out = np.full(y.shape, np.inf)
    np.divide(distance, half, out=out, where=half > 0)
    return np.where(distance == 0, 0.0, out)


def conformal_factor(scores: np.ndarray, level: float, weights: np.ndarray | None = None) -> float:
    """The split-conformal quantile: the ``ceil((n + 1) level)``-th smallest score (infinite if beyond ``n``).

    With ``weights`` (counts of each score, as in a bootstrap resample) the weighted
    version: ``n`` is their sum.
    """
    scores = np.asarray(scores, float)
    w = np.ones(len(scores)) if weights is None else np.asarray(weights, float)
    order = np.argsort(scores, kind="stable")
    cum = np.cumsum(w[order])
    n = cum[-1] if len(cum) else 0.0
    k = np.ceil((n + 1) * level - 1e-9)
    if n == 0 or k > n:
        return np.inf
    return float(scores[order][np.searchsorted(cum, k - 1e-9)])


def recalibrate(
    result: HoldoutResult | pd.DataFrame,
    *,
    levels: Sequence[float] | None = None,
    cluster: str | None = "group",
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Recalibration:
    """Learn interval-width factors from held-out predictions (see the module's docstring).

    Parameters
    ----------
    result : HoldoutResult or DataFrame
        Held-out predictions of the training data, ideally
        ``bl.cross_validate(train, scheme="largest-in-family")``, or their
        ``predictions`` (``observed``, ``median`` and the intervals ``lower_50`` ...
        ``upper_95``; a table with only ``lower``/``upper`` needs ``levels`` naming their
        one level).
    levels : sequence of float, optional
        The nominal levels; default those of the table's interval columns among
        :data:`~bayes_lsl.holdout.INTERVAL_LEVELS`.
    cluster : str or None
        The unit resampled for the factors' intervals (``"group"``: family groups, as in
        :func:`bayes_lsl.holdout.score_predictions`); ``None``: cells.
    n_boot, seed
        Bootstrap resamples of the factors' intervals and their seed.

    Returns
    -------
    Recalibration

    Raises
    ------
    DataError
        If there is no held-out cell with an observed score, or no interval at a level.
    """
    table = result.predictions if isinstance(result, HoldoutResult) else result
    cells = table[table["observed"].notna()].reset_index(drop=True)
    if cells.empty:
        raise DataError("result: no held-out cell with an observed score to learn from")
    if "median" not in cells.columns:
        raise DataError("result: the predictions have no median column to scale the intervals about")
    if levels is None:
        levels = [lvl for lvl in INTERVAL_LEVELS if interval_columns(lvl)[0] in cells.columns]
        if not levels:
            raise DataError("result: no interval columns lower_50 ... upper_95; pass levels= for lower/upper")
    codes = _cluster_codes(cells, cluster)
    counts = _resample_counts(codes.max() + 1, n_boot, seed)
    rows = {}
    for level in sorted(map(float, levels)):
        if not 0 < level < 1:
            raise BayesLslError(f"levels must be in (0, 1), got {level}")
        lo, hi = interval_columns(level)
        if lo not in cells.columns:
            if len(levels) > 1 or "lower" not in cells.columns:
                raise DataError(f"result: no interval columns {lo}/{hi} for level {level}")
            lo, hi = "lower", "upper"
        r = conformity_scores(cells["observed"], cells["median"], cells[lo], cells[hi])
        boot = np.array([conformal_factor(r, level, weights=c[codes]) for c in counts])
        _, low, high = _interval(np.where(np.isfinite(boot), boot, np.nan), 0.95)
        covered = (r <= 1.0).astype(float)
        rows[level] = {"factor": conformal_factor(r, level), "factor_lower": low, "factor_upper": high,
                       "coverage_before": covered.mean(),
                       "coverage_before_se": _interval(_resampled_means(covered, codes, counts), 0.95)[0],
                       "n_cells": len(r), "n_clusters": codes.max() + 1}  # fmt: skip
    out = pd.DataFrame(rows).T
    out.index.name = "level"
    out[["n_cells", "n_clusters"]] = out[["n_cells", "n_clusters"]].astype(int)
    return Recalibration({lvl: float(row["factor"]) for lvl, row in out.iterrows()}, out, len(cells),
                         int(codes.max() + 1), cluster)  # fmt: skip


def coverage_by_level(
    predictions: pd.DataFrame,
    levels: Sequence[float] = INTERVAL_LEVELS,
    *,
    cluster: str | None = "group",
    n_boot: int = N_BOOT,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Empirical coverage of the central intervals at each nominal level, with cluster-bootstrap intervals.

    Parameters
    ----------
    predictions : DataFrame
        Held-out predictions with ``observed`` and the level columns (``lower_50`` ...).
    levels : sequence of float
        Nominal levels whose columns to read.
    cluster, n_boot, seed
        As in :func:`bayes_lsl.holdout.score_predictions`: the bootstrap resamples family groups.
    ci : float
        Level of the bootstrap intervals.

    Returns
    -------
    DataFrame
        One row per level: ``level``, ``coverage``, ``coverage_lower``, ``coverage_upper``,
        ``coverage_se``, ``width`` (mean), ``n``, ``clusters``, ``recalibrated``.
    """
    cells = predictions[predictions["observed"].notna()].reset_index(drop=True)
    codes = _cluster_codes(cells, cluster)
    counts = _resample_counts(codes.max() + 1, n_boot, seed)
    recalibrated = bool("recalibrated" in cells.columns and cells["recalibrated"].any())
    rows = []
    for level in levels:
        lo, hi = interval_columns(level)
        if lo not in cells.columns:
            raise DataError(f"predictions: no interval columns {lo}/{hi} for level {level}")
        covered = ((cells["observed"] >= cells[lo]) & (cells["observed"] <= cells[hi])).to_numpy(float)
        se, lower, upper = _interval(_resampled_means(covered, codes, counts), ci)
        rows.append({"level": float(level), "coverage": covered.mean(), "coverage_lower": lower,
                     "coverage_upper": upper, "coverage_se": se, "width": (cells[hi] - cells[lo]).mean(),
                     "n": len(cells), "clusters": int(codes.max() + 1), "recalibrated": recalibrated})  # fmt: skip
    return pd.DataFrame(rows)
