"""Compute-optimal allocation: the (N, D) on an iso-FLOPs line ``6 N D = F`` maximizing a skill.

With ``u = log N`` (billions of parameters) and ``v = log D`` (trillions of tokens), a
skill of the family-average model (``alpha = 0``) is ``theta_k = const + g1 u + g2 v + g3 u v``
with ``g = beta_k / covariate_scale``. On the line ``v = L - u`` this is a quadratic in ``u``,
maximized in closed form over the feasible interval: the vertex (when concave) clipped to
the interval, compared with both ends. A benchmark's expected score is increasing in
``lam_j' theta``, itself such a quadratic (``g = beta lam_j / scale``), so the same applies.
The optimum is found for the point estimate and, vectorized, for every parameter draw
(:func:`bayes_lsl.parameters.parameter_draws`), which gives the intervals.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import expit

from bayes_lsl.data import raw_covariates
from bayes_lsl.parameters import parameter_draws
from bayes_lsl.ranges import check_range

#: log(F / (6 N D)) with N in billions of parameters and D in trillions of tokens.
_LOG_UNIT = np.log(6e21)


def paper_budgets(fit: xr.DataTree, n: int = 10) -> np.ndarray:
    """``n`` FLOPs budgets log-spaced between ``6 N D`` of the data's smallest and largest ``N D``.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit`.
    n : int
        Number of budgets.

    Returns
    -------
    ndarray, shape (n,)
        FLOPs, increasing.
    """
    cd = fit["constant_data"]
    log_nd = np.log(cd["size"].values) + np.log(cd["tokens"].values)
    return np.exp(np.linspace(log_nd.min(), log_nd.max(), n) + _LOG_UNIT)


def _box(fit: xr.DataTree, margin: float) -> tuple[float, float, float, float]:
    """The data's range of log size and log tokens, widened by ``margin`` on each side."""
    cd = fit["constant_data"]
    u, v = np.log(cd["size"].values), np.log(cd["tokens"].values)
    return u.min() - margin, u.max() + margin, v.min() - margin, v.max() + margin


