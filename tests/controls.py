"""Criteria for the calibration claims of the tests, and broken methods that must fail them.

A calibration test that a broken method also passes shows nothing. Each claim is a
criterion function here that raises ``AssertionError`` (with the numbers) when it does not
hold; the tests assert that our method passes it and that a *negative control*, a method
broken in one known way, fails it. The controls are built from the package's own pieces
(a fit with something removed), never from a copy of its math:

- :func:`plug_in`: the point estimate's Beta intervals, without the parameters' or the
  family effect's uncertainty (the fit relabelled as a point fit, which ``predict`` treats
  as such);
- :func:`family_ignoring`: each new model treated as of a family never seen, so that its
  family effect is drawn from ``N(0, corr)`` instead of conditioned on the family's scores;
- :func:`prior_family_effects`: a fit whose scores are hidden from the family-effect step,
  so that ``compare_families`` draws both effects from their prior;
- :func:`inflated_se`: standard errors (and the covariance they come from) x 1.5.

Each predictor also gives its draws (``PREDICTIVES``: a ``Prediction``), so that
:func:`scored_cells` adds the proper scores (CRPS, interval score, log predictive density)
and :func:`assert_better_scores` compares them paired by family.

Every criterion is a test at level ``TEST_LEVEL``: a correct method fails it by chance
about once in 100 seeds. Tolerances come from the number of independent units (families,
pairs of families, simulated data sets), never from a run's printed numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import scipy.stats
import xarray as xr

import bayes_lsl as bl
from bayes_lsl.fitting import FitInfo
from bayes_lsl.holdout import cell_scores
from bayes_lsl.model.likelihood import corr_to_z

TEST_LEVEL = 0.01


# ------------------------------------------------------------------ predictors
# Each predictor gives a Prediction (table and draws: the proper scores need the draws);
# PREDICTORS give the tables alone, which the same seed makes identical.
def ours_draws(fit: xr.DataTree, design: pd.DataFrame, seed: int):
    """The package's predictor."""
    return bl.predict_draws(fit, design, seed=seed)


def plug_in_draws(fit: xr.DataTree, design: pd.DataFrame, seed: int):
    """Beta intervals at the point estimate (``alpha`` at the family's empirical-Bayes mode).

    Relabelled ``map``, the fit is a point fit: ``predict`` repeats the point instead of
    drawing parameters, and takes a seen family's effect from the fit's ``alpha`` (for an
    ``mle`` fit, the mode) instead of drawing it. What is left is the Beta noise; 4000 draws
    put its quantiles within Monte Carlo error ~0.003 of the exact ones.
    """
    point = fit.copy(deep=True)
    point.attrs["method"] = "map"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "a point estimate": the point of this control
        return bl.predict_draws(point, design, seed=seed, n_draws=4000)


def family_ignoring_draws(fit: xr.DataTree, design: pd.DataFrame, seed: int):
    """Each model as of a family never seen: its family effect from ``N(0, corr)``."""
    prediction = bl.predict_draws(fit, design.assign(family="unseen-" + design["family"].astype(str)), seed=seed)
    table = prediction.table
    return replace(prediction, table=table.assign(family=table["family"].str.removeprefix("unseen-")))


PREDICTIVES = {"ours": ours_draws, "plug-in": plug_in_draws, "family-ignoring": family_ignoring_draws}


def _table_of(predictive):
    def table(fit: xr.DataTree, design: pd.DataFrame, seed: int) -> pd.DataFrame:
        return predictive(fit, design, seed).table

    table.__doc__ = predictive.__doc__
    return table


ours, plug_in, family_ignoring = (_table_of(p) for p in PREDICTIVES.values())
PREDICTORS = {"ours": ours, "plug-in": plug_in, "family-ignoring": family_ignoring}


# ------------------------------------------------------------------ other controls
def prior_family_effects(fit: xr.DataTree) -> xr.DataTree:
    """The fit with every score hidden from the family-effect step (``constant_data.scores`` NaN).

    A family's effect given no scores is its prior ``N(0, corr)``, which the Laplace step
    reproduces exactly; so ``compare_families`` on this fit compares two prior draws.
    """
    blind = fit.copy(deep=True)
    data = blind["constant_data"].to_dataset()
    data["scores"] = xr.full_like(data["scores"], np.nan)
    blind["constant_data"] = xr.DataTree(data)
    return blind


