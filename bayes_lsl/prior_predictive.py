"""Prior predictive checks: what the priors say about scores before any score is seen.

:func:`prior_predictive` draws the model's parameters from their priors with PyMC's own
``pm.sample_prior_predictive`` on :func:`bayes_lsl.build_model`, and from them the mean
score ``mu`` and a score ``y`` of every model on every benchmark of the data (the
likelihood's own Beta shapes, :func:`bayes_lsl.parameters.beta_shapes`).
:func:`summarize_prior_predictive` says how much of that prior mass sits at the bounds of
the score scale, where a prior that is weakly informative on the score scale should put
little: mean scores within :data:`BOUND_MARGIN` of a benchmark's floor or of 1, and scores
below :data:`BOUND_MARGIN` or above ``1 - BOUND_MARGIN``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.nuts import structural_constants
from bayes_lsl.fitting.result import DISPERSION_PARAMETERS, PARAMETERS, SAMPLE_DIMS, FitInfo
from bayes_lsl.model import build_model, merge_priors
from bayes_lsl.model.likelihood import corr_to_z
from bayes_lsl.model.parameterization import model_parameterization
from bayes_lsl.parameters import beta_shapes

#: Distance to a bound of the score scale counted as "at the bound".
BOUND_MARGIN = 0.01

__all__ = [
    "BOUND_MARGIN",
    "PRIOR_TERMS",
    "PriorPredictiveSummary",
    "log_prior",
    "model_trace",
    "prior_predictive",
    "prior_sensitivity",
    "summarize_prior_predictive",
]


def prior_predictive(
    data: ScalingData,
    K: int = 4,
    *,
    draws: int = 500,
    seed: int = 0,
    priors: Mapping[str, float] | None = None,
    dispersion: str = "benchmark",
    covariates: str | Sequence[str] | None = None,
    by_kind: bool = False,
) -> xr.DataTree:
    """Draws from the prior and the prior predictive distribution of the scores.

    Parameters
    ----------
    data : ScalingData
        The models (covariates, families) and benchmarks (floors) to predict; their
        scores go into ``observed_data`` only.
    K : int
        Number of skills.
    draws : int
        Number of prior draws.
    seed : int
        Seed of every random step.
    priors : dict, optional
        Overrides of :data:`bayes_lsl.model.DEFAULT_PRIORS`.
    dispersion : {"benchmark", "covariates"}
        As in :func:`bayes_lsl.build_model`.
    covariates, by_kind
        The design, as in :func:`bayes_lsl.fit` (default: the data's terms).

    Returns
    -------
    xarray.DataTree
        ``prior``: ``beta``, ``lam``, ``b``, ``phi``, ``corr``, ``alpha``, ``theta``, the
        linear predictor ``eta`` and mean score ``mu`` (``model``, ``benchmark``), dims
        ``chain`` (one), ``draw``; ``prior_predictive``: scores ``y`` (chain, draw, model,
        benchmark) for every model and benchmark; ``observed_data``: ``y`` (model,
        benchmark), NaN where not scored; ``constant_data``: ``floor`` (benchmark),
        ``observed`` (model, benchmark) and ``x``. Attrs ``K``, ``seed``, ``dispersion``
        and every prior setting (``prior_<name>``).

    Examples
    --------
    >>> import bayes_lsl as bl
    >>> tree = bl.prior_predictive(bl.load_example(), K=2, draws=200, seed=1)  # doctest: +SKIP
    >>> print(bl.summarize_prior_predictive(tree))  # doctest: +SKIP
    """
    if not isinstance(draws, (int, np.integer)) or draws < 1:
        raise BayesLslError(f"draws must be a positive integer, got {draws!r}")
    pr = merge_priors(priors)
    data = data.with_covariates(covariates, by_kind)
    # The non-centered parameterization: every free variable has a distribution to draw
    # from (the "partial" one has flat coordinates with potentials); the model is the same.
    model = build_model(data, K, priors=pr, dispersion=dispersion, centered=False)
    names = [*PARAMETERS, "alpha", "theta", *(["phi_a", "phi_s"] if dispersion == "covariates" else [])]
    seeds = np.random.SeedSequence(seed).spawn(2)
    prior = pm.sample_prior_predictive(
        draws=int(draws), model=model, var_names=names, random_seed=np.random.default_rng(seeds[0]),
        compile_kwargs={"mode": "FAST_COMPILE"},
    )["prior"].to_dataset()
    prior = prior.drop_vars([c for c in prior.coords if c not in prior.dims])
    prior = prior.assign_coords({c: prior[c].astype(str) for c in prior.coords if prior[c].dtype == object})

    theta, lam, b = (prior[n].values[0] for n in ("theta", "lam", "b"))  # (draw, ...)
    eta = np.einsum("smk,skj->smj", theta, lam) + b[:, None, :]
    S, M, J = eta.shape
    phi = prior["phi"].values[0]
    phi = np.broadcast_to(phi[:, None, :] if phi.ndim == 2 else phi, eta.shape)
    shape_a, shape_b = beta_shapes(eta.reshape(S, -1), np.tile(data.floors, M), phi.reshape(S, -1))
    shape_a, shape_b = shape_a.reshape(eta.shape), shape_b.reshape(eta.shape)
    y = np.random.default_rng(seeds[1]).beta(shape_a, shape_b)

    grid = ("chain", "draw", "model", "benchmark")
    coords = {"model": list(data.models), "benchmark": list(data.benchmarks)}
    prior = prior.assign(
        eta=(grid, eta[None]), mu=(grid, (shape_a / (shape_a + shape_b))[None])
    ).assign_coords(coords)
    tree = xr.DataTree.from_dict(
        {
            "prior": prior,
            "prior_predictive": xr.Dataset({"y": (grid, y[None])}, coords=coords),
            "observed_data": xr.Dataset({"y": (("model", "benchmark"), data.scores)}, coords=coords),
            "constant_data": xr.Dataset(
                {
                    "floor": ("benchmark", data.floors),
                    "observed": (("model", "benchmark"), data.observed),
                    "x": (("model", "covariate"), data.x),
                },
                coords={**coords, "covariate": list(data.terms)},
            ),
        }
    )
    tree.attrs = {"K": int(K), "seed": int(seed), "dispersion": dispersion,
                  **{f"prior_{k}": v for k, v in pr.items()}}  # fmt: skip
    return tree


@dataclass(frozen=True)
class PriorPredictiveSummary:
    """How much prior mass sits at the bounds of the score scale (on the scored cells).

    Attributes
    ----------
    share_mean_at_bounds : float
        Share of prior mean scores within ``margin`` of the benchmark's floor or of 1.
    share_scores_extreme : float
        Share of prior predictive scores below ``margin`` or above ``1 - margin``.
    sd_eta : float
        Prior standard deviation of the linear predictor (logit scale), pooled over cells.
    by_benchmark : pandas.DataFrame
        The same per benchmark, with the observed scores' mean and the prior
        predictive's 5%, 50% and 95% quantiles.
    margin : float
    """

    share_mean_at_bounds: float
    share_scores_extreme: float
    sd_eta: float
    by_benchmark: pd.DataFrame
    margin: float = BOUND_MARGIN

    def __str__(self) -> str:
        return (
            f"prior mean scores within {self.margin:g} of a floor or the ceiling: {self.share_mean_at_bounds:.1%}; "
            f"prior scores below {self.margin:g} or above {1 - self.margin:g}: {self.share_scores_extreme:.1%}; "
            f"sd(eta) {self.sd_eta:.2f}"
        )


def summarize_prior_predictive(tree: xr.DataTree, *, margin: float = BOUND_MARGIN) -> PriorPredictiveSummary:
    """The shares of prior mass at the bounds of the score scale, over the scored cells.

    Parameters
    ----------
    tree : xarray.DataTree
        From :func:`prior_predictive`.
    margin : float
        Distance to a bound counted as at the bound.

    Returns
    -------
    PriorPredictiveSummary
    """
    if not 0 < margin < 0.5:
        raise BayesLslError(f"margin must be in (0, 0.5), got {margin!r}")
    for group in ("prior", "prior_predictive", "constant_data"):
        if group not in tree.children:
            raise BayesLslError(f"tree lacks the {group!r} group: pass the result of prior_predictive")
    observed = tree["constant_data"]["observed"]
    mu = tree["prior"]["mu"].where(observed)
    y = tree["prior_predictive"]["y"].where(observed)
    eta = tree["prior"]["eta"].where(observed)
    floor = tree["constant_data"]["floor"]
    at_bounds = ((mu - floor < margin) | (1.0 - mu < margin)).where(observed)
    extreme = ((y < margin) | (y > 1.0 - margin)).where(observed)
    sample = ("chain", "draw", "model")
    table = pd.DataFrame({
        "share_mean_at_bounds": at_bounds.mean(sample).to_series(),
        "share_scores_extreme": extreme.mean(sample).to_series(),
        "sd_eta": eta.std(sample).to_series(),
        "observed_mean": tree["observed_data"]["y"].mean("model").to_series(),
        "q05": y.quantile(0.05, sample).drop_vars("quantile").to_series(),
        "q50": y.quantile(0.5, sample).drop_vars("quantile").to_series(),
        "q95": y.quantile(0.95, sample).drop_vars("quantile").to_series(),
    })  # fmt: skip
    return PriorPredictiveSummary(
        share_mean_at_bounds=float(at_bounds.mean()),
        share_scores_extreme=float(extreme.mean()),
        sd_eta=float(eta.std()),
        by_benchmark=table,
        margin=float(margin),
    )


def model_trace(fit: xr.DataTree, model: pm.Model) -> xr.DataTree:
    """A fit's draws as values of ``model``'s free variables, for ``pm.sample_posterior_predictive``.

    A fit's ``posterior`` holds the model's reported variables (``lam``, ``corr``,
    ``alpha`` ...), not its free variables (``lam_anchor``, ``corr_z``, ``alpha_z`` ...);
    given only the former, PyMC would redraw the latter from the prior. This maps them back
    (the inverse of :func:`bayes_lsl.build_model`'s transforms, draw by draw).

    Parameters
    ----------
    fit : xarray.DataTree
        Any fit (``mle`` and ``map`` give their point, family effects at their modes).
    model : pm.Model
        ``bl.build_model(data, K, dispersion=..., centered=False or True)`` on the fit's
        data and settings.

    Returns
    -------
    xarray.DataTree
        A ``posterior`` group with the model's free variables.

    Examples
    --------
    >>> model = bl.build_model(data, K=4)  # doctest: +SKIP
    >>> pm.sample_posterior_predictive(bl.model_trace(fit, model), model=model)  # doctest: +SKIP
    """
    info = FitInfo.from_tree(fit)
    mode = model_parameterization(model)
    if mode == "partial":
        raise BayesLslError("model: build it with centered=False or True (the same model): the 'partial' "
                            "parameterization's free variables are flat, with no draws to predict from")
    K = len(model.coords["skill"])
    if K != info.K or list(model.coords["benchmark"]) != list(info.benchmarks):
        raise BayesLslError(f"model has K={K} and benchmarks {model.coords['benchmark']}; the fit has K={info.K} "
                            f"and {list(info.benchmarks)}: build it from the fit's data and K")
    post = fit["posterior"].to_dataset()
    lam = post["lam"]
    out = {
        "lam_anchor": np.abs(lam.isel(benchmark=slice(0, K)).values.diagonal(axis1=-2, axis2=-1)),
        "lam_free": lam.isel(benchmark=slice(K, None)).values,
        "beta": post["beta"].values, "b": post["b"].values,
    }  # fmt: skip
    out.update({n: post[n].values for n in ("phi", *DISPERSION_PARAMETERS) if n in post and n in model.named_vars
                and model[n] in model.free_RVs})  # fmt: skip
    corr = post["corr"].values
    flat = corr.reshape(-1, K, K)
    out["corr_z"] = np.stack([corr_to_z(c) for c in flat]).reshape(*corr.shape[:2], -1)
    alpha = post["alpha"].values
    if mode == "centered":
        out["alpha"] = alpha
    else:  # alpha = alpha_z L' (see build_model)
        chol = np.linalg.cholesky(flat).reshape(corr.shape)
        out["alpha_z"] = np.linalg.solve(chol[:, :, None], alpha[..., None])[..., 0]
        if "alpha_w" in model.named_vars:  # Student-t effects, alpha_z L' / sqrt(alpha_w): unit weights give alpha
            out["alpha_w"] = np.ones(alpha.shape[:-1])
    if "slope_z" in model.named_vars and "family_slope" in post:  # family_slope = slope_sd * slope_z
        out["slope_sd"] = post["slope_sd"].values
        out["slope_z"] = post["family_slope"].values / out["slope_sd"][:, :, None]
    missing = {rv.name for rv in model.free_RVs} - set(out)
    if missing:
        raise BayesLslError(f"model has free variable(s) {sorted(missing)} that the fit cannot give")
    dims = model.named_vars_to_dims
    ds = xr.Dataset(
        {n: ((*SAMPLE_DIMS, *dims.get(n, ())), v) for n, v in out.items()},
        coords={**{d: list(model.coords[d]) for n in out for d in dims.get(n, ())},
                **{d: post[d].values for d in SAMPLE_DIMS}},
    )  # fmt: skip
    return xr.DataTree.from_dict({"posterior": ds})


#: The model's priors by parameter: the free variables each one's density is on.
PRIOR_TERMS: Mapping[str, tuple[str, ...]] = {
    "beta": ("beta",), "lam": ("lam_anchor", "lam_free"), "b": ("b",),
    "phi": ("phi", "phi_a", "phi_s"), "corr": ("corr_z",),
}  # fmt: skip


def log_prior(fit: xr.DataTree, data: ScalingData) -> xr.Dataset:
    """Log prior density of each draw of a fit, one variable per parameter's prior.

    The densities of :data:`PRIOR_TERMS` on their own scale (no Jacobian; ``corr`` is the
    LKJ density on ``corr_z``), from the model the fit was built with; the family effects'
    ``N(0, corr)`` is part of the model, not a prior to scale, and is left out.

    Parameters
    ----------
    fit : xarray.DataTree
        A fit (e.g. ``nuts``).
    data : ScalingData
        The data it was fitted to.

    Returns
    -------
    xarray.Dataset
        ``beta``, ``lam``, ``b``, ``phi``, ``corr`` (chain, draw): the ``log_prior`` group
        that ``arviz_stats.psense`` reads.
    """
    info = FitInfo.from_tree(fit)
    model = build_model(data, info.K, centered=False, covariates=info.covariates, **info.build_options)
    post = model_trace(fit, model)["posterior"].to_dataset()
    free = {rv.name for rv in model.free_RVs}
    terms = {name: [v for v in rvs if v in free] for name, rvs in PRIOR_TERMS.items()}
    rvs = [model[v] for vs in terms.values() for v in vs]
    # The densities on each variable's own scale: the priors' parameters are constants, so
    # pm.logp of each variable at a value of its own type needs nothing else.
    values = [rv.type() for rv in rvs]
    fn = pm.compile(values, [pm.logp(rv, v).sum() for rv, v in zip(rvs, values, strict=True)])
    shape = post.sizes["chain"], post.sizes["draw"]
    out = np.empty((*shape, len(rvs)))
    for c, d in np.ndindex(*shape):
        out[c, d] = fn(*(post[rv.name].values[c, d] for rv in rvs))
    i, result = 0, {}
    for name, vs in terms.items():
        result[name] = (SAMPLE_DIMS, out[..., i : i + len(vs)].sum(-1))
        i += len(vs)
    return xr.Dataset(result, coords={d: post[d].values for d in SAMPLE_DIMS})


def prior_sensitivity(fit: xr.DataTree, data: ScalingData, **options) -> pd.DataFrame:
    """Prior and likelihood sensitivity of a sampled fit by power-scaling (Kallioinen et al. 2024).

    ArviZ's ``psense_summary`` (``arviz_stats``) on the fit's posterior, its pointwise
    ``log_likelihood`` and :func:`log_prior`: how much each parameter's posterior moves
    when the priors (all of :data:`PRIOR_TERMS` together) or the likelihood are raised
    to a power near 1, by Pareto-smoothed importance weights, without refitting.

    Parameters
    ----------
    fit : xarray.DataTree
        A ``nuts`` (or ``advi``) fit with a ``log_likelihood`` group.
    data : ScalingData
        The data it was fitted to.
    **options
        Passed to ``arviz_stats.psense_summary`` (e.g. ``threshold``, ``var_names``).

    Returns
    -------
    pandas.DataFrame
        One row per parameter entry: ``prior`` and ``likelihood`` sensitivity and the
        diagnosis (``"prior-data conflict"`` where both exceed the threshold, 0.05,
        ``"strong prior / weak likelihood"`` where only the prior does, ``"-"`` otherwise).
        Structural constants (the anchor block's zeros, the diagonal of ``corr``) and the upper
        triangle of ``corr`` (a repeat of the lower) are left out.
    """
    from arviz_stats import psense_summary

    if "log_likelihood" not in fit.children:
        raise BayesLslError("fit: has no log_likelihood group (fit with method='nuts')")
    tree = xr.DataTree.from_dict({
        "posterior": fit["posterior"].to_dataset()[list(PARAMETERS)],
        "log_likelihood": fit["log_likelihood"].to_dataset(),
        "log_prior": log_prior(fit, data),
    })  # fmt: skip
    options.setdefault("var_names", list(PARAMETERS))
    with warnings.catch_warnings():
        # Structural constants (the anchor block's zeros, corr's diagonal) have no spread,
        # so their sensitivity is 0 / 0 or rounding noise; they are dropped below.
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        table = psense_summary(tree, **options)
    return table.drop(index=_constant_labels(tree["posterior"].to_dataset()), errors="ignore")


def _constant_labels(posterior: xr.Dataset) -> list[str]:
    """``name[coord, ...]`` labels, as ArviZ's summaries write them, of the structural constants
    (:func:`~bayes_lsl.fitting.nuts.structural_constants`: the anchor block's zeros, the
    diagonal and the repeated upper triangle of ``corr``)."""
    labels = []
    for name, da in posterior.data_vars.items():
        constant = structural_constants(da)
        if not constant.any():
            continue
        dims = [d for d in da.dims if d not in SAMPLE_DIMS]
        for idx in np.argwhere(constant.transpose(*dims).values):
            coords = [str(da[d].values[i]) for d, i in zip(dims, idx, strict=True)]
            labels.append(f"{name}[{', '.join(coords)}]")
    return labels
