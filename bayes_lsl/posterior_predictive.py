"""Posterior predictive checks and LOO-PIT of any fit: where the model does not reproduce its data.

The replicated scores (:func:`posterior_predictive`) are those of the fitted models
themselves, drawn as :func:`bayes_lsl.predict_draws` draws predictions for a seen family
(the same code): for each parameter draw, each family's effect and a Beta score per
observed cell.

- ``nuts`` / ``advi``: the posterior draws of the parameters and of ``alpha``; the
  replicates are the posterior predictive.
- ``mle``: draws from the asymptotic normal of the parameters
  (:func:`bayes_lsl.parameter_draws`) and, per draw, the family effects from their
  conditional posterior given the family's scores (Laplace; empirical Bayes): the
  plug-in predictive with the estimate's uncertainty added.
- ``map``: the point only, family effects at their mode: Beta noise alone (a warning says so).

:func:`posterior_predictive_check` compares observed and replicated scores by benchmark,
by size bin and by base against instruction-tuned models: means and standard deviations
with their posterior predictive p-values, and the coverage of central intervals. These
are *in-sample* checks: each cell's own score informs its replicate (through the
parameters and its family's effect), so they are conservative; misfit they show is real,
and fit they show can be optimistic. :func:`loo_pit` removes that optimism by PSIS-LOO
(ArviZ's ``loo_pit``): the probability, under the predictive with the cell left out,
of a score at most the observed one; uniform when the model is calibrated. For ``mle``
fits the draws of the asymptotic normal and of the Laplace family effects stand in for
posterior draws (a flat-prior, large-sample approximation of the posterior); the same
Pareto k that flags unreliable PSIS flags where that approximation cannot be trusted.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.result import FitInfo
from bayes_lsl.kinds import kind_from_name
from bayes_lsl.model.likelihood import draw_scores, score_logp_shapes
from bayes_lsl.predict import score_distribution, score_mixture

#: What the checks can group cells by.
GROUPINGS = ("benchmark", "size_bin", "kind", "family", "model")

#: Number of size bins (quantiles of log parameters over the fitted models).
N_SIZE_BINS = 3


def model_kind(models: Sequence[str], families: Sequence[str] | None = None) -> np.ndarray:
    """``"tuned"`` or ``"base"`` for each model, by the rule on names of :func:`bayes_lsl.kinds.kind_from_name`.

    A model is tuned when its name, or else its family's, says so (``gemma-2-9b-it``,
    ``qwen2-7b-instruct``, ``yi-1.5-chat``); every other model counts as ``"base"``. The
    checks use this only for fits whose data carry no kinds (``ScalingData.kind``, which
    :func:`bayes_lsl.load_leaderboard` derives from the leaderboard's own labels).
    """
    families = [""] * len(models) if families is None else list(families)
    if len(families) != len(models):
        raise BayesLslError(f"families has {len(families)} entries for {len(models)} models")
    return np.array([kind_from_name(m) or kind_from_name(f) or "base" for m, f in zip(models, families, strict=True)])


def size_bins(size: np.ndarray, n_bins: int = N_SIZE_BINS) -> np.ndarray:
    """Label of each model's size bin: quantiles of log parameters, e.g. ``"7.2-70 B"``."""
    size = np.asarray(size, float)
    edges = np.quantile(np.log(size), np.linspace(0, 1, n_bins + 1))
    index = np.clip(np.searchsorted(edges, np.log(size), side="right") - 1, 0, n_bins - 1)
    bounds = np.exp(edges)
    labels = [f"{i + 1}: {bounds[i]:.3g}-{bounds[i + 1]:.3g} B" for i in range(n_bins)]
    return np.array([labels[i] for i in index])


def _kinds_of(models: np.ndarray, families: np.ndarray, kinds, fitted: np.ndarray | None = None) -> np.ndarray:
    if kinds is None:
        return fitted if fitted is not None else model_kind(models, families)
    if isinstance(kinds, pd.DataFrame):
        if not {"model", "kind"} <= set(kinds.columns):
            raise BayesLslError("kinds, as a DataFrame, needs columns 'model' and 'kind'")
        kinds = dict(zip(kinds["model"].astype(str), kinds["kind"].astype(str), strict=True))
    if isinstance(kinds, pd.Series):
        kinds = kinds.astype(str).to_dict()
    if not isinstance(kinds, Mapping):
        raise BayesLslError(f"kinds must be a mapping model -> kind or a DataFrame, got {type(kinds).__name__}")
    missing = [m for m in models if m not in kinds]
    if missing:
        raise BayesLslError(f"kinds lacks model(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return np.array([str(kinds[m]) for m in models])


def posterior_predictive(
    fit: xr.DataTree, *, n_draws: int | None = 1000, seed: int = 0, kinds=None
) -> xr.Dataset:
    """Replicated scores of every observed cell of the fit, with the cells' labels.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit` (any method; see the module's docstring for what the
        draws are for each).
    n_draws : int or None
        Parameter draws (one replicate each). ``None``: every posterior draw of a
        draw-based fit in chain order (what PSIS needs), or 1000 for ``mle``.
    seed : int
        Seed of the parameter draws, family effects and scores.
    kinds : mapping or DataFrame, optional
        Each model's kind (``model -> "base" | "tuned"``, or a frame with columns
        ``model`` and ``kind``); default the fitted data's kinds (``ScalingData.kind``),
        else :func:`model_kind`'s rule on names.

    Returns
    -------
    xarray.Dataset
        ``y_rep`` and ``log_lik`` (sample, cell): replicated scores (clipped into
        ``[eps, 1 - eps]`` as the data were) and the log density of each observed score
        under each draw; ``y`` (cell) the observed scores (as fitted,
        clipped into ``[eps, 1 - eps]``); cell coordinates ``model``, ``family``,
        ``benchmark``, ``size``, ``size_bin`` and ``kind``. ``attrs["chains"]`` is the
        number of chains the samples come in (1 unless every draw of a sampled fit is used).
    """
    info = FitInfo.from_tree(fit)
    cd = fit["constant_data"].to_dataset()
    frame = pd.DataFrame({"model": cd["model"].values.astype(str), "family": cd["model_family"].values.astype(str),
                          "size": cd["size"].values, "tokens": cd["tokens"].values})  # fmt: skip
    scores = cd["scores"].values
    chains = 1
    if n_draws is None:
        chains = info.n_chains if info.has_draws else 1
        n_draws = info.n_chains * info.n_draws if info.has_draws else 1000
    draws, rng = score_distribution(fit, frame, np.full(scores.shape, np.nan), n_draws=n_draws, seed=seed)
    if draws.sizes["sample"] != n_draws or draws.sizes["sample"] % chains:
        chains = 1  # a subsample: its order says nothing about chains
    rows, cols = np.nonzero(~np.isnan(scores))
    a = draws["shape_a"].values[:, rows, cols]
    b = draws["shape_b"].values[:, rows, cols]
    eps, kappa = score_mixture(draws)
    eps = None if eps is None else eps[:, 0]  # (sample, 1) against the (sample, cell) shapes
    y = scores[rows, cols]
    models, families = frame["model"].to_numpy()[rows], frame["family"].to_numpy()[rows]
    fitted = cd["kind"].values.astype(str) if "kind" in cd else None
    kind = _kinds_of(frame["model"].to_numpy(), frame["family"].to_numpy(), kinds, fitted)[rows]
    coords = {
        "model": ("cell", models),
        "family": ("cell", families),
        "benchmark": ("cell", np.asarray(info.benchmarks)[cols]),
        "size": ("cell", frame["size"].to_numpy()[rows]),
        "size_bin": ("cell", size_bins(frame["size"].to_numpy())[rows]),
        "kind": ("cell", kind),
    }
    return xr.Dataset(
        {
            # Clipped as the data were (ScalingData's eps), so that replicates and scores compare like with like.
            "y_rep": (("sample", "cell"), np.clip(draw_scores(a, b, rng, eps, kappa), info.eps, 1 - info.eps)),
            "log_lik": (("sample", "cell"), score_logp_shapes(y, a, b, eps, kappa)),
            "y": ("cell", y),
        },
        coords=coords,
        attrs={"chains": chains, "method": info.method},
    )


@dataclass(frozen=True, eq=False)
class PosteriorPredictiveCheck:
    """What :func:`posterior_predictive_check` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per grouping and group (see :func:`posterior_predictive_check`).
    cells : pandas.DataFrame
        One row per observed cell: labels, ``observed``, the replicates' ``mean``, the
        bounds of each central interval (``lower_90``, ``upper_90`` ...) and ``pit``, the
        in-sample ``P(y_rep <= y)``.
    replicates : xarray.Dataset
        :func:`posterior_predictive`'s draws.
    dependence : pandas.DataFrame
        Checks of what the cell-wise table cannot see, the residuals' dependence across
        benchmarks (see :func:`residual_dependence`).
    """

    table: pd.DataFrame
    cells: pd.DataFrame
    replicates: xr.Dataset
    dependence: pd.DataFrame

    def plot(self, **kwargs):
        """:func:`bayes_lsl.plots.plot_ppc` of this check."""
        from bayes_lsl.plots import plot_ppc

        return plot_ppc(self, **kwargs)

    def _repr_html_(self) -> str:
        return self.table._repr_html_()

    def __repr__(self) -> str:
        return (f"PosteriorPredictiveCheck(\n{self.table.round(3).to_string(max_rows=40)}\n"
                f"dependence:\n{self.dependence.round(3).to_string()}\n)")


def posterior_predictive_check(
    fit: xr.DataTree,
    *,
    by: Sequence[str] = ("benchmark", "size_bin", "kind"),
    levels: Sequence[float] = (0.5, 0.9, 0.95),
    n_draws: int = 1000,
    seed: int = 0,
    kinds=None,
    replicates: xr.Dataset | None = None,
) -> PosteriorPredictiveCheck:
    """Observed against replicated scores, by benchmark, size bin and kind of model.

    For each group of cells, the test statistics ``T`` are the mean and the standard
    deviation of its scores; ``p_mean`` and ``p_sd`` are the posterior predictive p-values
    ``P(T(y_rep) >= T(y))`` (near 0 or 1: the model cannot reproduce that feature; near
    0.5: it can). ``coverage_50`` ... are the shares of the group's observed scores
    inside each cell's central predictive interval (nominal: the level). ``pit_mean`` is
    the mean in-sample PIT ``P(y_rep <= y)`` (0.5 when the predictions are centred; above:
    scores higher than predicted). In-sample: see the module's docstring.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit`.
    by : sequence of str
        Groupings, among :data:`GROUPINGS`; ``"all"`` is always added.
    levels : sequence of float
        Probabilities of the central intervals whose coverage is reported.
    n_draws, seed, kinds
        As :func:`posterior_predictive`.
    replicates : xarray.Dataset, optional
        :func:`posterior_predictive`'s draws, to reuse them.

    Returns
    -------
    PosteriorPredictiveCheck
        ``table`` columns: ``grouping``, ``group``, ``n_cells``, ``observed_mean``,
        ``replicated_mean``, ``p_mean``, ``observed_sd``, ``replicated_sd``, ``p_sd``,
        ``coverage_50`` ... and ``pit_mean``.
    """
    unknown = [g for g in by if g not in GROUPINGS]
    if unknown:
        raise BayesLslError(f"by must be among {GROUPINGS}, got {unknown}")
    bad = [lv for lv in levels if not 0 < lv < 1]
    if bad:
        raise BayesLslError(f"levels must be in (0, 1), got {bad}")
    rep = replicates if replicates is not None else posterior_predictive(fit, n_draws=n_draws, seed=seed, kinds=kinds)
    y_rep, y = rep["y_rep"].values, rep["y"].values
    cells = pd.DataFrame({name: rep[name].values for name in GROUPINGS})
    cells["observed"], cells["mean"] = y, y_rep.mean(axis=0)
    covered = {}
    for level in levels:
        lower, upper = np.quantile(y_rep, [(1 - level) / 2, (1 + level) / 2], axis=0)
        tag = f"{100 * level:g}"
        cells[f"lower_{tag}"], cells[f"upper_{tag}"] = lower, upper
        covered[tag] = (lower <= y) & (y <= upper)
    cells["pit"] = (y_rep <= y).mean(axis=0)
    rows = []
    for grouping in ("all", *by):
        labels = np.full(len(y), "all") if grouping == "all" else cells[grouping].to_numpy()
        for group in pd.unique(labels):
            mask = labels == group
            rep_mean, rep_sd = y_rep[:, mask].mean(axis=1), y_rep[:, mask].std(axis=1)
            obs_mean, obs_sd = y[mask].mean(), y[mask].std()
            row = {"grouping": grouping, "group": str(group), "n_cells": int(mask.sum()),
                   "observed_mean": obs_mean, "replicated_mean": rep_mean.mean(),
                   "p_mean": (rep_mean >= obs_mean).mean(), "observed_sd": obs_sd,
                   "replicated_sd": rep_sd.mean(), "p_sd": (rep_sd >= obs_sd).mean()}  # fmt: skip
            row |= {f"coverage_{tag}": c[mask].mean() for tag, c in covered.items()}
            rows.append(row | {"pit_mean": cells["pit"].to_numpy()[mask].mean()})
    table = pd.DataFrame(rows)
    order = {g: i for i, g in enumerate(("all", *by))}
    table = table.sort_values(["grouping", "group"], key=lambda s: s.map(order) if s.name == "grouping" else s)
    dependence = residual_dependence(rep, n_replicates=min(200, len(y_rep)), seed=seed)
    return PosteriorPredictiveCheck(table.reset_index(drop=True), cells, rep, dependence)


def _dependence_statistics(residual: np.ndarray, row: np.ndarray, col: np.ndarray, shape) -> tuple[float, float]:
    """(sd over models of a model's mean residual, mean |correlation| of residuals between benchmarks)."""
    grid = np.full(shape, np.nan)
    grid[row, col] = residual
    frame = pd.DataFrame(grid)
    corr = frame.corr(min_periods=10).to_numpy()
    off = corr[~np.eye(len(corr), dtype=bool)]
    return float(np.nanstd(np.nanmean(grid, axis=1))), float(np.nanmean(np.abs(off)))


def residual_dependence(rep: xr.Dataset, *, n_replicates: int = 200, seed: int = 0) -> pd.DataFrame:
    """Posterior predictive checks of the residuals' dependence across a model's benchmarks.

    A model with too few skills, or family effects that do not hold for every member
    of a family, can still cover each score on its own: a smaller Beta precision absorbs
    the misfit. What it cannot reproduce is the residuals' dependence: a model's scores
    on the benchmarks of a missing skill move together. With residuals ``y - E[y_rep]``
    (and ``y_rep - E[y_rep]`` for ``n_replicates`` replicated data sets), two statistics:

    - ``model_mean_sd``: the standard deviation over models of each model's mean residual;
    - ``benchmark_corr``: the mean absolute correlation of residuals between benchmarks
      (over models scored on both; pairs with fewer than 10 are left out).

    Returns
    -------
    pandas.DataFrame
        One row per statistic: ``observed``, ``replicated`` (mean over replicates) and
        ``p_value`` ``P(T(y_rep) >= T(y))``: near 0, the data have more dependence than
        the model can make.
    """
    y_rep, y = rep["y_rep"].values, rep["y"].values
    models = pd.factorize(rep["model"].values)[0]
    benchmarks = pd.factorize(rep["benchmark"].values)[0]
    shape = (models.max() + 1, benchmarks.max() + 1)
    centre = y_rep.mean(axis=0)
    observed = _dependence_statistics(y - centre, models, benchmarks, shape)
    pick = np.random.default_rng(seed).choice(len(y_rep), size=min(n_replicates, len(y_rep)), replace=False)
    replicated = np.array([_dependence_statistics(y_rep[s] - centre, models, benchmarks, shape) for s in pick])
    return pd.DataFrame({"statistic": ["model_mean_sd", "benchmark_corr"], "observed": observed,
                         "replicated": replicated.mean(axis=0),
                         "p_value": (replicated >= np.array(observed)).mean(axis=0)})  # fmt: skip


def _psis_tree(rep: xr.Dataset, log_lik: np.ndarray | None = None) -> xr.DataTree:
    """An ArviZ DataTree of the replicates (``y``: chain, draw, cell) for ``loo_pit``/``loo``."""
    chains = int(rep.attrs.get("chains", 1))
    S, n = rep.sizes["sample"], rep.sizes["cell"]

    def split(values):
        return (("chain", "draw", "cell"), np.asarray(values).reshape(chains, S // chains, n))

    coords = {"chain": np.arange(chains), "draw": np.arange(S // chains), "cell": np.arange(n)}
    ll = rep["log_lik"].values if log_lik is None else log_lik
    return xr.DataTree.from_dict({
        "posterior": xr.Dataset({"y_rep": split(rep["y_rep"].values)}, coords=coords),
        "posterior_predictive": xr.Dataset({"y": split(rep["y_rep"].values)}, coords=coords),
        "log_likelihood": xr.Dataset({"y": split(ll)}, coords=coords),
        "observed_data": xr.Dataset({"y": ("cell", rep["y"].values)}, coords={"cell": np.arange(n)}),
    })


def loo_pit(
    fit: xr.DataTree,
    *,
    group: str = "cell",
    n_draws: int | None = None,
    seed: int = 0,
    replicates: xr.Dataset | None = None,
) -> pd.DataFrame:
    """LOO-PIT of every observed score: ``P(y_rep <= y | the other scores)`` by PSIS-LOO.

    ArviZ's ``arviz_stats.loo_pit`` on the fit's log-likelihood and replicates
    (:func:`posterior_predictive`, every posterior draw by default). Calibrated
    predictions give uniform values; too many near 0 and 1 (a U) mean intervals too
    narrow, a hump in the middle intervals too wide, a slope scores systematically above
    or below the predictions. For an ``mle`` fit the draws of the asymptotic normal (and
    the Laplace family effects) stand in for posterior draws (see the module's docstring);
    a ``map`` fit, a point, has none and is refused.

    Parameters
    ----------
    fit : xarray.DataTree
        An ``mle``, ``advi`` or ``nuts`` fit.
    group : {"cell", "model"}
        What is left out: the score alone, or every score of its model (PSIS weights from
        the model's log-likelihood summed over its scores, given its family's effect):
        the predictive of a model not evaluated at all, from its family's other models.
        A model alone in its family is then its family left out, with a family effect the
        weights cannot move far from the model's own scores: its k says so.
    n_draws : int or None
        Draws (``None``: every posterior draw, in chains; 1000 for ``mle``).
    seed : int
    replicates : xarray.Dataset, optional
        :func:`posterior_predictive`'s draws, to reuse them.

    Returns
    -------
    pandas.DataFrame
        One row per observed cell: ``model``, ``family``, ``benchmark``, ``size_bin``,
        ``kind``, ``observed``, ``loo_pit`` and ``pareto_k`` (PSIS's, per cell or per
        model: above 0.7 the value is unreliable).
    """
    from arviz_stats import loo
    from arviz_stats import loo_pit as az_loo_pit

    info = FitInfo.from_tree(fit)
    if not info.has_draws and info.method != "mle":
        raise BayesLslError(f"loo_pit needs draws: a {info.method!r} fit is a point (use mle, advi or nuts)")
    if group not in ("cell", "model"):
        raise BayesLslError(f"group must be 'cell' or 'model', got {group!r}")
    rep = replicates if replicates is not None else posterior_predictive(fit, n_draws=n_draws, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns on high k: the column reports it
        if group == "cell":
            tree = _psis_tree(rep)
            pointwise = loo(tree, pointwise=True, var_name="y")
            log_weights, k = pointwise.log_weights, pointwise.pareto_k
        else:
            index, _ = pd.factorize(rep["model"].values)
            summed = np.zeros((rep.sizes["sample"], index.max() + 1))
            np.add.at(summed.T, index, rep["log_lik"].values.T)
            by_model = loo(_psis_tree(rep, summed[:, index]), pointwise=True, var_name="y")
            # Every cell of a model takes the model's weights.
            log_weights, k = by_model.log_weights, by_model.pareto_k
            tree = _psis_tree(rep)
        pit = az_loo_pit(tree, var_names="y", log_weights=xr.Dataset({"y": log_weights}),
                         pareto_k=xr.Dataset({"y": k}), random_state=seed)  # fmt: skip
    pit = pit["y"] if isinstance(pit, xr.Dataset) else pit
    out = pd.DataFrame({name: rep[name].values for name in ("model", "family", "benchmark", "size_bin", "kind")})
    out["observed"] = rep["y"].values
    out["loo_pit"] = np.asarray(pit).ravel()
    out["pareto_k"] = np.asarray(k).ravel()
    return out
