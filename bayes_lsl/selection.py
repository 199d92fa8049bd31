"""Choosing the number of skills K: information criteria from marginal-likelihood fits, and LOO."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from bayes_lsl.data import ScalingData
from bayes_lsl.fitting.mle import bic_sample_size

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


def select_k(
    data: ScalingData,
    Ks: Iterable[int] = range(1, 9),
    method: str = "mle",
    seed: int = 0,
    nuts_fits: Mapping[int, xr.DataTree] | None = None,
    progress: bool = True,
    warm_start: bool = True,
    bic_n: str = "families",
    **options,
) -> pd.DataFrame:
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
        NUTS fits by K; their ELPD-LOO (with its standard error) is added.
    progress : bool
        Show a progress bar over K.
    warm_start : bool
        Give each K's fit one more start built from the optimum at K - 1 (see
        :func:`bayes_lsl.mle.warm_start`).
    bic_n : {"families", "models", "scores"}
        What BIC's n counts (:func:`bic_sample_size`); kept in
        ``table.attrs["bic_n"]`` and the column ``bic_sample_size``.
    **options
        Passed to :func:`bayes_lsl.fit` (e.g. ``n_starts``); they override
        :data:`SWEEP_OPTIONS`, the sweep's cheaper defaults.

    Returns
    -------
    DataFrame
        One row per K: ``marginal_loglik`` (importance sampling's at the optimum) and its
        Monte Carlo standard error ``marginal_loglik_mc_se``, ``n_params``, ``aic``, ``bic``
        (with ``bic_sample_size``, its n),
        ``integration_error``, ``n_agree`` (starts agreeing), ``wall_time_s``,
        ``paper_aic`` (the authors' value, where the data are the paper's) and, with
        ``nuts_fits``, ``elpd_loo`` and ``elpd_loo_se``. The fits are in ``table.attrs["fits"]``.
    """
    from bayes_lsl.fitting import fit

    bic_sample_size(data, bic_n)  # a bad choice fails before the first fit
    if method != "mle":
        raise ValueError("select_k needs method='mle': information criteria use the maximized marginal likelihood")
    rows, fits = [], {}
    options = {**SWEEP_OPTIONS, **options}
    for K in tqdm(list(Ks), desc="select K", disable=not progress):
        t0 = time.perf_counter()
        per_k = {}
        if warm_start and K - 1 in fits and "start_from" not in options:
            per_k["start_from"] = fits[K - 1]
        result = fits[K] = fit(data, K=K, method=method, seed=seed, progress=False, bic_n=bic_n, **options, **per_k)
        a = result.attrs
        rows.append({"K": K, "marginal_loglik": a["marginal_loglik"],
                     "marginal_loglik_mc_se": a.get("marginal_loglik_mc_se", 0.0),
                     "n_params": a["n_params"], "aic": a["aic"],
                     "bic": a["bic"], "bic_sample_size": a["bic_sample_size"],
                     "integration_error": a["integration_error"],
                     "n_agree": f"{a['n_agree']}/{a['n_starts']}", "wall_time_s": time.perf_counter() - t0,
                     "paper_aic": PAPER_AIC.get(K, np.nan) if data.n_models == 286 else np.nan})  # fmt: skip
    table = pd.DataFrame(rows).set_index("K")
    if nuts_fits:
        table = table.join(_loo_table(nuts_fits))
    table.attrs["fits"] = fits
    table.attrs["bic_n"] = bic_n
    return table


def _loo_table(nuts_fits: Mapping[int, xr.DataTree]) -> pd.DataFrame:
    import arviz as az

    rows = []
    for K, tree in nuts_fits.items():
        loo = az.loo(tree, var_name="y")
        rows.append({"K": K, "elpd_loo": float(loo.elpd), "elpd_loo_se": float(loo.se)})
    return pd.DataFrame(rows).set_index("K")
