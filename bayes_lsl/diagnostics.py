"""Convergence diagnostics of a sampled fit, in one table."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.result import PARAMETERS, SAMPLE_DIMS

#: The parameters and the family effects: a family whose effect does not mix biases its
#: predictions and comparisons even when every parameter has mixed.
DEFAULT_VARS: tuple[str, ...] = (*PARAMETERS, "alpha")
#: Rows of the table that ``repr`` shows (the table itself has them all).
_SHOWN_ROWS = 20


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of a sampled fit (from :func:`diagnose`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per non-constant parameter entry (index: ``lam[skill_1, mmlu]``):
        ``variable``, ``r_hat``, ``ess_bulk``, ``ess_tail`` and ``failed`` (the failed
        checks, comma-separated; empty when fine).
    ok : bool
        No entry fails, no transition diverged, no chain has a low BFMI or sits in a minor mode.
    failed : list of str
        Labels of the failing entries.
    divergences : int or None
        Divergent transitions in all (``None`` without ``sample_stats``).
    divergences_per_chain, bfmi_per_chain : list
        Per chain (empty without ``sample_stats``).
    bfmi_min : float or None
    minor_mode_chains : list of int
        Chains whose mean log-likelihood is far below the best chain's.
    problems : list of str
        What failed, in words (what the warning says).
    """

    table: pd.DataFrame
    ok: bool
    failed: list[str] = field(default_factory=list)
    divergences: int | None = None
    divergences_per_chain: list[int] = field(default_factory=list)
    bfmi_per_chain: list[float] = field(default_factory=list)
    bfmi_min: float | None = None
    minor_mode_chains: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict:
        """The fit-level fields as a dict (everything but ``table``)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "table"}

    def _repr_html_(self) -> str:
        return f"<p>{self._headline()}</p>" + self.table._repr_html_()

    def _headline(self) -> str:
        state = "ok" if self.ok else "FAILED: " + "; ".join(self.problems)
        return f"Diagnostics of {len(self.table)} entries: {state}"

    def __repr__(self) -> str:
        return f"{self._headline()}\n{self.table.round(3).to_string(max_rows=_SHOWN_ROWS)}"


def _excluded(da: xr.DataArray) -> xr.DataArray:
    """Entries left out of the table.

    Entries that never move (the anchor block's zeros in ``lam``, the diagonal of ``corr``)
    have an undefined R-hat (0/0) and are structural, not a failure; a tolerance, as the
    diagonal of ``L L'`` is 1 only up to rounding. The upper triangle of ``corr`` repeats
    the lower one.
    """
    spread = da.max(SAMPLE_DIMS) - da.min(SAMPLE_DIMS)
    out = spread <= 1e-9 * (1.0 + abs(da).max(SAMPLE_DIMS))
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
    *,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    bfmi_min: float = 0.3,
) -> Diagnostics:
    """R-hat, bulk and tail ESS of every parameter entry, and the sampler's health.

    Parameters
    ----------
    fit : xarray.DataTree
        A fit with draws (``nuts``, or ``advi``, where R-hat is meaningless with one chain),
        or any tree with a ``posterior`` of draws (and optionally ``sample_stats``).
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
    Diagnostics
        ``table``: one row per non-constant parameter entry (structural constants, such as
        the zero loadings of the anchor block and the diagonal of ``corr``, and the upper
        triangle of ``corr`` are left out), columns ``variable``, ``r_hat``, ``ess_bulk``,
        ``ess_tail`` and ``failed``; and the fit-level summary: ``ok``, ``failed``,
        ``divergences``, ``divergences_per_chain``, ``bfmi_per_chain``, ``bfmi_min``,
        ``minor_mode_chains``, ``problems``.

    Raises
    ------
    BayesLslError
        For point fits (``mle``, ``map``: one draw), which have nothing to diagnose, or
        unknown ``var_names``.

    Warns
    -----
    UserWarning
        When any entry fails, any transition diverged, any chain's BFMI is low, or a
        chain sits in a minor mode, with the counts.

    Examples
    --------
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map"): one draw, nothing to diagnose
    >>> bl.diagnose(fit)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bayes_lsl.errors.BayesLslError: diagnostics need draws, but this fit has 1 chain(s) x 1 draw(s) ...
    >>> report = bl.diagnose(bl.fit(data, K=2, method="nuts", seed=1))  # doctest: +SKIP
    >>> report.ok, report.table.columns.tolist()  # doctest: +SKIP
    (True, ['variable', 'r_hat', 'ess_bulk', 'ess_tail', 'failed'])
    """
    # Only the posterior's draws and the sampler's statistics are read (as ArviZ would), so
    # that draws made by hand can be checked too; not the fit's contract.
    post = fit["posterior"].to_dataset()
    chains, draws = (int(post.sizes.get(d, 0)) for d in SAMPLE_DIMS)
    if draws < 4:
        raise BayesLslError(
            f"diagnostics need draws, but this fit has {chains} chain(s) x {draws} draw(s) (a point estimate, "
            "from mle or map?): fit with method='nuts'"
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
    return Diagnostics(
        table=table, ok=not problems, failed=failed, minor_mode_chains=stuck, problems=problems, **summary
    )