def inflated_se(fit: xr.DataTree, factor: float = 1.5) -> xr.DataTree:
    """The fit with every standard error times ``factor`` (covariance times ``factor**2``)."""
    wide = fit.copy(deep=True)
    mle = wide["mle"].to_dataset()
    for name in [n for n in mle.data_vars if str(n).endswith("_se")]:
        mle[name] = mle[name] * factor
    mle["theta_cov"] = mle["theta_cov"] * factor**2
    wide["mle"] = xr.DataTree(mle)
    return wide


# ------------------------------------------------------------------ interval criteria
def interval_cells(table: pd.DataFrame, observed: pd.DataFrame) -> pd.DataFrame:
    """One row per predicted score with an observed value: ``unit`` (the family),
    ``covered``, ``width`` and ``abs_error`` (of the predictive mean).

    ``observed``: the true scores, wide (``model`` and one column per benchmark).
    """
    long = observed.melt(id_vars=["model"], var_name="benchmark", value_name="truth").dropna()
    cells = table.merge(long, on=["model", "benchmark"])
    return pd.DataFrame(
        {
            "unit": cells["family"].to_numpy(),
            "model": cells["model"].to_numpy(),
            "benchmark": cells["benchmark"].to_numpy(),
            "covered": ((cells["truth"] >= cells["lower"]) & (cells["truth"] <= cells["upper"])).to_numpy(),
            "width": (cells["upper"] - cells["lower"]).to_numpy(),
            "abs_error": (cells["truth"] - cells["mean"]).abs().to_numpy(),
        }
    ).sort_values(["unit", "model", "benchmark"], ignore_index=True)


def summary(cells: pd.DataFrame) -> dict[str, float]:
    """Coverage, mean width and MAE of ``cells`` (for messages and reports)."""
    return {"coverage": float(cells["covered"].mean()), "width": float(cells["width"].mean()),
            "mae": float(cells["abs_error"].mean()), "n_cells": len(cells),
            "n_units": int(cells["unit"].nunique())}  # fmt: skip


def coverage_se(cells: pd.DataFrame, level: float = 0.95) -> tuple[float, float, int]:
    """Coverage of ``cells``, its cluster-robust standard error over the units, and the number of units.

    The units (families, or pairs of families) are independent; the cells of one unit
    are not (they share the error of the family effect), so the standard error of the
    coverage is the cluster-robust one, from the spread of the units' own coverages (ratio
    estimator). It is never taken below that of independent cells at the nominal level:
    positive dependence within a unit can only raise it, and a unit without misses would
    otherwise claim an error of zero.
    """
    coverage = float(cells["covered"].mean())
    per = cells.groupby("unit")["covered"].agg(["sum", "count"])
    n = len(per)
    m = per["count"].mean()
    resid = (per["sum"] - coverage * per["count"]) / m  # ratio-estimator residuals
    se_cluster = float(np.sqrt((resid**2).sum() / (n * (n - 1))))
    return coverage, max(se_cluster, float(np.sqrt(level * (1 - level) / len(cells)))), n


def assert_calibrated(cells: pd.DataFrame, level: float = 0.95, extra_se: float = 0.0) -> dict[str, float]:
    """The intervals' coverage is ``level`` up to sampling error, two-sided.

    The standard error is :func:`coverage_se`'s, with ``extra_se`` added in quadrature (the
    error of something learned from other, independent units, e.g. a recalibration
    factor). Tolerance: the two-sided t quantile at ``TEST_LEVEL`` with (units - 1)
    degrees of freedom times that error.
    """
    stats = summary(cells)
    _, se, n = coverage_se(cells, level)
    se = float(np.hypot(se, extra_se))
    tolerance = float(scipy.stats.t.ppf(1 - TEST_LEVEL / 2, n - 1) * se)
    stats |= {"se": se, "tolerance": tolerance}
    assert abs(stats["coverage"] - level) <= tolerance, (
        f"coverage {stats['coverage']:.3f} is not {level} +- {tolerance:.3f} "
        f"(se {se:.4f} over {n} independent units): {stats}"
    )
    return stats


