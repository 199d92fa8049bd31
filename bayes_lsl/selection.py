"""Choosing the number of skills K: information criteria from marginal-likelihood fits, and grouped LOO."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.mle import bic_sample_size
from bayes_lsl.loo import GROUPS, loo
from bayes_lsl.parallel import _check_n_jobs, run_tasks

#: The authors' AIC for K = 1..12 on the paper data (a stochastic optimizer's values).
PAPER_AIC: dict[int, float] = {
    1: -5378.7, 2: -5836.7, 3: -5992.0, 4: -6091.0, 5: -6121.7, 6: -6126.6,
    7: -6107.8, 8: -6087.5, 9: -6084.2, 10: -6067.8, 11: -6053.3, 12: -6051.7,
}  # fmt: skip


#: Defaults of :func:`select_k`'s fits, cheaper than :func:`bayes_lsl.fit`'s: one
#: factor-analysis start plus the warm start from K - 1, rounds of at most 150 L-BFGS
#: iterations (each round's optimum moves when the family modes are re-found, so polishing
#: it is wasted) until the log-likelihood moves by less than 0.05 (a third of the check's
#: Monte Carlo error), standard errors from the Laplace rule's Hessian (``hessian_nodes=1``;
#: refit the chosen K with ``fit`` for the full ones) and 4,000 importance-sampling draws per
#: family for the reported log-likelihood (Monte Carlo standard error about 0.15).
SWEEP_OPTIONS: dict[str, object] = {
    "n_starts": 1, "screen_maxiter": 150, "refine_maxiter": 150, "tol": 0.05, "hessian_nodes": 1,
    "check_draws": 4000,
}  # fmt: skip


@dataclass(frozen=True, eq=False)  # eq would compare DataFrames, which have no single truth value
class Selection:
    """What :func:`select_k` returns: the table of criteria per K and the fits behind it.

    Attributes
    ----------
    table : DataFrame
        One row per K (see :func:`select_k`); ``table.attrs["bic_n"]`` says what BIC's n
        counts, so the table alone still labels its figure.
    fits : dict
        The ``mle`` fit of each K.
    bic_n : str
        What BIC's n counts.
    """

    table: pd.DataFrame
    fits: dict[int, xr.DataTree]
    bic_n: str

    @property
    def best(self) -> dict[str, int]:
        """The K each criterion picks: lowest ``aic`` and ``bic`` (and highest ``elpd_loo`` where present)."""
        best = {criterion: int(self.table[criterion].idxmin()) for criterion in ("aic", "bic")}
        if "elpd_loo" in self.table and self.table["elpd_loo"].notna().any():
            best["elpd_loo"] = int(self.table["elpd_loo"].idxmax())
        return best

    def _repr_html_(self) -> str:
        return self.table._repr_html_()

    def __repr__(self) -> str:
        return f"Selection(best={self.best}, bic_n={self.bic_n!r},\n{self.table.round(2).to_string()}\n)"


def select_k(
    data: ScalingData,
    Ks: Iterable[int] = range(1, 9),
    *,
    method: str = "mle",
    seed: int = 0,
    nuts_fits: Mapping[int, xr.DataTree] | None = None,
    progress: bool = True,
    warm_start: bool = True,
    bic_n: str = "families",
    n_jobs: int = 1,
    loo_group: str = "model",
    **options,
) -> Selection:
    """Fit the model for each K and tabulate the information criteria.

    Parameters
    ----------
    data : ScalingData
    Ks : iterable of int
        Numbers of skills to compare (each must not exceed the number of anchors).
    method : {"mle"}
        Information criteria need the maximized marginal likelihood.
    seed : int
        Seed of every fit.
    nuts_fits : dict, optional
        NUTS fits by K; their grouped ELPD-LOO (:func:`bayes_lsl.loo`, with its standard
        error and the number of groups with Pareto k > 0.7) is added.
    progress : bool
        Show a progress bar over K.
    warm_start : bool
        Give each K's fit one more start built from the optimum at K - 1 (see
        :func:`bayes_lsl.fitting.mle.warm_start`). This chains the fits, so it needs
        ``n_jobs=1``.
    bic_n : {"families", "models", "scores"}
        What BIC's n counts (:func:`bic_sample_size`); kept in
        ``table.attrs["bic_n"]`` and the column ``bic_sample_size``.
    n_jobs : int
        Fits run side by side (:func:`bayes_lsl.parallel.run_tasks`): ``1`` (the
        default) one after another in this process; otherwise joblib workers of the
        active backend (loky processes, or a Dask cluster inside
        ``joblib.parallel_backend("dask")``), which needs ``warm_start=False``. Every
        fit has seed ``seed``, so the result does not depend on ``n_jobs``.
    loo_group : {"model", "family", "cell"}
        What the LOO of ``nuts_fits`` leaves out (:func:`bayes_lsl.loo`): a whole model by
        default, since models of a family share information and a cell left out is not
        a model left out. Kept in the column ``loo_group``.
    **options
        Passed to :func:`bayes_lsl.fit` (e.g. ``n_starts``); they override
        :data:`SWEEP_OPTIONS`, the sweep's cheaper defaults.

    Returns
    -------
    Selection
        ``table`` has one row per K: ``marginal_loglik`` (importance sampling's at the
        optimum) and its Monte Carlo standard error ``marginal_loglik_mc_se``,
        ``n_params``, ``aic``, ``bic`` (with ``bic_sample_size``, its n),
        ``integration_error``, ``n_agree`` (starts agreeing), ``wall_time_s``,
        ``paper_aic`` (the authors' value, where the data are the paper's) and, with
        ``nuts_fits``, ``elpd_loo``, ``elpd_loo_se``, ``p_loo``, ``loo_high_k`` (groups with
        Pareto k > 0.7) and ``loo_group``; ``fits`` the fit of each K;
        ``best`` the K each criterion picks.

    Raises
    ------
    BayesLslError
        For a ``method`` other than ``"mle"``, an unknown ``bic_n`` or ``loo_group``, or
        ``n_jobs != 1`` with ``warm_start=True``.
    """
    bic_sample_size(data, bic_n)  # a bad choice fails before the first fit
    if loo_group not in GROUPS:
        raise BayesLslError(f"loo_group must be one of {GROUPS}, got {loo_group!r}")
    if method != "mle":
        raise BayesLslError("select_k needs method='mle': information criteria use the maximized marginal likelihood")
    if _check_n_jobs(n_jobs) != 1 and warm_start and "start_from" not in options:
        raise BayesLslError(f"n_jobs={n_jobs} needs warm_start=False: a warm start builds each K's fit on the optimum "
                         "at K - 1, which chains the fits one after another")  # fmt: skip
    Ks = list(Ks)
    options = {**SWEEP_OPTIONS, **options}
    if n_jobs == 1 and warm_start:
        done, fitted = [], {}
        for K in tqdm(Ks, desc="select K", disable=not progress):
            previous = {"start_from": fitted[K - 1]} if K - 1 in fitted else {}
            done.append(_fit_k(data, K, seed=seed, bic_n=bic_n, options={**previous, **options}))
            fitted[K] = done[-1][0]
    else:
        done = run_tasks(partial(_fit_k, data, seed=seed, bic_n=bic_n, options=options), Ks, n_jobs,
                         progress=progress, desc="select K")  # fmt: skip
    fits = {row["K"]: result for result, row in done}
    rows = [row for _, row in done]
    table = pd.DataFrame(rows).set_index("K")
    table["paper_aic"] = [PAPER_AIC.get(K, np.nan) if data.n_models == 286 else np.nan for K in table.index]
    if nuts_fits:
        table = table.join(_loo_table(nuts_fits, loo_group))
    table.attrs["bic_n"] = bic_n
    return Selection(table, fits, bic_n)


def _fit_k(data: ScalingData, K: int, *, seed: int, bic_n: str, options: dict) -> tuple[xr.DataTree, dict]:
    """One K of :func:`select_k`: its fit and its row of the table."""
    from bayes_lsl.fitting import fit

    t0 = time.perf_counter()
    result = fit(data, K=K, method="mle", seed=seed, progress=False, bic_n=bic_n, **options)
    a = result.attrs
    return result, {"K": K, "marginal_loglik": a["marginal_loglik"],
                    "marginal_loglik_mc_se": a.get("marginal_loglik_mc_se", 0.0),
                    "n_params": a["n_params"], "aic": a["aic"],
                    "bic": a["bic"], "bic_sample_size": a["bic_sample_size"],
                    "integration_error": a["integration_error"],
                    "n_agree": f"{a['n_agree']}/{a['n_starts']}",
                    "wall_time_s": time.perf_counter() - t0}  # fmt: skip


def _loo_table(nuts_fits: Mapping[int, xr.DataTree], group: str) -> pd.DataFrame:
    """Grouped ELPD-LOO of each K's NUTS fit (:func:`bayes_lsl.loo.loo`, PSIS without refits)."""
    rows = []
    for K, tree in nuts_fits.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # high k: counted in loo_high_k
            result = loo(tree, group)
        rows.append({"K": K, "elpd_loo": result.elpd_loo, "elpd_loo_se": result.se, "p_loo": result.p_loo,
                     "loo_high_k": result.n_high_k, "loo_group": group})  # fmt: skip
    return pd.DataFrame(rows).set_index("K")