def _interval(log_c: np.ndarray, box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Feasible ``log N`` on each line ``log N + log D = log_c`` (``lo > hi`` where it misses the box)."""
    u_min, u_max, v_min, v_max = box
    return np.maximum(u_min, log_c - v_max), np.minimum(u_max, log_c - v_min)


def optimal_log_size(g: np.ndarray, log_c: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Maximizer of ``g1 u + g2 v + g3 u v`` over ``u in [lo, hi]`` with ``v = log_c - u``.

    Parameters
    ----------
    g : ndarray, shape (..., 3)
        Coefficients of ``u``, ``v`` and ``u v``.
    log_c, lo, hi : ndarray, broadcastable against ``g[..., 0]``
        The line's ``u + v`` and the feasible interval of ``u`` (``lo <= hi``).

    Returns
    -------
    ndarray
        The maximizing ``u``; ties go to the smallest candidate.
    """
    g1, g2, g3 = g[..., 0], g[..., 1], g[..., 2]
    slope = g1 - g2 + g3 * log_c  # q(u) = slope u - g3 u^2 (+ const)
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = np.where(g3 > 0, slope / (2 * g3), lo)  # only a concave q has an interior max
    candidates = np.stack(np.broadcast_arrays(lo, hi, np.clip(vertex, lo, hi)))
    q = slope * candidates - g3 * candidates**2
    return np.take_along_axis(candidates, q.argmax(axis=0)[None], axis=0)[0]


def _target(fit: xr.DataTree, skill: str | None, benchmark: str | None) -> tuple[list[str], str]:
    """The target names and their kind (``"skill"`` or ``"benchmark"``)."""
    skills = [str(s) for s in fit["posterior"]["skill"].values]
    benchmarks = list(fit.attrs["benchmarks"])
    if skill is not None and benchmark is not None:
        raise ValueError("give skill or benchmark, not both")
    if benchmark is not None:
        if benchmark not in benchmarks:
            raise ValueError(f"unknown benchmark {benchmark!r}; valid: {benchmarks}")
        return [benchmark], "benchmark"
    if skill is None:
        return skills, "skill"
    anchors = list(fit.attrs["anchors"])[: len(skills)]
    if skill in anchors:
        return [skills[anchors.index(skill)]], "skill"
    if skill not in skills:
        raise ValueError(f"unknown skill {skill!r}; valid: {skills} or their anchors {anchors}")
    return [skill], "skill"


def _coefficients(params: xr.Dataset, name: str, kind: str, scale: np.ndarray) -> np.ndarray:
    """Coefficients (sample, 3) of the objective on the raw covariates."""
    beta = params["beta"].transpose("sample", "covariate", "skill").values
    if kind == "skill":
        weights = beta[:, :, list(params["skill"].values).index(name)]
    else:
        weights = np.einsum("spk,sk->sp", beta, params["lam"].sel(benchmark=name).transpose("sample", "skill").values)
    return weights / scale


def _value(fit: xr.DataTree, point: xr.Dataset, name: str, kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Skill, or expected benchmark score, of the family-average model at ``(exp u, exp v)``."""
    x = (raw_covariates(np.exp(u), np.exp(v)) - fit.attrs["covariate_center"]) / fit.attrs["covariate_scale"]
    theta = x @ point["beta"].isel(sample=0).transpose("covariate", "skill").values
    if kind == "skill":
        return theta[:, list(point["skill"].values).index(name)]
    j = list(fit.attrs["benchmarks"]).index(name)
    floor = fit.attrs["floors"][j]
    eta = theta @ point["lam"].isel(sample=0).sel(benchmark=name).values + point["b"].isel(sample=0).values[j]
    return floor + (1 - floor) * expit(eta)


def allocate(
    fit: xr.DataTree,
    flops: float | Sequence[float] | np.ndarray,
    skill: str | None = None,
    benchmark: str | None = None,
    *,
    constrained: bool = True,
    level: float = 0.95,
    n_draws: int = 1000,
    seed: int = 0,
    margin: float = 5.0,
) -> pd.DataFrame:
    """Compute-optimal parameters and tokens per FLOPs budget, with intervals over parameter draws.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit` (any method).
    flops : float or sequence of float
        Training budgets ``F = 6 N D`` (N parameters, D tokens), positive.
    skill : str, optional
        A skill (``"skill_1"``) or its anchor benchmark; default every skill.
    benchmark : str, optional
        Maximize this benchmark's expected score instead (family-average model).
    constrained : bool
        ``True``: ``N`` and ``D`` stay within the data's ranges. ``False``: within those
        ranges widened by ``margin`` (in log) on each side, so an optimum on the edge
        means the objective grows without bound along the line.
    level : float
        Probability of the central intervals over draws.
    n_draws, seed : int
        Passed to :func:`bayes_lsl.parameters.parameter_draws`.
    margin : float
        Widening of the box, in natural-log units, when ``constrained=False``.

    Returns
    -------
    pandas.DataFrame
        One row per (budget, target): ``flops``, ``target``, ``N_opt``, ``D_opt`` (point
        estimate), ``N_lower``, ``N_upper``, ``D_lower``, ``D_upper``, ``tokens_per_param``,
        ``on_boundary`` (the point optimum is on an edge of the box), ``edge`` (which one:
        ``"min N"``, ``"max N"``, ``"min D"``, ``"max D"`` or ``""``), ``value`` (the skill
        or expected score there) and ``feasible`` (``False``, with NaNs, where the line
        misses the box).
    """
    flops = np.atleast_1d(np.asarray(flops, float))
    if flops.ndim != 1 or not np.all(np.isfinite(flops) & (flops > 0)):
        raise ValueError(f"flops must be positive and finite, got {flops}")
    # Budgets far outside the data's compute (or off by orders of magnitude): warn (or raise).
    check_range(fit, {"flops": flops}, [f"budget {i + 1} of {len(flops)}" for i in range(len(flops))], stacklevel=2)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    names, kind = _target(fit, skill, benchmark)
    box = _box(fit, 0.0 if constrained else margin)
    log_c = np.log(flops) - _LOG_UNIT
    lo, hi = _interval(log_c, box)
    feasible = lo <= hi + 1e-9  # the extreme paper budgets touch a corner of the box, up to rounding
    hi = np.maximum(lo, hi)
    if not feasible.all():
        warnings.warn(
            f"budget(s) {flops[~feasible]} miss the box of data sizes and tokens: their rows are NaN", stacklevel=2
        )
    lo, hi = np.where(feasible, lo, np.nan), np.where(feasible, hi, np.nan)
    point = fit["posterior"].to_dataset()[["beta", "lam", "b"]].mean(("chain", "draw")).expand_dims(sample=1)
    draws = parameter_draws(fit, n_draws=n_draws, seed=seed)
    scale = np.asarray(fit.attrs["covariate_scale"], float)
    tail = 100 * (1 - level) / 2

    rows = []
    for name in names:
        u_hat, u_draws = (
            optimal_log_size(_coefficients(params, name, kind, scale)[:, None], log_c, lo, hi)  # (sample, budget)
            for params in (point, draws)
        )
        u_hat = u_hat[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of infeasible budgets
            u_lower, u_upper = np.nanpercentile(u_draws, [tail, 100 - tail], axis=0)
        v_hat = log_c - u_hat
        at = [np.isclose(w, bound) for w, bound in zip((u_hat, u_hat, v_hat, v_hat), box, strict=True)]
        edge = np.select(at, ["min N", "max N", "min D", "max D"], "")
        rows.append(
            pd.DataFrame(
                {
                    "flops": flops,
                    "target": name,
                    "N_opt": 1e9 * np.exp(u_hat),
                    "D_opt": 1e12 * np.exp(v_hat),
                    "N_lower": 1e9 * np.exp(u_lower),
                    "N_upper": 1e9 * np.exp(u_upper),
                    # D falls as N rises along the line, so the bounds swap.
                    "D_lower": 1e12 * np.exp(log_c - u_upper),
                    "D_upper": 1e12 * np.exp(log_c - u_lower),
                    "tokens_per_param": 1e3 * np.exp(v_hat - u_hat),
                    "on_boundary": edge != "",
                    "edge": edge,
                    "value": _value(fit, point, name, kind, u_hat, v_hat),  # NaN where infeasible
                    "feasible": feasible,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)

