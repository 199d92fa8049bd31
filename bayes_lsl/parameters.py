"""Draws of the parameters from any fit, and of family effects given a family's scores.

Every downstream analysis (prediction, family comparison, allocation) propagates the
uncertainty of the parameters the same way, whatever the fitting method:

- ``nuts`` / ``advi``: the posterior draws themselves;
- ``mle``: the asymptotic normal ``N(theta_hat, V)`` of the unconstrained parameters
  (``V`` the inverse observed information), mapped through the model's transforms, so
  that anchors and ``phi`` stay positive and ``corr`` stays a correlation matrix;
- ``map``: the point itself (no parameter uncertainty; a warning says so).

A family's effect ``alpha_l`` is then drawn, for each parameter draw, from its
conditional posterior given the family's scores (and optionally new scores), by a
Laplace approximation at the conditional mode; a family never seen gets ``N(0, corr)``
(with ``family_effects="student-t"``, the prior's multivariate t, drawn exactly).
The score density, its derivatives and the link all come from :mod:`bayes_lsl.model`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import scipy.stats
import xarray as xr

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError, FitFileError
from bayes_lsl.fitting.marginal import compile_function, damped_newton, natural_map, nearest_positive_definite
from bayes_lsl.fitting.result import PARAMETERS, SAMPLE_DIMS, SCORE_PARAMETERS, SLOPE_PARAMETERS, VAR_DIMS, FitInfo
from bayes_lsl.model.likelihood import (
    beta_parameters,
    draw_family_effects,
    family_effect_logp,
    family_effect_prior_derivatives,
    family_slope_effect,
    score_information,
    score_logp,
)


def cell_precision(params: xr.Dataset, x: np.ndarray, benchmark: np.ndarray) -> np.ndarray:
    """``phi`` (sample, cell) of scores on ``benchmark`` (indices) of models with covariates ``x``."""
    if "phi_a" in params:
        phi_a, phi_s = params["phi_a"].values, params["phi_s"].values
        return np.exp(phi_a[:, benchmark] + np.einsum("cp,spc->sc", x, phi_s[:, :, benchmark]))
    return params["phi"].values[:, benchmark]


def parameter_draws(fit: xr.DataTree, *, n_draws: int = 1000, seed: int = 0) -> xr.Dataset:
    """Draws of ``beta``, ``lam``, ``b``, ``phi``, ``corr`` (and ``alpha`` for draw-based fits).

    With ``dispersion="covariates"``, ``phi_a`` and ``phi_s`` replace ``phi`` (see
    :func:`cell_precision`); with family slopes, ``slope_sd`` and ``family_slope`` come
    too. ``nuts``/``advi``: the posterior draws; ``mle``: draws from the asymptotic normal
    of the unconstrained parameters, mapped through the model's transforms; ``map``: the
    point repeated (with a warning).

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit` (any method).
    n_draws : int
        Number of draws. Draw-based fits with more draws are subsampled without
        replacement (seeded); with fewer, all their draws are used.
    seed : int
        Seed of the normal draws (``mle``) or of the subsample.

    Returns
    -------
    xarray.Dataset
        Dims ``sample`` plus each parameter's own dims (``covariate``, ``skill``,
        ``benchmark``, ``skill_other``, and ``family`` for ``alpha``).

    Examples
    --------
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # a map fit is a point: its draws repeat it
    ...     draws = bl.parameter_draws(fit, n_draws=10, seed=0)
    >>> sorted(draws.data_vars)
    ['alpha', 'b', 'beta', 'corr', 'lam', 'phi']
    >>> draws["beta"].dims
    ('sample', 'covariate', 'skill')
    """
    if n_draws < 1:
        raise BayesLslError(f"n_draws must be positive, got {n_draws}")
    info = FitInfo.from_tree(fit)
    rng = np.random.default_rng(seed)
    if info.method == "mle":
        return _mle_draws(fit, info, n_draws, rng)
    post = fit["posterior"].to_dataset()
    names = info.parameters
    missing = [n for n in names if n not in post]
    if missing:
        raise BayesLslError(f"the fit's posterior lacks {missing} (a fit saved by an older version?)")
    slopes = SLOPE_PARAMETERS if info.family_slopes else ()
    stacked = post[[*names, "alpha", *slopes]].stack(sample=SAMPLE_DIMS)
    n_total = stacked.sizes["sample"]
    if n_total == 1:
        warnings.warn(
            f"a {info.method!r} fit is a point estimate: draws repeat it, without parameter uncertainty",
            stacklevel=2,
        )
        pick = np.zeros(n_draws, dtype=int)
    else:
        pick = np.sort(rng.choice(n_total, size=n_draws, replace=False)) if n_total > n_draws else np.arange(n_total)
    out = stacked.isel(sample=pick).drop_vars(["sample", *SAMPLE_DIMS])
    out = out.assign_coords(sample=np.arange(out.sizes["sample"]))
    return out.transpose("sample", ...)


def parameter_intervals(
    fit: xr.DataTree,
    names: Sequence[str] = PARAMETERS,
    *,
    level: float = 0.95,
    n_draws: int = 4000,
    seed: int = 0,
) -> pd.DataFrame:
    """Estimate and central interval of every entry of the parameters ``names``, whatever the method.

    ``mle``: Wald intervals built on the unconstrained scale and mapped back
    (:func:`mle_intervals`), so they stay in the parameter space; draw-based fits: the
    posterior mean and central quantiles; ``map``: the point, without an interval.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit`.
    names : sequence of str
        Posterior variables, among ``beta``, ``lam``, ``b``, ``phi``, ``corr`` (and
        ``score_eps`` for a ``scores="beta-mixture"`` fit: its Wald interval is built on
        the logit scale).
    level : float
        Probability of the intervals.
    n_draws, seed : int
        Draws from the asymptotic normal of an ``mle`` fit, and their seed.

    Returns
    -------
    pandas.DataFrame
        One row per entry, in each variable's dim order: ``variable`` (``"lam"``),
        ``entry`` (``"skill_1, mmlu"``), ``parameter`` (``"lam[skill_1, mmlu]"``),
        ``estimate``, ``lower``, ``upper`` and ``interval`` (``"wald"``, ``"posterior"`` or
        ``"none"``).

    Examples
    --------
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map"): a point, so no interval
    >>> table = bl.parameter_intervals(fit, ["beta"], level=0.9)
    >>> table.columns.tolist()
    ['variable', 'entry', 'parameter', 'estimate', 'lower', 'upper', 'interval']
    >>> table["parameter"].iloc[0], table["interval"].iloc[0]
    ('beta[log_size, skill_1]', 'none')
    """
    if not 0 < level < 1:
        raise BayesLslError(f"level must be in (0, 1), got {level}")
    info = FitInfo.from_tree(fit)
    known = [*PARAMETERS, *(SCORE_PARAMETERS if info.scores == "beta-mixture" else ())]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BayesLslError(f"names must be among {known}, got {unknown}")
    post = fit["posterior"].to_dataset()
    if info.method == "mle":
        wald, kind = mle_intervals(fit, level=level, n_draws=n_draws, seed=seed), "wald"
    elif info.has_draws:
        tail = (1 - level) / 2
        quantiles = {n: post[n].quantile([tail, 1 - tail], dim=SAMPLE_DIMS).drop_vars("quantile") for n in names}
        wald, kind = {n: (q[0], q[1]) for n, q in quantiles.items()}, "posterior"
    else:
        wald, kind = {n: (post[n].mean(SAMPLE_DIMS) * np.nan,) * 2 for n in names}, "none"
    parts = []
    for name in names:
        da = post[name]
        dims = [d for d in da.dims if d not in SAMPLE_DIMS]
        stats = xr.Dataset({"estimate": da.mean(SAMPLE_DIMS), "lower": wald[name][0], "upper": wald[name][1]})
        frame = stats.to_dataframe(dim_order=dims) if dims else stats.to_pandas().to_frame().T
        entries = [", ".join(map(str, k if isinstance(k, tuple) else (k,))) for k in frame.index] if dims else [""]
        frame = frame[["estimate", "lower", "upper"]].reset_index(drop=True)
        frame.insert(0, "variable", name)
        frame.insert(1, "entry", entries)
        frame.insert(2, "parameter", [f"{name}[{e}]" if e else name for e in entries])
        parts.append(frame)
    return pd.concat(parts, ignore_index=True).assign(interval=kind)


def mle_intervals(
    fit: xr.DataTree, *, level: float = 0.95, n_draws: int = 4000, seed: int = 0
) -> dict[str, tuple[xr.DataArray, xr.DataArray]]:
    """Wald intervals of an ``mle`` fit's ``beta``, ``lam``, ``b``, ``phi``, ``corr``, built on the
    unconstrained scale and mapped back, so that they stay in the parameter space.

    The intervals are the central quantiles of the natural parameters over draws from the
    asymptotic normal of the unconstrained parameters (:func:`parameter_draws`, the
    model's own transforms). Where an entry is a monotone function of one unconstrained
    coordinate this is the Wald interval on that scale mapped back, up to Monte Carlo
    error: ``exp`` of a log-scale interval for ``phi`` and the anchor loadings (so
    positive), the symmetric interval itself for ``beta``, ``b`` and the free loadings. A
    correlation is a function of several canonical partial correlations; its interval is
    that function's distribution under the same normal, inside (-1, 1). Symmetric intervals
    on the natural scale (estimate +- z se) can leave the space near its boundary.
    :func:`parameter_intervals` gives the same as a table, for any method.

    Parameters
    ----------
    fit : xarray.DataTree
        An ``mle`` fit.
    level : float
        Probability of the intervals.
    n_draws : int
        Draws from the asymptotic normal (the Monte Carlo error of each bound is about
        ``0.04 * sqrt(4000 / n_draws)`` standard errors, from the quantile's sampling variance).
    seed : int
        Their seed (the intervals are reproducible).

    Returns
    -------
    dict
        Name -> (lower, upper), DataArrays with the posterior variable's dims (NaN where
        the fit has no finite covariance).
    """
    info = FitInfo.from_tree(fit)
    if info.method != "mle":
        raise BayesLslError(f"Wald intervals need an mle fit, not {info.method!r}")
    post = fit["posterior"].to_dataset().isel(chain=0, draw=0, drop=True)
    if not np.isfinite(fit["mle"]["theta_cov"].values).all():
        nan = {name: post[name] * np.nan for name in (*PARAMETERS, *(n for n in SCORE_PARAMETERS if n in post))}
        return {name: (da, da) for name, da in nan.items()}
    with warnings.catch_warnings():
        # Clipped boundary draws (a correlation near +-1) only move the interval's far end.
        warnings.simplefilter("ignore", UserWarning)
        draws = parameter_draws(fit, n_draws=n_draws, seed=seed)
    if "phi" not in draws:  # dispersion="covariates": the precision of every model's scores
        x = fit["constant_data"]["x"].values
        phi = np.exp(draws["phi_a"].values[:, None] + np.einsum("mc,scb->smb", x, draws["phi_s"].values))
        draws["phi"] = (("sample", *post["phi"].dims), phi)
    tail = (1 - level) / 2
    out = {}
    for name in (*PARAMETERS, *(n for n in SCORE_PARAMETERS if n in draws)):
        q = draws[name].quantile([tail, 1 - tail], dim="sample").drop_vars("quantile")
        q = q.transpose("quantile", *post[name].dims).assign_coords({d: post[name][d] for d in post[name].dims})
        out[name] = (q[0], q[1])
    return out


_BOUNDARY_EPS = 1e-6
_Z_MAX = float(np.arctanh(1.0 - _BOUNDARY_EPS))


def _mle_draws(fit: xr.DataTree, info: FitInfo, n_draws: int, rng: np.random.Generator) -> xr.Dataset:
    mle = fit["mle"].to_dataset()
    labels = [str(p) for p in mle["param"].values]
    theta_hat = mle["theta_hat"].values
    if not np.isfinite(mle["theta_cov"].values).all():
        raise BayesLslError(
            mle.attrs.get("information_problem")
            or "the fit's covariance of the parameters is not finite: its observed information is degenerate"
        )
    # Floored at zero (fits saved before information_covariance could hold a pseudo-inverse
    # with negative eigenvalues); eigh-based sampling tolerates the rest.
    cov = nearest_positive_definite(mle["theta_cov"].values, floor=0.0)
    theta = rng.multivariate_normal(theta_hat, cov, size=n_draws, method="eigh")
    # A correlation whose MLE sits near +-1 on a flat likelihood has a huge standard error
    # on the unconstrained scale, and many draws would give a singular (or non-finite)
    # correlation matrix. Its canonical partial correlations tanh(z) are kept within
    # 1 - _BOUNDARY_EPS of +-1, far below the correlation's own uncertainty.
    z = np.array([label.startswith("corr_z") for label in labels])
    outside = (np.abs(theta[:, z]) > _Z_MAX).any(axis=1)
    if outside.any():
        theta[:, z] = np.clip(theta[:, z], -_Z_MAX, _Z_MAX)
        warnings.warn(
            f"{int(outside.sum())} of {n_draws} parameter draws put a skill correlation within {_BOUNDARY_EPS:g} of "
            "+-1 and were clipped there: a correlation of this fit is near +-1 with a large standard error "
            f"(smallest eigenvalue of the information {float(mle.get('information_eigmin', np.nan)):.3g})",
            stacklevel=3,
        )
    names = info.parameters
    natural = _natural_function(fit, info, tuple(labels))
    values = [natural(t) for t in theta]
    post = fit["posterior"].to_dataset()
    coords = {d: post[d].values for name in names for d in VAR_DIMS[name]}
    draws = xr.Dataset(
        {name: (("sample", *VAR_DIMS[name]), np.stack([v[i] for v in values])) for i, name in enumerate(names)},
        coords={"sample": np.arange(n_draws), **coords},
    )
    if not np.isfinite(draws["corr"].values).all():
        raise BayesLslError(
            "draws from the MLE's asymptotic normal give non-finite correlations: the fit's observed information "
            f"is degenerate (smallest eigenvalue {float(mle.get('information_eigmin', np.nan)):.3g}). "
            "Refit with more starts (n_starts), or use method='nuts'."
        )
    return draws


#: Compiled natural-parameter maps by model structure (K, benchmarks, dispersion, layout):
#: the map does not depend on the data's values.
_NATURAL_MAPS: dict = {}


def _natural_function(fit: xr.DataTree, info: FitInfo, labels: tuple[str, ...]):
    """The map from an ``mle`` fit's unconstrained vector (its ``mle.param`` layout) to its
    parameters (:attr:`FitInfo.parameters`), derived from the graph of the model rebuilt on
    the fit's data (:func:`bayes_lsl.fitting.marginal.natural_map`)."""
    key = (info.K, info.benchmarks, info.dispersion, info.covariates, info.family_effects, info.scores, labels)
    if key not in _NATURAL_MAPS:
        from bayes_lsl.model import build_model

        model = build_model(_fit_data(fit), info.K, centered=False, **info.build_options)
        model_labels, function = natural_map(model, info.parameters)
        if tuple(model_labels) != labels:
            raise FitFileError(
                "the fit's mle.param layout does not match the model's unconstrained parameters "
                f"({len(labels)} entries against {len(model_labels)}): a fit from another version?"
            )
        _NATURAL_MAPS[key] = function
    return _NATURAL_MAPS[key]


def _fit_data(fit: xr.DataTree) -> ScalingData:
    """The data a fit was made on, rebuilt from its ``constant_data`` (scores as fitted, clipped)."""
    info = FitInfo.from_tree(fit)
    cd = fit["constant_data"].to_dataset()
    return ScalingData(
        models=cd["model"].values.astype(str),
        model_family=cd["model_family"].values.astype(str),
        size=cd["size"].values.astype(float),
        tokens=cd["tokens"].values.astype(float),
        scores=cd["scores"].values.astype(float),
        benchmarks=info.benchmarks,
        floors=info.floors,
        anchors=tuple(str(a) for a in np.atleast_1d(cd.attrs.get("anchors", info.anchors))),
        covariate_center=info.covariate_center,
        covariate_scale=info.covariate_scale,
        eps=info.eps,
        kind=cd["kind"].values.astype(object) if "kind" in cd else None,
        terms=info.covariates,
    )


# ------------------------------------------------------------ family effects
@cache
def _cell_functions(kappa: float | None = None):
    """Compiled element-wise score log-density, its first two eta-derivatives, the Fisher
    information, and the Beta shapes, all from :mod:`bayes_lsl.model`. With ``kappa`` (the
    score mixture), the derivatives take the mixing weight of each sample, ``eps`` (sample, 1)."""
    y, eta, floor, phi = pt.matrix("y"), pt.matrix("eta"), pt.vector("floor"), pt.matrix("phi")
    eps = pt.matrix("eps") if kappa is not None else None
    logp = score_logp(y, eta, floor, phi, eps, kappa)
    d1 = pt.grad(logp.sum(), eta)
    d2 = pt.grad(d1.sum(), eta)
    info = score_information(eta, floor, phi, eps, kappa)
    derivs = compile_function([y, eta, floor, phi, *([eps] if eps is not None else [])], [logp, d1, d2, info])
    a, b = beta_parameters(eta, floor, phi)
    shapes = compile_function([eta, floor, phi], [a, b])
    return derivs, shapes


def beta_shapes(eta: np.ndarray, floor: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beta shape parameters of scores with linear predictor ``eta`` (sample, cell): the main
    component's, with ``scores="beta-mixture"`` (the wide one's are ``kappa`` times these)."""
    _, shapes = _cell_functions()
    return shapes(np.asarray(eta, float), np.asarray(floor, float), np.asarray(phi, float))


@dataclass(frozen=True)
class Cells:
    """Observed scores that inform family effects: one entry per score.

    ``group`` indexes the family effect (0 .. n_groups - 1) the score depends on.
    """

    group: np.ndarray  # (C,)
    x: np.ndarray  # (C, covariate)
    benchmark: np.ndarray  # (C,) benchmark index
    y: np.ndarray  # (C,)

    @staticmethod
    def concat(parts: Sequence[Cells]) -> Cells:
        return Cells(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("group", "x", "benchmark", "y")))


def family_cells(fit: xr.DataTree, families: Sequence[str | None]) -> Cells:
    """The fit's observed scores of each family in ``families`` (``None``: a new family)."""
    cd = fit["constant_data"].to_dataset()
    fam_names = [str(f) for f in cd["family"].values]
    index = cd["family_index"].values
    scores = cd["scores"].values
    x = cd["x"].values
    parts = []
    for g, family in enumerate(families):
        if family is None:
            continue
        rows = np.flatnonzero(index == fam_names.index(family))
        r, c = np.nonzero(~np.isnan(scores[rows]))
        parts.append(Cells(np.full(len(r), g), x[rows[r]], c, scores[rows[r], c]))
    empty = Cells(np.zeros(0, int), np.zeros((0, x.shape[1])), np.zeros(0, int), np.zeros(0))
    return Cells.concat([empty, *parts])


def conditional_family_effects(
    params: xr.Dataset,
    cells: Cells,
    n_groups: int,
    floors: np.ndarray,
    max_iter: int = 50,
    tol: float = 1e-6,
    df: float | None = None,
    kappa: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Laplace approximation of ``p(alpha_g | scores, parameters)`` for every draw.

    Damped Newton steps on the log-density (scores' log-likelihood plus the
    ``N(0, corr)`` prior, or the multivariate t with ``df`` degrees of freedom), vectorized
    over draws and groups (Fisher scoring where the log-density is not locally concave;
    the t prior's curvature there is its Fisher-type ``(df + K) / (df + q) corr^-1``); the
    covariance is the inverse observed curvature at the mode, or the inverse Fisher
    information where that is not positive definite. ``kappa``: the scores are the
    mixture of ``scores="beta-mixture"`` with this precision factor and ``params["score_eps"]``.

    Returns
    -------
    mode : ndarray (sample, group, skill)
    chol : ndarray (sample, group, skill, skill)
        Cholesky factor of the approximate posterior covariance.
    """
    log_posterior = _family_log_posterior(params, cells, n_groups, floors, df, kappa)

    def evaluate(alpha):
        h, grad, fisher, hess = log_posterior(alpha)
        # Newton where the log-density is locally concave, Fisher scoring elsewhere.
        concave = np.all(np.linalg.eigvalsh(-hess) > 0, axis=-1)[..., None, None]
        return h, grad, np.where(concave, -hess, fisher), (fisher, hess)

    S, K = params.sizes["sample"], params.sizes["skill"]
    alpha, state = damped_newton(evaluate, np.zeros((S, n_groups, K)), max_iter=max_iter, tol=tol)
    fisher, hess = state[3]
    curvature = -hess
    # Where the observed curvature is not positive definite, fall back to the Fisher information.
    ok = np.all(np.linalg.eigvalsh(curvature) > 0, axis=-1)
    curvature = np.where(ok[..., None, None], curvature, fisher)
    cov = np.linalg.inv(curvature)
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    try:
        return alpha, np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        # A draw's correlation at +-1 (a fit at that boundary) leaves some inverse curvatures
        # indefinite in floating point: their nearest positive-definite matrix instead.
        return alpha, np.linalg.cholesky(nearest_positive_definite(cov, floor=1e-10))


def _family_log_posterior(params: xr.Dataset, cells: Cells, n_groups: int, floors: np.ndarray,
                          df: float | None = None, kappa: float | None = None):  # fmt: skip
    """``alpha (S, G, K) -> (log density, gradient, Fisher information + prior curvature,
    Hessian)`` of each group's effect given its scores: the scores' log-likelihood plus the
    ``N(0, corr)`` prior (up to a constant), or the multivariate t with ``df`` degrees of
    freedom (:func:`~bayes_lsl.model.likelihood.family_effect_logp`), for every parameter draw."""
    beta, lam, b = (params[n].values for n in ("beta", "lam", "b"))
    corr = params["corr"].values
    S, K = beta.shape[0], beta.shape[-1]
    G = n_groups
    prec = np.linalg.inv(corr)  # (S, K, K)
    lam_c = np.moveaxis(lam[:, :, cells.benchmark], 1, 2)  # (S, C, K)
    xb = np.einsum("cp,spk->sck", cells.x, beta)  # (S, C, K)
    offset = (xb * lam_c).sum(-1) + b[:, cells.benchmark]  # eta without alpha
    floor = np.asarray(floors, float)[cells.benchmark]
    phi_c = cell_precision(params, cells.x, cells.benchmark)
    y = np.broadcast_to(cells.y, offset.shape)
    onehot = np.eye(G)[cells.group] if len(cells.group) else np.zeros((0, G))  # (C, G)
    outer = (lam_c[..., :, None] * lam_c[..., None, :]).reshape(S, -1, K * K)  # (S, C, K*K)
    derivs, _ = _cell_functions(kappa)
    # The score mixture's weight per sample (scores="beta-mixture"), broadcast over the cells.
    mixture = () if kappa is None else (np.broadcast_to(params["score_eps"].values[:, None], offset.shape),)

    def per_group(values):
        """Sum (S, C, ...) cell values into (S, G, ...) groups (a matmul: BLAS, not einsum's loops)."""
        if values.shape[1] == 0:  # no scores at all: a new family with nothing observed
            return np.zeros((S, G, *values.shape[2:]))
        flat = values.reshape(S, values.shape[1], -1)
        return (np.swapaxes(flat, 1, 2) @ onehot).swapaxes(1, 2).reshape(S, G, *values.shape[2:])

    def evaluate(alpha):
        eta = offset + (alpha[:, cells.group] * lam_c).sum(-1)
        logp, d1, d2, info = derivs(y, eta, floor, phi_c, *mixture)
        fisher = per_group(info[..., None] * outer).reshape(S, G, K, K)
        hess = per_group(d2[..., None] * outer).reshape(S, G, K, K)
        if df is None:  # the normal prior, as it always was (bit for bit)
            prior_grad = np.einsum("skl,sgl->sgk", prec, alpha)
            h = logp @ onehot - 0.5 * (alpha * prior_grad).sum(-1)
            return h, per_group(d1[..., None] * lam_c) - prior_grad, fisher + prec[:, None], hess - prec[:, None]
        prior_grad, prior_curvature, prior_hess = family_effect_prior_derivatives(alpha, prec[:, None], df)
        q = np.einsum("sgk,skl,sgl->sg", alpha, prec, alpha)
        h = logp @ onehot + family_effect_logp(q, 0.0, K, df)  # up to log det corr, constant per draw
        return h, per_group(d1[..., None] * lam_c) + prior_grad, fisher + prior_curvature, hess + prior_hess

    return evaluate


def importance_family_effects(
    params: xr.Dataset,
    cells: Cells,
    n_groups: int,
    floors: np.ndarray,
    *,
    n_draws: int = 20_000,
    seed: int = 0,
    df: float = 5.0,
    batch: int = 2000,
    prior_df: float | None = None,
    kappa: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and covariance of ``p(alpha_g | scores, parameters)`` by importance sampling: the
    exact reference that :func:`conditional_family_effects`' Laplace approximation is checked
    against.

    Self-normalized, with a multivariate t proposal (``df`` degrees of freedom) centred at
    the Laplace mode, its shape 1.5 times the Laplace covariance (heavier tails than the
    target, so the weights have finite variance); ``n_draws`` per draw of the parameters
    and group. ``prior_df``: the family effects' prior is the multivariate t with these
    degrees of freedom (a ``family_effects="student-t"`` fit, :attr:`FitInfo.family_df`);
    None, the normal. ``kappa``: the scores' mixture, as for :func:`conditional_family_effects`.

    Returns
    -------
    mean : ndarray (sample, group, skill)
    cov : ndarray (sample, group, skill, skill)
    ess : ndarray (sample, group)
        Kish's effective sample size of the weights: the reference is trustworthy where it
        is a good fraction of ``n_draws``.
    """
    mode, chol = conditional_family_effects(params, cells, n_groups, floors, df=prior_df, kappa=kappa)
    S, G, K = mode.shape
    rng = np.random.default_rng(seed)
    scale = np.sqrt(1.5) * chol
    mean, cov, ess = np.zeros((S, G, K)), np.zeros((S, G, K, K)), np.zeros((S, G))
    for s in range(S):
        draws, log_w = [], []
        for start in range(0, n_draws, batch):
            n = min(batch, n_draws - start)
            # The parameter draw repeated n times: evaluate is vectorized over its sample axis.
            evaluate = _family_log_posterior(params.isel(sample=np.full(n, s)), cells, G, floors, prior_df, kappa)
            u = rng.standard_normal((n, G, K)) / np.sqrt(rng.chisquare(df, (n, G, 1)) / df)
            alpha = mode[s] + np.einsum("gkl,ngl->ngk", scale[s], u)
            log_q = scipy.stats.multivariate_t.logpdf(u.reshape(-1, K), shape=np.eye(K), df=df).reshape(n, G)
            draws.append(alpha)
            log_w.append(evaluate(alpha)[0] - log_q)  # the scale's Jacobian is constant per group
        alpha, log_w = np.concatenate(draws), np.concatenate(log_w)
        w = np.exp(log_w - log_w.max(axis=0))
        w /= w.sum(axis=0)
        mean[s] = np.einsum("ng,ngk->gk", w, alpha)
        centred = alpha - mean[s]
        cov[s] = np.einsum("ng,ngk,ngl->gkl", w, centred, centred)
        ess[s] = 1.0 / (w**2).sum(axis=0)
    return mean, cov, ess



def family_effect_draws(
    fit: xr.DataTree,
    params: xr.Dataset,
    families: Sequence[str],
    x: np.ndarray,
    observed: np.ndarray,
    *,
    seed: np.random.SeedSequence | int = 0,
) -> np.ndarray:
    """Draws (sample, model, skill) of the family effects of models of ``families``.

    ``x`` and ``observed`` (model x benchmark, NaN if none) are the models' covariates
    and any scores of theirs not in the fit. Models of one family share a draw.
    Posterior draws of ``alpha`` are used as they are for seen families without new
    scores (draw-based fits); otherwise the conditional posterior given the family's
    scores and the new scores is approximated per draw
    (:func:`bayes_lsl.parameters.conditional_family_effects`), with the fit's prior of the
    family effects (:attr:`FitInfo.family_df`); a ``family_effects="student-t"`` fit draws a
    family without any scores exactly from its multivariate t prior.
    """
    seen = [str(f) for f in fit["constant_data"]["family"].values]
    groups = list(dict.fromkeys(families))
    group_of = np.array([groups.index(f) for f in families])
    info = FitInfo.from_tree(fit)
    has_alpha = "alpha" in params and info.method != "mle"  # an mle fit's alpha is the mode at the estimate
    new_scores = np.array([np.any(~np.isnan(observed[group_of == g])) for g in range(len(groups))])
    laplace = [g for g, f in enumerate(groups) if not (has_alpha and f in seen and not new_scores[g])]

    S, K = params.sizes["sample"], params.sizes["skill"]
    out = np.zeros((S, len(groups), K))
    if has_alpha:
        for g, f in enumerate(groups):
            if g not in laplace:
                out[:, g] = params["alpha"].sel(family=f).values
    if laplace:
        fams = [groups[g] if groups[g] in seen else None for g in laplace]
        cells = family_cells(fit, fams)
        rows, cols = np.nonzero(~np.isnan(observed))
        keep = np.isin(group_of[rows], laplace)
        rows, cols = rows[keep], cols[keep]
        position = {g: i for i, g in enumerate(laplace)}
        extra = Cells(np.array([position[g] for g in group_of[rows]], dtype=int), x[rows], cols, observed[rows, cols])
        df = info.family_df
        every = Cells.concat([cells, extra])
        mode, chol = conditional_family_effects(params, every, len(laplace), info.floors, df=df,
                                                kappa=info.score_kappa)
        rng = np.random.default_rng(seed)
        z = rng.standard_normal(mode.shape)
        out[:, laplace] = mode + np.einsum("sgkl,sgl->sgk", chol, z)
        unscored = np.setdiff1d(np.arange(len(laplace)), every.group)
        if df is not None and len(unscored):
            # Nothing to condition on: the prior itself, not a Laplace approximation of it at 0.
            prior_chol = np.linalg.cholesky(params["corr"].values)[:, None]  # (S, 1, K, K)
            draws = draw_family_effects(prior_chol, df, rng, (S, len(unscored)))
            out[:, np.asarray(laplace)[unscored]] = draws
    return out[:, group_of]


def family_slope_draws(
    fit: xr.DataTree,
    params: xr.Dataset,
    families: Sequence[str],
    x: np.ndarray,
    observed: np.ndarray,
    *,
    seed: np.random.SeedSequence | int = 0,
) -> np.ndarray | None:
    """Draws (sample, model, skill) of what the family slopes add to the skills of models of ``families``.

    ``None`` for a fit without family slopes. A seen family takes its posterior draws of
    ``family_slope``; a new family, per parameter draw, ``u ~ N(0, slope_sd^2)`` (its
    slopes are unknown, so the spread grows with the distance of ``x`` from the
    covariates' mean). Models of one family share a draw. ``x`` and ``observed`` are as
    for :func:`family_effect_draws`.

    Raises
    ------
    BayesLslError
        Where ``observed`` holds scores: the conditional posterior of a family given new
        scores (:func:`conditional_family_effects`) covers its intercepts only.
    """
    info = FitInfo.from_tree(fit)
    if not info.family_slopes:
        return None
    groups = list(dict.fromkeys(families))
    group_of = np.array([groups.index(f) for f in families])
    if np.any(~np.isnan(observed)):
        with_scores = sorted({families[i] for i in np.flatnonzero(np.any(~np.isnan(observed), axis=1))})
        raise BayesLslError(
            f"the fit has family slopes on {list(info.family_slopes)}: predictions given new scores (of families "
            f"{with_scores}) would need the family's slopes conditioned on them, which is not supported; "
            "predict without the new models' scores, or refit with them"
        )
    seen = {str(f) for f in fit["constant_data"]["family"].values}
    sd = params["slope_sd"].transpose("sample", "slope_term", "skill").values
    rng = np.random.default_rng(seed)
    slopes = np.zeros((sd.shape[0], len(groups), *sd.shape[1:]))
    for g, family in enumerate(groups):
        if family in seen:
            slopes[:, g] = params["family_slope"].sel(family=family).transpose("sample", "slope_term", "skill").values
        else:
            slopes[:, g] = sd * rng.standard_normal(sd.shape)
    x_terms = np.asarray(x, float)[:, [info.covariates.index(t) for t in info.family_slopes]]
    return family_slope_effect(x_terms, slopes[:, group_of])