def assert_sharper(cells: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
    """Narrower intervals and smaller absolute errors than ``reference``, beyond sampling error.

    Paired by unit (the same cells): each unit's mean width and mean absolute error minus
    the reference's; a one-sided t test at ``TEST_LEVEL`` over the independent units
    requires the mean difference to be negative by more than its t quantile times its
    standard error. Against the family-ignoring predictor, this is the claim that the
    family's scores carry information about a new model of the family.
    """
    keys = ["unit", "model", "benchmark"]
    both = cells.merge(reference, on=keys, suffixes=("", "_ref"), validate="one_to_one")
    assert len(both) == len(cells) == len(reference), "the two predictions must cover the same cells"
    per = both.groupby("unit")[["width", "width_ref", "abs_error", "abs_error_ref"]].mean()
    n = len(per)
    t = float(scipy.stats.t.ppf(1 - TEST_LEVEL, n - 1))
    stats: dict[str, float] = {}
    for what in ("width", "abs_error"):
        diff = per[what] - per[f"{what}_ref"]
        bound = float(diff.mean() + t * diff.std(ddof=1) / np.sqrt(n))
        stats |= {what: float(both[what].mean()), f"{what}_ref": float(both[f"{what}_ref"].mean()),
                  f"{what}_upper_bound_of_difference": bound}  # fmt: skip
        assert bound < 0, f"{what}: not smaller than the reference's beyond sampling error ({n} units): {stats}"
    return stats


def scored_cells(prediction, fit: xr.DataTree, observed: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """:func:`interval_cells` of a Prediction, with each cell's proper scores
    (``crps``, ``interval_score``, ``log_density``: :func:`bayes_lsl.holdout.cell_scores`)."""
    keys = ["model", "benchmark"]
    long = observed.melt(id_vars=["model"], var_name="benchmark", value_name="observed").dropna()
    truth = prediction.table.drop(columns="observed").merge(long, on=keys)
    scored = cell_scores(truth, prediction.draws, level=level, eps=FitInfo.from_tree(fit).eps)
    return interval_cells(prediction.table, observed).merge(
        scored[[*keys, "crps", "interval_score", "log_density"]], on=keys, validate="one_to_one"
    )


def assert_better_scores(
    cells: pd.DataFrame, reference: pd.DataFrame, scores: tuple[str, ...] = ("crps", "log_density")
) -> dict[str, float]:
    """Better mean proper scores than ``reference``, beyond sampling error, paired by unit.

    As :func:`assert_sharper`: each unit's mean score minus the reference's on the same
    cells, a one-sided t test at ``TEST_LEVEL`` over the independent units. CRPS and the
    interval score must be smaller, the log predictive density larger. Unlike width and
    MAE, these are proper: a predictor cannot improve them in expectation by being
    narrower or wider than the truth, so beating a reference on them is beating it as a
    forecast, spread and all.
    """
    keys = ["unit", "model", "benchmark"]
    both = cells.merge(reference, on=keys, suffixes=("", "_ref"), validate="one_to_one")
    assert len(both) == len(cells) == len(reference), "the two predictions must cover the same cells"
    per = both.groupby("unit")[[c for s in scores for c in (s, f"{s}_ref")]].mean()
    n = len(per)
    t = float(scipy.stats.t.ppf(1 - TEST_LEVEL, n - 1))
    stats: dict[str, float] = {"n_units": n}
    for what in scores:
        sign = -1.0 if what == "log_density" else 1.0  # oriented so that smaller is better
        diff = sign * (per[what] - per[f"{what}_ref"])
        bound = float(diff.mean() + t * diff.std(ddof=1) / np.sqrt(n))
        stats |= {what: float(both[what].mean()), f"{what}_ref": float(both[f"{what}_ref"].mean()),
                  f"{what}_bound": bound}  # fmt: skip
        assert bound < 0, f"{what}: not better than the reference's beyond sampling error ({n} units): {stats}"
    return stats


# ------------------------------------------------------------------ Wald recovery
def unconstrained_truth(fit: xr.DataTree, truth: dict) -> np.ndarray:
    """The true parameters on the MLE's unconstrained scale, in the order of ``fit.mle.param``.

    The transforms are the model's: log for the anchor loadings and ``phi``, the canonical
    partial correlations (the package's :func:`~bayes_lsl.simulate.corr_to_z`) for ``corr``,
    logit for the score mixture's ``score_eps``;
    blocks are flattened row-major, as the fit does.
    """
    K = truth["lam"].shape[0]
    blocks = {"beta": truth["beta"].ravel(), "lam_anchor_log__": np.log(np.diag(truth["lam"][:, :K])),
              "lam_free": truth["lam"][:, K:].ravel(), "b": truth["b"], "phi_log__": np.log(truth["phi"]),
              "corr_z": corr_to_z(truth["corr"])}  # fmt: skip
    if "score_eps" in truth:  # scores="beta-mixture": its weight, on the logit scale
        blocks["score_eps_logodds__"] = np.atleast_1d(scipy.special.logit(truth["score_eps"]))
    out = []
    for name in map(str, fit.mle["param"].values):
        block, index = name.removesuffix("]").split("[")
        out.append(blocks[block][int(index)])
    return np.array(out)


def wald_errors(fit: xr.DataTree, truth: dict) -> tuple[np.ndarray, np.ndarray]:
    """The estimate's error on the unconstrained scale and its covariance by the fit
    (``mle.theta_cov``, the inverse observed information)."""
    return fit.mle["theta_hat"].values - unconstrained_truth(fit, truth), fit.mle["theta_cov"].values


def wald_statistic(fit: xr.DataTree, truth: dict) -> tuple[float, int]:
    """``(theta_hat - theta)' V^-1 (theta_hat - theta)`` and its degrees of freedom.

    Asymptotically chi-square with as many degrees of freedom as free parameters, if ``V``
    (the fit's inverse observed information) is right; too small if the standard errors
    are inflated, too large if they are too small. Directions of zero variance (a
    degenerate covariance, as in fits saved before flat directions got the priors' spread)
    are left out, and the degrees of freedom with them.
    """
    d, cov = wald_errors(fit, truth)
    rank = int(np.linalg.matrix_rank(cov, hermitian=True))
    return float(d @ np.linalg.pinv(cov, hermitian=True) @ d), rank


def assert_wald_calibrated(statistics: list[tuple[float, int]]) -> dict[str, float]:
    """The Wald statistics of independent data sets, summed, are chi-square: two-sided.

    Their sum over independent data sets is chi-square with the summed degrees of freedom;
    ``mean z^2`` (the sum over those degrees of freedom) must lie in its central
    ``1 - TEST_LEVEL`` band. With 4 x 29 degrees of freedom the band is about 0.69-1.37:
    standard errors x 1.5 give about 1/2.25 of the true value, x 2/3 about 2.25 times it.
    """
    total = sum(w for w, _ in statistics)
    df = sum(k for _, k in statistics)
    low, high = scipy.stats.chi2.ppf([TEST_LEVEL / 2, 1 - TEST_LEVEL / 2], df) / df
    stats = {"mean_z2": total / df, "df": df, "low": float(low), "high": float(high)}
    assert low <= total / df <= high, f"mean z^2 outside its chi-square band: {stats}"
    return stats


def assert_marginal_z2_calibrated(errors: list[tuple[np.ndarray, np.ndarray]], seed: int = 0) -> dict[str, float]:
    """The mean of the parameters' own squared z-scores ``(estimate - truth)^2 / se^2``: two-sided.

    Each ``z_i^2`` has mean 1, but the z's of one data set are correlated (``R``, the
    correlation matrix of the fit's covariance), so their sum is not chi-square: it is
    ``sum_k lambda_k chi2_1`` over the eigenvalues of ``R``. Its band is taken from 100,000
    draws of that sum (over the independent data sets together), at the fits' own ``R``
    (with inflated standard errors ``R`` is unchanged; only the z's shrink).
    """
    rng = np.random.default_rng(seed)
    total, n, draws = 0.0, 0, np.zeros(100_000)
    for d, cov in errors:
        se = np.sqrt(np.diag(cov))
        free = se > 1e-8
        z = d[free] / se[free]
        corr = cov[np.ix_(free, free)] / np.outer(se[free], se[free])
        lam = np.clip(np.linalg.eigvalsh(corr), 0.0, None)
        total, n = total + float(z @ z), n + len(z)
        draws += rng.chisquare(1, size=(len(draws), len(lam))) @ lam
    low, high = np.quantile(draws / n, [TEST_LEVEL / 2, 1 - TEST_LEVEL / 2])
    stats = {"mean_z2": total / n, "n": n, "low": float(low), "high": float(high)}
    assert low <= total / n <= high, f"mean marginal z^2 outside its band: {stats}"
    return stats


# ------------------------------------------------------------------ choosing K
def assert_not_overselected(table: pd.DataFrame, true_K: int) -> dict[str, int]:
    """Neither AIC nor BIC chooses more skills than the data were simulated with."""
    chosen = {criterion: int(table[criterion].idxmin()) for criterion in ("aic", "bic")}
    assert max(chosen.values()) <= true_K, f"over-selects: chose {chosen} on data simulated with K={true_K}"
    return chosen


def likelihood_alone(table: pd.DataFrame) -> pd.DataFrame:
    """Negative control: ``select_k``'s table with both criteria replaced by -2 log-likelihood
    (no penalty for the extra parameters)."""
    return table.assign(aic=-2 * table["marginal_loglik"], bic=-2 * table["marginal_loglik"])
