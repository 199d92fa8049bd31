"""Convergence diagnostics of a sampled fit, in one table."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from bayes_lsl.errors import BayesLslError

#: The parameters and the family effects: a family whose effect does not mix biases its
#: predictions and comparisons even when every parameter has mixed.
DEFAULT_VARS: tuple[str, ...] = ("beta", "lam", "b", "phi", "corr", "alpha")


def _excluded(da: xr.DataArray) -> xr.DataArray:
    """Entries left out of the table.

    Entries that never move (the anchor block's zeros in ``lam``, the diagonal of ``corr``)
    have an undefined R-hat (0/0) and are structural, not a failure; a tolerance, as the
    diagonal of ``L L'`` is 1 only up to rounding. The upper triangle of ``corr`` repeats
    the lower one.
    """
    spread = da.max(("chain", "draw")) - da.min(("chain", "draw"))
    out = spread <= 1e-9 * (1.0 + abs(da).max(("chain", "draw")))
    if da.name == "corr" and out.ndim == 2:
        out = out | xr.DataArray(np.triu(np.ones(out.shape, bool)), dims=out.dims, coords=out.coords)
    return out


def _entries(stat: xr.DataArray, constant: xr.DataArray, name: str) -> pd.Series:
    """One value per non-constant entry, labelled like ArviZ: ``lam[skill_1, hellaswag]``."""
    if not stat.dims:
        return pd.Series({name: float(stat)})
    values, keep = stat.to_series(), constant.to_series().reindex(stat.to_series().index)
    values = values[~keep.astype(bool)]
    labels = [f"{name}[{', '.join(map(str, i if isinstance(i, tuple) else (i,)))}]" for i in values.index]
    return pd.Series(values.to_numpy(), index=labels)


def _per_chain_stats(fit: xr.DataTree) -> dict:
    import arviz as az  # imported here: it doubles the import time of the package

    stats = fit["sample_stats"].to_dataset() if "sample_stats" in fit.children else xr.Dataset()
    out: dict = {}
    if "diverging" in stats:
        per_chain = stats["diverging"].sum("draw").values.astype(int)
        out |= {"divergences": int(per_chain.sum()), "divergences_per_chain": per_chain.tolist()}
    if "energy" in stats:
        bfmi = az.bfmi(stats["energy"]).values
        out |= {"bfmi_per_chain": [float(b) for b in np.atleast_1d(bfmi)], "bfmi_min": float(np.min(bfmi))}
    return out


def diagnose(
    fit: xr.DataTree,
    var_names: Sequence[str] = DEFAULT_VARS,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    bfmi_min: float = 0.3,
) -> pd.DataFrame:
    """R-hat, bulk and tail ESS of every parameter entry, and the sampler's health.

    Parameters
    ----------
    fit : xarray.DataTree
        A fit with draws (``nuts``, or ``advi``, where R-hat is meaningless with one chain).
    var_names : sequence of str
        Posterior variables to check; by default the parameters and the family effects
        ``alpha`` (one row per family and skill; left out of the default where the
        posterior has none).
    rhat_max, ess_min : float
        Thresholds: an entry fails with R-hat above ``rhat_max`` or a bulk or tail ESS below
        ``ess_min``.
    bfmi_min : float
        A chain with a lower energy BFMI is reported.

    Returns
    -------
    pandas.DataFrame
        One row per non-constant parameter entry (structural constants, such as the zero
        loadings of the anchor block and the diagonal of ``corr``, and the upper triangle
        of ``corr`` are left out), columns
        ``variable``, ``r_hat``, ``ess_bulk``, ``ess_tail`` and ``failed`` (the failed
        checks, comma-separated; empty when fine). ``DataFrame.attrs`` holds the fit-level
        summary: ``divergences``, ``divergences_per_chain``, ``bfmi_per_chain``,
        ``bfmi_min``, ``failed`` (labels of the failing entries), ``minor_mode_chains``
        and ``ok`` (no failure at all).

    Raises
    ------
    ValueError
        For point fits (``mle``, ``map``: one draw), which have nothing to diagnose.

    Warns
    -----
    UserWarning
        When any entry fails, any transition diverged, any chain's BFMI is low, or a
        chain sits in a minor mode, with the counts.
    """
    post = fit["posterior"].to_dataset()
    if post.sizes.get("draw", 0) < 4:
        raise BayesLslError(
            f"diagnostics need draws, but this {fit.attrs.get('method', '?')!r} fit has "
            f"{post.sizes.get('chain', 0)} chain(s) x {post.sizes.get('draw', 0)} draw(s): fit with method='nuts'"
        )
    if tuple(var_names) == DEFAULT_VARS and "alpha" not in post:
        var_names = [v for v in DEFAULT_VARS if v != "alpha"]  # draws without family effects (e.g. made by hand)
    unknown = [v for v in var_names if v not in post]
    if unknown:
        raise BayesLslError(f"unknown variable(s) {unknown}; the posterior has {sorted(post.data_vars)}")
    import arviz as az  # imported here: it doubles the import time of the package

    ds = post[list(var_names)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 on the constant entries
        rhat = az.rhat(ds)
        bulk = az.ess(ds, method="bulk")
        tail = az.ess(ds, method="tail")
    parts = []
    for name in var_names:
        constant = _excluded(ds[name])
        parts.append(
            pd.DataFrame(
                {
                    "variable": name,
                    "r_hat": _entries(rhat[name], constant, name),
                    "ess_bulk": _entries(bulk[name], constant, name),
                    "ess_tail": _entries(tail[name], constant, name),
                }
            )
        )
    table = pd.concat(parts)
    checks = {
        # Written as "not good" so that a NaN (a stuck, non-constant entry) fails too.
        "r_hat": ~(table["r_hat"] <= rhat_max),
        "ess_bulk": ~(table["ess_bulk"] >= ess_min),
        "ess_tail": ~(table["ess_tail"] >= ess_min),
    }
    table["failed"] = [",".join(name for name, bad in checks.items() if bad.iloc[i]) for i in range(len(table))]
    summary = _per_chain_stats(fit)
    failed = table.index[table["failed"] != ""].tolist()
    stuck = list(fit.attrs.get("minor_mode_chains", []))
    low_bfmi = [c for c, b in enumerate(summary.get("bfmi_per_chain", [])) if b < bfmi_min]
    problems = []
    if failed:
        counts = {name: int(bad.sum()) for name, bad in checks.items() if bad.any()}
        problems.append(f"{len(failed)} of {len(table)} parameter entries fail (counts {counts})")
    if summary.get("divergences"):
        per_chain = summary["divergences_per_chain"]
        problems.append(f"{summary['divergences']} divergent transitions (per chain {per_chain})")
    if low_bfmi:
        problems.append(f"chain(s) {low_bfmi} have BFMI below {bfmi_min}")
    if stuck:
        problems.append(f"chain(s) {stuck} sit in a minor mode")
    if problems:
        warnings.warn(
            f"the fit fails its diagnostics (R-hat <= {rhat_max}, ESS >= {ess_min}): " + "; ".join(problems),
            stacklevel=2,
        )
    table.attrs = {**summary, "failed": failed, "minor_mode_chains": stuck, "ok": not problems}
    return table
