"""Full posterior by NUTS: nutpie (default), PyMC's own sampler, or numpyro."""

from __future__ import annotations

import importlib.util
import time
import warnings
from collections.abc import Mapping

import numpy as np
import pymc as pm
import xarray as xr

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.draws import initial_values, log_likelihood_group, numeric_stats, posterior_group
from bayes_lsl.fitting.result import FitResult, posterior_mean
from bayes_lsl.model.parameterization import FamilyLayout, model_parameterization, partially_centered_values

SAMPLERS = ("nutpie", "pymc", "numpyro")
#: nutpie's mass-matrix adaptations, the default first.
ADAPTATIONS = ("draw_diag", "diag", "low_rank")


def _run_nutpie(
    model, initvals, *, seed, progress, chains, tune, draws, target_accept, cores, adaptation
) -> xr.DataTree:
    import nutpie

    if initvals:
        # nutpie rejected some exact starting points (an MLE of the leaderboard data) with
        # "bad initial gradient" although PyMC's logp and gradient are finite there; a
        # seeded nudge of 1e-6 is accepted and leaves the chains where they were put.
        rng = np.random.default_rng(seed)
        initvals = {k: v + 1e-6 * rng.standard_normal(np.shape(v)) for k, v in initvals.items()}
    compiled = nutpie.compile_pymc_model(
        model,
        initial_points=initvals,
        # Given starting values (e.g. the MLE, in the major mode) are used as they are:
        # the default U(-1, 1) jitter could throw a chain out of that mode.
        jitter_rvs=set() if initvals else None,
    )
    trace = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores or chains,
        seed=seed,
        progress_bar=progress,
        target_accept=target_accept,
        adaptation=adaptation,
        save_warmup=False,
    )
    stats = trace["sample_stats"].to_dataset().rename({"logp": "lp"})  # PyMC's name
    return xr.DataTree.from_dict({"posterior": trace["posterior"].to_dataset(), "sample_stats": stats})


def _run_pymc(model, initvals, *, seed, progress, chains, tune, draws, target_accept, cores, nuts_sampler):
    if nuts_sampler == "numpyro" and not all(importlib.util.find_spec(m) for m in ("jax", "numpyro")):
        raise ImportError(
            "sampler='numpyro' needs jax and numpyro: pip install 'bayes_lsl[numpyro]' (or pip install jax numpyro)"
        )
    kwargs = {}
    if nuts_sampler == "pymc":
        # Same rule as for nutpie: jitter only the default start.
        kwargs["init"] = "adapt_diag" if initvals else "jitter+adapt_diag"
    return pm.sample(
        draws,
        tune=tune,
        chains=chains,
        cores=cores or min(chains, 4),
        random_seed=seed,
        progressbar=progress,
        target_accept=target_accept,
        initvals=initvals or None,
        nuts_sampler=nuts_sampler,
        compute_convergence_checks=False,
        model=model,
        **kwargs,
    )


def _initial_values(
    model: pm.Model, data: ScalingData, init: Mapping[str, np.ndarray] | xr.DataTree
) -> dict[str, np.ndarray]:
    """:func:`~bayes_lsl.fitting.draws.initial_values`, plus the ``"partial"`` parameterization's variables.

    With ``centered="partial"``, ``alpha``, ``b``, ``beta`` and the free loadings are not
    free variables; given them (and ``lam``, ``corr``), e.g. from an MLE, they are
    converted to that parameterization's (see :func:`bayes_lsl.model.parameterization.partially_centered_values`).
    """
    if model_parameterization(model) != "partial":
        return initial_values(model, init)
    free = {rv.name for rv in model.free_RVs}
    if isinstance(init, xr.DataTree):
        values = posterior_mean(init)
    else:
        values = {k: np.asarray(v, float) for k, v in init.items()}
    # What draws.initial_values converts itself: free variables and corr.
    out = initial_values(model, {k: v for k, v in values.items() if k in free or k == "corr"})
    if {"alpha", "b", "beta", "lam", "corr"} <= values.keys():
        layout = FamilyLayout.from_data(data, len(model.coords["skill"]))
        out.update({k: v for k, v in partially_centered_values(values, layout).items() if k in free})
    return out


def minor_mode_chains(lp: xr.DataArray, gap: float = 10.0) -> tuple[list[int], list[float]]:
    """Chains whose mean ``lp`` (log density or log-likelihood per draw) is more than ``gap`` below the best chain's.

    A chain stuck in a minor mode of the posterior looks converged on its own, but its
    log density sits well below the other chains' (on the paper's data, 35-40 lower in
    the mode where the math and bbh skills trade loadings on mmlu). :func:`fit_nuts`
    passes the log-likelihood of all scores, which does not depend on the
    parameterization.

    Returns
    -------
    chains : list of int
        Indices of the chains in a minor mode.
    means : list of float
        Mean ``lp`` of every chain.
    """
    means = lp.mean("draw").values
    best = np.nanmax(means)
    return [int(c) for c in np.flatnonzero(means < best - gap)], [float(m) for m in means]


