"""Pieces shared by the draw-based methods (``map``, ``advi``, ``nuts``).

Every sampler returns its draws in its own layout (transformed variables, object-dtype
coordinates, sampler-specific statistics); these helpers turn them into the groups that
:func:`bayes_lsl.fitting.result.assemble` expects, and turn user-given starting values into
values of the model's free variables.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pymc as pm
import xarray as xr

from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.result import (
    DISPERSION_PARAMETERS,
    POSTERIOR_VARS,
    SCORE_PARAMETERS,
    SLOPE_PARAMETERS,
    posterior_mean,
)
from bayes_lsl.model.likelihood import corr_to_z


def _plain_coords(ds: xr.Dataset) -> xr.Dataset:
    """String coordinates as fixed-width unicode, so that every method (and a file) agrees."""
    fixes = {name: coord.astype(str) for name, coord in ds.coords.items() if coord.dtype == object}
    return ds.assign_coords(fixes) if fixes else ds


def posterior_group(draws: xr.Dataset) -> xr.Dataset:
    """The ``posterior`` group from a sampler's draws: :data:`POSTERIOR_VARS` (and :data:`DISPERSION_PARAMETERS`,
    :data:`SLOPE_PARAMETERS`, :data:`SCORE_PARAMETERS` where the model has them).

    Internal variables (``alpha_z``, ``corr_z``, ``lam_anchor``, ``lam_free``, transformed
    values) are dropped so that every method's posterior has the same variables; the
    deterministic ``lam``, ``corr`` and ``alpha`` carry the same information.
    """
    missing = [v for v in POSTERIOR_VARS if v not in draws]
    if missing:
        raise RuntimeError(f"the draws lack variable(s) {missing}")
    extra = (v for v in (*DISPERSION_PARAMETERS, *SLOPE_PARAMETERS, *SCORE_PARAMETERS) if v in draws)
    ds = _plain_coords(draws[[*POSTERIOR_VARS, *extra]])
    return ds.drop_vars([c for c in ds.coords if c not in ds.dims])


def log_likelihood_group(draws: xr.Dataset, model: pm.Model) -> xr.Dataset:
    """Pointwise log-likelihood of the observed scores ``y``, dims ``chain, draw, cell``.

    ``draws`` must hold the model's free variables (as the samplers return them).
    """
    free = [rv.name for rv in model.free_RVs]
    tree = xr.DataTree.from_dict({"posterior": draws[free]})
    ll = pm.compute_log_likelihood(tree, var_names=["y"], model=model, extend_inferencedata=False, progressbar=False)
    return _plain_coords(ll if isinstance(ll, xr.Dataset) else ll.to_dataset())


def numeric_stats(stats: xr.Dataset) -> xr.Dataset:
    """Sampler statistics without object-dtype entries (messages), which files cannot hold."""
    keep = [name for name, v in stats.data_vars.items() if v.dtype != object]
    return _plain_coords(stats[keep])


# ----------------------------------------------------------------- starting values
def initial_values(model: pm.Model, init: Mapping[str, np.ndarray] | xr.DataTree) -> dict[str, np.ndarray]:
    """Starting values of the model's free variables.

    Parameters
    ----------
    model : pm.Model
        From :func:`bayes_lsl.build_model`.
    init : dict or xarray.DataTree
        Values keyed by free variables (``beta``, ``lam_anchor``, ``lam_free``, ``b``,
        ``corr_z``, ``alpha_z``, ``phi`` ...) and/or by the reported ``lam``, ``corr``,
        ``alpha`` (and ``family_slope`` with ``slope_sd``), which are converted; or a fit
        (e.g. ``fit(..., method="mle")``), whose posterior mean is used. Variables left
        out start at the sampler's default.

    Returns
    -------
    dict
        Values on the constrained scale, keyed by free-variable name (PyMC's ``initvals``).
    """


    from_fit = isinstance(init, xr.DataTree)
    values = posterior_mean(init) if from_fit else {k: np.asarray(v, float) for k, v in init.items()}
    free = {rv.name for rv in model.free_RVs}
    out = {k: v for k, v in values.items() if k in free}
    K = len(model.coords["skill"])
    if "lam" in values and not {"lam_anchor", "lam_free"} & out.keys():
        lam = values["lam"]
        # The half-normal anchors need strictly positive starting values.
        out["lam_anchor"], out["lam_free"] = np.maximum(np.abs(np.diag(lam[:, :K])), 1e-3), lam[:, K:]
    if "corr" in values and "corr_z" in free and "corr_z" not in out:
        out["corr_z"] = corr_to_z(values["corr"])
    if "alpha" in values and "alpha_z" in free and "alpha_z" not in out:
        # alpha = alpha_z @ L.T with L the Cholesky factor of corr (see build_model).
        corr = values.get("corr")
        L = np.linalg.cholesky(corr) if corr is not None else np.eye(K)
        out["alpha_z"] = np.linalg.solve(L, values["alpha"].T).T
        if "alpha_w" in free and "alpha_w" not in out:
            # Student-t family effects, alpha = alpha_z L' / sqrt(alpha_w): unit weights give alpha.
            out["alpha_w"] = np.ones(len(values["alpha"]))
    if "family_slope" in values and "slope_z" in free and "slope_z" not in out and "slope_sd" in values:
        # family_slope = slope_sd * slope_z (see build_model); a zero sd leaves z at 0.
        sd = np.maximum(values["slope_sd"], 1e-3)
        out["slope_sd"], out["slope_z"] = sd, values["family_slope"] / sd
    derived = {d.name for d in model.deterministics}
    unknown = set(values) - free - derived
    if unknown and not from_fit:
        raise BayesLslError(f"init has unknown variable(s) {sorted(unknown)}; free variables are {sorted(free)}")
    reference = model.initial_point()
    for name, value in out.items():
        rv = model[name]
        expected = reference[model.rvs_to_values[rv].name].shape
        if value.shape != expected:
            raise BayesLslError(f"init[{name!r}] has shape {value.shape}, the model needs {expected}")
        if not np.all(np.isfinite(value)):
            raise BayesLslError(f"init[{name!r}] has non-finite values")
    return out
