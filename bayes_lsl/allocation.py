"""Compute-optimal allocation: the (N, D) on an iso-FLOPs line ``6 N D = F`` maximizing a skill.

With ``u = log N`` (billions of parameters) and ``v = log D`` (trillions of tokens), a
skill of the family-average model (``alpha = 0``) is ``theta_k = const + g1 u + g2 v + g3 u v``
with ``g = beta_k / covariate_scale``. On the line ``v = L - u`` this is a quadratic in ``u``,
maximized in closed form over the feasible interval: the vertex (when concave) clipped to
the interval, compared with both ends. A benchmark's mean score is increasing in
``lam_j' theta``, itself such a quadratic (``g = beta lam_j / scale``), so the same applies.
The optimum is found for the point estimate and, vectorized, for every parameter draw
(:func:`bayes_lsl.parameters.parameter_draws`), which gives the intervals.

What it assumes: the family effects ``alpha`` are independent of size and tokens, so that
the slopes ``beta`` say what more parameters or tokens would do *within* a family. Tokens
barely vary within the leaderboard's families, so the token slope is identified mostly
from differences between families, where it is confounded with their training recipes
(``benchmarks/mundlak_check.py`` measures how much that matters).

Units: sizes in billions of parameters and tokens in trillions, as in the inputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import expit

from bayes_lsl.design import PAPER_TERMS
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.result import SAMPLE_DIMS, FitInfo
from bayes_lsl.parameters import parameter_draws
from bayes_lsl.ranges import FLOPS_PER_UNIT, check_range

#: log(F / (6 N D)) with N in billions of parameters and D in trillions of tokens.
_LOG_UNIT = np.log(FLOPS_PER_UNIT)

#: The edges of the box of sizes and tokens, in the order of :func:`_box`.
EDGES: tuple[str, ...] = ("min size", "max size", "min tokens", "max tokens")


def _budgets(log_nd_min: float, log_nd_max: float, n: int) -> np.ndarray:
    """``n`` FLOPs budgets log-spaced between two values of ``log(N D)`` (billions, trillions)."""
    return np.exp(np.linspace(log_nd_min, log_nd_max, n) + _LOG_UNIT)


def paper_budgets(fit: xr.DataTree, n: int = 10) -> np.ndarray:
    """The paper's grid: ``n`` budgets log-spaced from ``6 Nmin Dmin`` to ``6 Nmax Dmax``.

    The ends are the corners of the data's box of sizes and tokens (as in the authors'
    ``leaderboard_analysis.ipynb``; on the paper data 0.07B x 0.15T = 6.3e19 up to
    180B x 15T = 1.62e25 FLOPs), where the iso-FLOPs line touches the box in a single point.

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
    u_min, u_max, v_min, v_max = _box(fit, 0.0)
    return _budgets(u_min + v_min, u_max + v_max, n)


def model_budgets(fit: xr.DataTree, n: int = 10) -> np.ndarray:
    """``n`` budgets log-spaced between ``6 N D`` of the data's smallest and largest model.

    A narrower grid than :func:`paper_budgets` (on the paper data 1.26e20 to 6.3e24
    FLOPs): the budgets that models of the data were trained with. Parameters and
    result as :func:`paper_budgets`'.
    """
    cd = fit["constant_data"]
    log_nd = np.log(cd["size"].values) + np.log(cd["tokens"].values)
    return _budgets(log_nd.min(), log_nd.max(), n)


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


def _target(info: FitInfo, skill: str | None, benchmark: str | None) -> tuple[list[str], str]:
    """The target names and their kind (``"skill"`` or ``"benchmark"``)."""
    skills, benchmarks = info.skills, list(info.benchmarks)
    if skill is not None and benchmark is not None:
        raise BayesLslError("give skill or benchmark, not both")
    if benchmark is not None:
        if benchmark not in benchmarks:
            raise BayesLslError(f"unknown benchmark {benchmark!r}; valid: {benchmarks}")
        return [benchmark], "benchmark"
    if skill is None:
        return skills, "skill"
    anchors = list(info.anchors)
    if skill in anchors:
        return [skills[anchors.index(skill)]], "skill"
    if skill not in skills:
        raise BayesLslError(f"unknown skill {skill!r}; valid: {skills} or their anchors {anchors}")
    return [skill], "skill"


def _coefficients(params: xr.Dataset, name: str, kind: str, scale: np.ndarray) -> np.ndarray:
    """Coefficients (sample, 3) of the objective on the raw covariates, one row per draw."""
    beta = params["beta"].transpose("sample", "covariate", "skill").values
    if kind == "skill":
        weights = beta[:, :, list(params["skill"].values).index(name)]
    else:
        weights = np.einsum("spk,sk->sp", beta, params["lam"].sel(benchmark=name).transpose("sample", "skill").values)
    return weights / scale


