"""The posterior's modes: chains started in each local optimum, weighed by stacking.

The leaderboard posterior has at least two modes (the skills trade their loadings on
MMLU, MMLU-Pro and BBH). NUTS chains do not cross between them, so R-hat over chains in
different modes only says that they differ. Following Yao, Vehtari & Gelman (2022),
"Stacking for non-mixing Bayesian computations: the curse and blessing of multimodal
posteriors" (JMLR 23), each chain is treated as an approximation of its own, and the
chains are weighed by *stacking*: the weights on the simplex that maximize the
leave-one-out log score of the mixture of chains,

    max_w  sum_i log sum_k w_k exp(elpd_loo[k, i]),

where ``elpd_loo[k, i]`` is chain k's PSIS-LOO predictive density of score i. A mode's
weight is the sum of its chains' weights.

- :func:`sample_modes` finds the distinct local optima of the marginal likelihood
  (multi-start Laplace screens, as ``mle`` runs them) and starts NUTS chains at each.
- :func:`modes` groups a fit's chains into modes and weighs them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.result import PARAMETERS, SAMPLE_DIMS


@dataclass(frozen=True)
class Modes:
    """The modes of a sampled fit, weighed by stacking of its chains (from :func:`modes`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per mode (index ``mode``, 0 the heaviest): ``chains`` (their indices),
        ``mean_loglik`` (mean log-likelihood of all scores over the mode's draws; it does
        not depend on the parameterization), ``mean_lp`` (the sampler's mean log density,
        where recorded), ``elpd_loo`` (PSIS-LOO of the mode's pooled draws) and ``weight``
        (stacking weight, summing to 1 over modes).
    chain_weights : list of float
        Stacking weight of each chain (chains of one mode are interchangeable, so only
        their sum, the mode's weight, is determined).
    differences : pandas.DataFrame
        The parameter entries that differ most between the heaviest mode and any other:
        ``entry``, ``mode``, ``mean_main``, ``mean_other`` and ``standardized`` (the
        difference of means over the pooled within-mode sd). Empty for one mode.
    max_pareto_k : float
        Largest Pareto k of the per-chain PSIS-LOO (above 0.7 the weights are less reliable).
    """

    table: pd.DataFrame
    chain_weights: list[float]
    differences: pd.DataFrame = field(default_factory=pd.DataFrame)
    max_pareto_k: float = float("nan")

    @property
    def n_modes(self) -> int:
        return len(self.table)

    @property
    def weights(self) -> np.ndarray:
        return self.table["weight"].to_numpy()

    def __repr__(self) -> str:
        text = f"{self.n_modes} mode(s), stacking weights {np.round(self.weights, 3).tolist()}\n"
        text += self.table.round(3).to_string()
        if len(self.differences):
            text += "\nParameters that differ most between the modes:\n" + self.differences.round(3).to_string()
        return text


# ----------------------------------------------------------------------- weighing
def stacking_weights(elpd: np.ndarray, *, max_iter: int = 100_000, tol: float = 1e-10) -> np.ndarray:
    """Stacking weights of K predictive distributions from their pointwise LOO log densities.

    Maximizes ``sum_i log sum_k w_k exp(elpd[k, i])`` over the simplex (a concave problem)
    by the fixed-point iteration of mixture weights, ``w_k <- w_k mean_i p_ki / sum_j w_j p_ji``,
    which increases the objective at every step.

    Parameters
    ----------
    elpd : ndarray (K, n)
        Pointwise log predictive densities, one row per distribution.
    """
    elpd = np.asarray(elpd, float)
    if elpd.ndim != 2 or not np.isfinite(elpd).all():
        raise BayesLslError("elpd must be a finite (distributions x points) array")
    p = np.exp(elpd - elpd.max(axis=0))  # a common factor per point leaves the weights as they are
    w = np.full(len(p), 1.0 / len(p))
    for _ in range(max_iter):
        mix = w @ p
        new = w * (p / mix).mean(axis=1)
        new /= new.sum()
        if np.max(np.abs(new - w)) < tol:
            return new
        w = new
    return w


def _chain_loo(fit: xr.DataTree) -> tuple[np.ndarray, float]:
    """Per-chain PSIS-LOO pointwise log densities (chains x scores), and the largest Pareto k."""
    import arviz_stats as azs  # imported here: it doubles the import time of the package

    ll, post = fit["log_likelihood"].to_dataset(), fit["posterior"].to_dataset()
    rows, kmax = [], -np.inf
    for c in range(ll.sizes["chain"]):
        # The posterior gives the relative efficiency of the chain's draws (PSIS's r_eff).
        tree = xr.DataTree.from_dict({"posterior": post.isel(chain=[c]), "log_likelihood": ll.isel(chain=[c])})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # high Pareto k is reported by the caller
            loo = azs.loo(tree, pointwise=True, var_name="y")
        rows.append(np.asarray(loo.elpd_i).ravel())
        kmax = max(kmax, float(np.nanmax(np.asarray(loo.pareto_k))))
    return np.array(rows), kmax


def _flat_parameters(post: xr.Dataset) -> tuple[np.ndarray, list[str]]:
    """Every parameter entry as a column (chain, draw, entry), with its label."""
    arrays, labels = [], []
    for name in PARAMETERS:
        da = post[name]
        extra = [d for d in da.dims if d not in SAMPLE_DIMS]
        stacked = da.stack(entry=extra) if extra else da.expand_dims(entry=[()])
        arrays.append(stacked.transpose("chain", "draw", "entry").values)
        keys = [i if isinstance(i, tuple) else (i,) for i in stacked["entry"].values]
        labels += [f"{name}[{', '.join(map(str, key))}]" for key in keys]
    return np.concatenate(arrays, axis=2), labels


def chain_groups(fit: xr.DataTree, distance: float = 1.0) -> list[list[int]]:
    """Chains grouped into modes: two chains share a mode when no parameter's chain means
    differ by more than ``distance`` within-chain standard deviations (single linkage).

    Within one mode chain means differ by Monte Carlo error, a small fraction of a
    standard deviation; between the leaderboard's modes, loadings differ by several.
    """
    values, _ = _flat_parameters(fit["posterior"].to_dataset())
    means, sds = values.mean(axis=1), values.std(axis=1)
    scale = np.sqrt((sds**2).mean(axis=0))  # pooled within-chain sd per entry
    moving = scale > 1e-9
    n = len(means)
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if np.max(np.abs(means[i, moving] - means[j, moving]) / scale[moving]) <= distance:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def modes(fit: xr.DataTree, *, distance: float = 1.0, top: int = 8) -> Modes:
    """Group a sampled fit's chains into modes and weigh the modes by stacking.

    Parameters
    ----------
    fit : xarray.DataTree
        A ``nuts`` fit (with ``log_likelihood``), e.g. from :func:`sample_modes`, whose
        chains may sit in different modes.
    distance : float
        Chains whose means of every parameter entry lie within this many within-chain sds
        of each other share a mode (:func:`chain_groups`).
    top : int
        Parameter entries listed in ``differences``.

    Returns
    -------
    Modes
        Number of modes, each mode's chains, mean log-likelihood and log density, its
        stacking weight, and the parameters that differ most between the modes.

    Examples
    --------
    >>> post = bl.sample_modes(data, K=4, seed=1)  # doctest: +SKIP
    >>> bl.modes(post)  # doctest: +SKIP
    2 mode(s), stacking weights [0.93, 0.07] ...
    """
    if "log_likelihood" not in fit.children:
        raise BayesLslError("modes need a fit with a log_likelihood group (method='nuts')")
    post = fit["posterior"].to_dataset()
    if post.sizes.get("draw", 0) < 20:
        raise BayesLslError(f"modes need draws; this fit has {post.sizes.get('draw', 0)} per chain")
    groups = chain_groups(fit, distance)
    elpd, kmax = _chain_loo(fit)
    chain_w = stacking_weights(elpd)
    loglik = fit["log_likelihood"]["y"].sum("cell").mean("draw").values
    lp = fit["sample_stats"]["lp"].mean("draw").values if "sample_stats" in fit.children and "lp" in fit[
        "sample_stats"] else None  # fmt: skip
    rows = []
    for chains in groups:
        # A mode's own LOO (its chains pooled): the mixture of its chains is how it predicts.
        pooled = np.log(np.exp(elpd[chains] - elpd[chains].max(0)).mean(0)) + elpd[chains].max(0)
        rows.append(
            {
                "chains": chains,
                "mean_loglik": float(loglik[chains].mean()),
                "mean_lp": float(lp[chains].mean()) if lp is not None else np.nan,
                "elpd_loo": float(pooled.sum()),
                "weight": float(chain_w[chains].sum()),
            }
        )
    table = pd.DataFrame(rows).sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)
    table.index.name = "mode"
    differences = _differences(fit, [list(c) for c in table["chains"]], top)
    return Modes(table=table, chain_weights=[float(w) for w in chain_w], differences=differences, max_pareto_k=kmax)


def _differences(fit: xr.DataTree, groups: list[list[int]], top: int) -> pd.DataFrame:
    """The entries whose means differ most (in pooled within-mode sds) between the main mode and the others."""
    if len(groups) < 2:
        return pd.DataFrame(columns=["entry", "mode", "mean_main", "mean_other", "standardized"])
    values, labels = _flat_parameters(fit["posterior"].to_dataset())
    per_mode = [values[g].reshape(-1, values.shape[2]) for g in groups]
    rows = []
    for m in range(1, len(groups)):
        a, b = per_mode[0], per_mode[m]
        scale = np.sqrt(0.5 * (a.var(0) + b.var(0)))
        moving = scale > 1e-9
        z = np.where(moving, (b.mean(0) - a.mean(0)) / np.where(moving, scale, 1.0), 0.0)
        for i in np.argsort(-np.abs(z))[:top]:
            rows.append({"entry": labels[i], "mode": m, "mean_main": a.mean(0)[i], "mean_other": b.mean(0)[i],
                         "standardized": z[i]})  # fmt: skip
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------- finding and sampling
def local_optima(
    data: ScalingData,
    K: int,
    *,
    n_starts: int = 8,
    seed: int = 0,
    perturbation: float = 0.3,
    agree_tol: float = 0.5,
    priors: Mapping[str, float] | None = None,
    dispersion: str = "benchmark",
) -> list[dict]:
    """The distinct local optima of the marginal likelihood's Laplace screens, best first.

    The starts are ``mle``'s (the anchored start and ``n_starts - 1`` seeded
    perturbations, see :func:`bayes_lsl.fitting.mle.fit_mle`); optima whose
    log-likelihoods lie within ``agree_tol`` of each other count as one.

    Returns
    -------
    list of dict
        Each: ``loglik`` (Laplace) and ``values``, the parameters and family effects at
        the optimum (keys ``beta``, ``lam``, ``b``, ``phi``, ``corr``, ``alpha``), usable as
        ``fit(..., method="nuts", init=values)``.
    """
    from bayes_lsl.fitting.marginal import MarginalLikelihood
    from bayes_lsl.fitting.mle import anchored_start, default_nodes, screens
    from bayes_lsl.model import build_model

    model = build_model(data, K=K, priors=priors, dispersion=dispersion, centered=False)
    parts = MarginalLikelihood(model, data, default_nodes(K))
    rng = np.random.default_rng(seed)
    theta0 = anchored_start(data, K, parts)
    starts = [theta0 + (0.0 if s == 0 else perturbation) * rng.normal(size=theta0.shape) for s in range(n_starts)]
    found = [r for r in screens(parts, starts, 2000, None) if np.isfinite(r["loglik"])]
    found.sort(key=lambda r: -r["loglik"])
    optima: list[dict] = []
    for r in found:
        if all(abs(r["loglik"] - o["loglik"]) >= agree_tol for o in optima):
            values = dict(parts.natural(r["theta"]))
            values["alpha"] = np.asarray(r["modes"], float)
            optima.append({"loglik": float(r["loglik"]), "values": values})
    return optima


def sample_modes(
    data: ScalingData,
    K: int = 4,
    *,
    n_starts: int = 8,
    chains_per_mode: int = 2,
    max_modes: int = 4,
    seed: int = 0,
    progress: bool = True,
    **nuts_options,
) -> xr.DataTree:
    """NUTS chains started at each distinct local optimum (:func:`local_optima`), in one fit.

    Each optimum gets ``chains_per_mode`` chains of its own run
    (``fit(..., method="nuts", init=<the optimum>)``, seed ``seed + mode``); the runs'
    chains are joined, so :func:`modes` and :func:`bayes_lsl.diagnose` read the result
    like any ``nuts`` fit. Attrs ``start_optimum`` (the optimum each chain started at) and
    ``optima_loglik`` (their Laplace log-likelihoods) say where the chains began.

    Parameters
    ----------
    n_starts : int
        Starts of the multi-start search (more find more optima).
    chains_per_mode : int
        Chains per optimum.
    max_modes : int
        At most this many optima (the best) are sampled.
    **nuts_options
        Passed to :func:`bayes_lsl.fit` (``draws``, ``tune``, ``priors`` ...).
    """
    from bayes_lsl.fitting import fit

    fit_options = {k: nuts_options.pop(k) for k in ("priors", "dispersion") if k in nuts_options}
    optima = local_optima(data, K, n_starts=n_starts, seed=seed, **fit_options)[:max_modes]
    runs = []
    for m, optimum in enumerate(optima):
        with warnings.catch_warnings():
            # Each run is judged by modes() and diagnose() on the joined chains.
            warnings.simplefilter("ignore", UserWarning)
            runs.append(fit(data, K, "nuts", seed + m, progress=progress, init=optimum["values"],
                            chains=chains_per_mode, **fit_options, **nuts_options))  # fmt: skip
    return _join_chains(runs, optima)


def _join_chains(runs: list[xr.DataTree], optima: list[dict]) -> xr.DataTree:
    groups = {}
    for name in ("posterior", "sample_stats", "log_likelihood"):
        parts = [r[name].to_dataset() for r in runs]
        joined = xr.concat(parts, dim="chain", coords="minimal", compat="override")
        groups[name] = joined.assign_coords(chain=np.arange(joined.sizes["chain"]))
    first = runs[0]
    tree = xr.DataTree.from_dict(
        {"/" + name: ds for name, ds in groups.items()}
        | {"/" + name: first[name].to_dataset() for name in first.children if name not in groups}
    )
    from bayes_lsl.fitting.nuts import convergence_summary

    n = [r["posterior"].sizes["chain"] for r in runs]
    tree.attrs = dict(first.attrs)
    tree.attrs.update(
        convergence_summary(groups["posterior"]),  # over all modes: R-hat says the modes differ
        chain_mean_lp=[v for r in runs for v in r.attrs.get("chain_mean_lp", [])],
        chain_mean_loglik=[v for r in runs for v in r.attrs.get("chain_mean_loglik", [])],
        chains=int(sum(n)),
        start_optimum=[m for m, k in enumerate(n) for _ in range(k)],
        optima_loglik=[o["loglik"] for o in optima],
        n_divergences=int(sum(r.attrs.get("n_divergences", 0) for r in runs)),
        wall_time_s=float(sum(r.attrs.get("wall_time_s", 0.0) for r in runs)),
        init="modes",
        minor_mode_chains=[],  # several modes are what this fit is for: modes() weighs them
    )
    return tree