def fit_nuts(
    model: pm.Model,
    data: ScalingData,
    *,
    seed: int,
    progress: bool,
    sampler: str = "nutpie",
    chains: int = 4,
    tune: int = 1000,
    draws: int = 1000,
    target_accept: float = 0.8,
    init: Mapping[str, np.ndarray] | xr.DataTree | None = None,
    cores: int | None = None,
    lp_gap: float = 10.0,
    adaptation: str | None = None,
) -> FitResult:
    """Sample the posterior with NUTS.

    Parameters
    ----------
    model, data, seed, progress
        As passed by :func:`bayes_lsl.fit`.
    sampler : {"nutpie", "pymc", "numpyro"}
        ``numpyro`` needs the optional ``jax`` and ``numpyro`` packages.
    chains, tune, draws : int
        Number of chains, tuning steps and kept draws per chain.
    target_accept : float
        Target acceptance rate of the step-size adaptation.
    init : dict or DataTree, optional
        Starting values for every chain (see :func:`bayes_lsl.fitting.draws.initial_values`), e.g. an
        ``mle`` fit, to start the chains in the major mode; not jittered
        (``bayes_lsl.fit(..., init="mle")`` fits the MLE first). Default: PyMC's default
        point, jittered per chain.
    cores : int, optional
        Chains run in parallel; default one core per chain (at most 4 for PyMC).
    adaptation : {"draw_diag", "diag", "low_rank"}, optional
        nutpie's mass-matrix adaptation. The default, ``"draw_diag"``, estimates a
        diagonal from the draws' variances, as Stan and PyMC do; nutpie's own ``"diag"``
        mixes in the gradients' variances, and ``"low_rank"`` also learns the strongest
        posterior correlations at several times the cost per draw. On the leaderboard
        ``"draw_diag"`` gave the largest minimum bulk ESS (``benchmarks/README.md`` has
        the figures). PyMC's and numpyro's samplers adapt a diagonal.
    lp_gap : float
        A chain whose mean log-likelihood (of all scores) is more than this below the
        best chain's is reported as stuck in a minor mode.

    Returns
    -------
    groups, attrs
        ``posterior``, ``sample_stats`` (``diverging``, ``lp``, ``energy`` ...) and
        ``log_likelihood`` of ``y`` (dims ``chain, draw, cell``). Attrs ``sampler``,
        ``chains``, ``tune``, ``draws``, ``target_accept``, ``wall_time_s`` (compilation
        included), ``n_divergences``, ``chain_mean_lp`` (the sampler's log density),
        ``chain_mean_loglik``, ``minor_mode_chains`` (a warning is issued when it is not
        empty) and ``init`` (``"default"``, ``"values"``, or the method of the fit started from).
    """
    if sampler not in SAMPLERS:
        raise BayesLslError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    start = time.perf_counter()
    initvals = _initial_values(model, data, init) if init is not None else None
    settings = dict(
        seed=seed, progress=progress, chains=chains, tune=tune, draws=draws, target_accept=target_accept, cores=cores
    )
    if sampler == "nutpie":
        adaptation = adaptation or ADAPTATIONS[0]
        if adaptation not in ADAPTATIONS:
            raise BayesLslError(f"unknown adaptation {adaptation!r}; choose one of {ADAPTATIONS}")
        trace = _run_nutpie(model, initvals, adaptation=adaptation, **settings)
    elif adaptation not in (None, "diag"):
        raise BayesLslError(f"adaptation={adaptation!r} is nutpie's; sampler={sampler!r} adapts a diagonal mass matrix")
    else:
        adaptation = "diag"
        trace = _run_pymc(model, initvals, nuts_sampler=sampler, **settings)
    draws_ds = trace["posterior"].to_dataset()
    stats = numeric_stats(trace["sample_stats"].to_dataset())
    groups = {
        "posterior": posterior_group(draws_ds),
        "sample_stats": stats,
        "log_likelihood": log_likelihood_group(draws_ds, model),
    }
    n_div = int(stats["diverging"].sum()) if "diverging" in stats else 0
    chain_lp = [float(m) for m in stats["lp"].mean("draw").values] if "lp" in stats else []
    # Judged on the log-likelihood, which (unlike the sampler's log density, which holds
    # the Jacobians of the parameterization) means the same in every parameterization.
    loglik = groups["log_likelihood"]["y"].sum("cell")
    stuck, chain_ll = minor_mode_chains(loglik, lp_gap)
    if stuck:
        warnings.warn(
            f"chain(s) {stuck} sit in a minor mode: mean log-likelihood more than {lp_gap} below the best chain's "
            f"(chain means {np.round(chain_ll, 1).tolist()}). Drop them or restart from init=<an mle fit>.",
            stacklevel=3,
        )
    attrs = {
        "sampler": sampler,
        "chains": int(chains),
        "tune": int(tune),
        "draws": int(draws),
        "target_accept": float(target_accept),
        "adaptation": adaptation,
        "wall_time_s": time.perf_counter() - start,
        "n_divergences": n_div,
        "chain_mean_lp": chain_lp,
        "chain_mean_loglik": chain_ll,
        "minor_mode_chains": stuck,
        "init": "default" if init is None else init.attrs.get("method", "values") if isinstance(init, xr.DataTree)
        else "values",
    }
    return groups, attrs