def _objective(info: FitInfo, params: xr.Dataset, name: str, kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Skill, or mean benchmark score, of a family with ``alpha = 0`` at ``(exp u, exp v)``, per draw.

    ``u`` and ``v`` have shape ``(budget,)`` (the same point for every draw) or
    ``(sample, budget)``; the result has shape ``(sample, budget)``.
    """
    u, v = np.broadcast_arrays(u, v)
    x = info.standardize(np.exp(u).ravel(), np.exp(v).ravel()).reshape(*u.shape, -1)  # (..., budget, covariate)
    beta = params["beta"].transpose("sample", "covariate", "skill").values
    theta = np.einsum("sbp,spk->sbk", np.broadcast_to(x, (len(beta), *x.shape[-2:])), beta)
    if kind == "skill":
        return theta[..., list(params["skill"].values).index(name)]
    j = info.benchmarks.index(name)
    floor = info.floors[j]
    lam = params["lam"].sel(benchmark=name).transpose("sample", "skill").values
    eta = np.einsum("sbk,sk->sb", theta, lam) + params["b"].transpose("sample", "benchmark").values[:, [j]]
    return floor + (1 - floor) * expit(eta)


def _at_edges(u: np.ndarray, log_c: np.ndarray, box: tuple[float, float, float, float]) -> list[np.ndarray]:
    """Whether ``u`` (and ``v = log_c - u``) is on each edge of the box, in the order of :data:`EDGES`."""
    v = log_c - u
    return [np.isclose(w, bound) for w, bound in zip((u, u, v, v), box, strict=True)]


def _edge_shares(u: np.ndarray, log_c: np.ndarray, box: tuple[float, float, float, float]) -> dict[str, np.ndarray]:
    """Share of draws (rows of ``u``) on each edge of the box, and in its interior, per budget.

    A draw at a corner counts for both of its edges. NaN where the budget misses the box.
    """
    at = _at_edges(u, log_c, box)
    missing = np.isnan(u).all(axis=0)
    shares = {f"share_{edge.replace(' ', '_')}": np.mean(a, axis=0) for edge, a in zip(EDGES, at, strict=True)}
    shares["share_interior"] = np.mean(~np.logical_or.reduce(at), axis=0)
    return {k: np.where(missing, np.nan, s) for k, s in shares.items()}


def allocate(
    fit: xr.DataTree,
    flops: float | Sequence[float] | np.ndarray,
    *,
    skill: str | None = None,
    benchmark: str | None = None,
    constrained: bool = True,
    level: float = 0.95,
    n_draws: int = 1000,
    seed: int = 0,
    margin: float = 5.0,
) -> pd.DataFrame:
    """Compute-optimal size and tokens per FLOPs budget, with intervals over parameter draws.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit` (any method).
    flops : float or sequence of float
        Training budgets ``F = 6 N D`` (N parameters, D tokens), positive.
    skill : str, optional
        A skill (``"skill_1"``) or its anchor benchmark; default every skill.
    benchmark : str, optional
        Maximize this benchmark's mean score (of a family with ``alpha = 0``) instead.
    constrained : bool
        ``True``: size and tokens stay within the data's ranges. ``False``: within those
        ranges widened by ``margin`` (in log) on each side, so an optimum on the edge
        means the objective grows without bound along the line.
    level : float
        Probability of the central intervals over draws.
    n_draws : int
        Draws of the parameters (:func:`bayes_lsl.parameters.parameter_draws`).
    seed : int
        Their seed.
    margin : float
        Widening of the box, in natural-log units, when ``constrained=False``.

    Returns
    -------
    pandas.DataFrame
        One row per (budget, target), in the inputs' units (sizes in billions of
        parameters, tokens in trillions):

        - ``flops``, ``target``;
        - ``size_opt``, ``size_lower``, ``size_upper`` (B) and ``tokens_opt``,
          ``tokens_lower``, ``tokens_upper`` (T): the optimum of the point estimate (for
          draw-based fits: of the posterior mean of the objective's coefficients) and the
          central interval of the draws' optima; ``tokens_per_param`` (tokens per
          parameter, both as counts);
        - ``on_boundary`` and ``edge``: the point optimum is on an edge of the box, and
          which (``"min size"``, ``"max size"``, ``"min tokens"``, ``"max tokens"`` or ``""``);
        - ``share_min_size``, ``share_max_size``, ``share_min_tokens``,
          ``share_max_tokens``, ``share_interior``: the share of draws whose optimum is
          on each edge (a corner counts for both of its edges) or inside the box;
        - ``set_by_box``: most draws (at least half) put the optimum on an edge. Then the
          box, not the data, sets the optimum, and a narrow band there says nothing about
          certainty: the objective still rises towards the edge;
        - ``objective``: what ``value`` measures: ``"skill"`` (the latent skill theta) or
          ``"mean score"`` (the benchmark's mean score mu), both of a family with
          ``alpha = 0`` (the typical family, not an average over families);
        - ``value``: the objective at the point optimum (for draw-based fits averaged
          over the posterior draws), ``value_lower``, ``value_upper``: the central
          interval over draws of each draw's objective at its own optimum;
        - ``feasible``: ``False``, with NaNs, where the line misses the box.

    Examples
    --------
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # a map fit has no parameter uncertainty
    ...     table = bl.allocate(fit, bl.paper_budgets(fit, n=3), n_draws=50, seed=1)
    >>> table[["flops", "target"]].shape
    (6, 2)
    >>> table.columns.tolist()[:5]
    ['flops', 'target', 'size_opt', 'size_lower', 'size_upper']
    """
    flops = np.atleast_1d(np.asarray(flops, float))
    if flops.ndim != 1 or not np.all(np.isfinite(flops) & (flops > 0)):
        raise BayesLslError(f"flops must be positive and finite, got {flops}")
    # Budgets far outside the data's compute (or off by orders of magnitude): warn (or raise).
    check_range(fit, {"flops": flops}, [f"budget {i + 1} of {len(flops)}" for i in range(len(flops))], stacklevel=2)
    if not 0 < level < 1:
        raise BayesLslError(f"level must be in (0, 1), got {level}")
    info = FitInfo.from_tree(fit)
    if tuple(info.covariates) != PAPER_TERMS:
        # The closed-form optimum below is that of the paper's quadratic in (log N, log D).
        raise BayesLslError(
            f"allocate needs a fit with the paper's covariates {list(PAPER_TERMS)}; this fit has "
            f"{list(info.covariates)}"
        )
    names, kind = _target(info, skill, benchmark)
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
    # Every stored draw (one for mle and map): the point objective of a draw-based fit is the
    # posterior mean of the objective, E[beta lam] rather than E[beta] E[lam] for a benchmark.
    posterior = fit["posterior"].to_dataset()[["beta", "lam", "b"]].stack(sample=SAMPLE_DIMS)
    posterior = posterior.transpose("sample", ...)
    draws = parameter_draws(fit, n_draws=n_draws, seed=seed)
    scale = info.covariate_scale
    tail = 100 * (1 - level) / 2

    def central(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of infeasible budgets
            return np.nanpercentile(values, [tail, 100 - tail], axis=0)

    rows = []
    for name in names:
        g_hat = _coefficients(posterior, name, kind, scale).mean(axis=0, keepdims=True)
        u_hat = optimal_log_size(g_hat[:, None], log_c, lo, hi)[0]
        u_draws = optimal_log_size(_coefficients(draws, name, kind, scale)[:, None], log_c, lo, hi)  # (sample, budget)
        u_lower, u_upper = central(u_draws)
        v_hat = log_c - u_hat
        value_lower, value_upper = central(_objective(info, draws, name, kind, u_draws, log_c - u_draws))
        edge = np.select(_at_edges(u_hat, log_c, box), list(EDGES), "")
        shares = _edge_shares(u_draws, log_c, box)
        rows.append(
            pd.DataFrame(
                {
                    "flops": flops,
                    "target": name,
                    "size_opt": np.exp(u_hat),
                    "size_lower": np.exp(u_lower),
                    "size_upper": np.exp(u_upper),
                    "tokens_opt": np.exp(v_hat),
                    # Tokens fall as size rises along the line, so the bounds swap.
                    "tokens_lower": np.exp(log_c - u_upper),
                    "tokens_upper": np.exp(log_c - u_lower),
                    "tokens_per_param": 1e3 * np.exp(v_hat - u_hat),
                    "on_boundary": edge != "",
                    "edge": edge,
                    **shares,
                    "set_by_box": shares["share_interior"] <= 0.5,  # False where infeasible (NaN)
                    "objective": "skill" if kind == "skill" else "mean score",
                    "value": _objective(info, posterior, name, kind, u_hat, v_hat).mean(axis=0),  # NaN if infeasible
                    "value_lower": value_lower,
                    "value_upper": value_upper,
                    "feasible": feasible,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
