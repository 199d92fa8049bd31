"""Convergence diagnostics of a sampled fit, in one table."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.nuts import structural_constants
from bayes_lsl.fitting.result import PARAMETERS, SAMPLE_DIMS

#: The parameters and the family effects: a family whose effect does not mix biases its
#: predictions and comparisons even when every parameter has mixed.
DEFAULT_VARS: tuple[str, ...] = (*PARAMETERS, "alpha")
#: Failing entries that ``repr`` lists (the table itself has them all).
_SHOWN_ROWS = 20
#: Sampler statistics that flag a transition that hit the maximum tree depth (PyMC's, nutpie's).
_TREEDEPTH_STATS = ("reached_max_treedepth", "maxdepth_reached")


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of a sampled fit (from :func:`diagnose`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per non-constant entry (index: ``lam[skill_1, mmlu]``; every family's
        ``alpha`` too): ``variable``, ``r_hat`` (rank-normalized split R-hat), ``ess_bulk``,
        ``ess_tail`` and ``failed`` (the failed checks, comma-separated; empty when fine).
    by_variable : pandas.DataFrame
        One row per variable (what ``repr`` shows, so that the 680 entries of ``alpha``
        do not flood it): ``entries``, ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail``,
        ``n_failed`` and ``worst`` (the entry with the highest R-hat).
    ok : bool
        No entry fails, no transition diverged or hit the maximum tree depth, no chain has
        a low E-BFMI or sits in a minor mode.
    failed : list of str
        Labels of the failing entries.
    divergences : int or None
        Divergent transitions in all (``None`` without ``sample_stats``).
    divergences_per_chain, bfmi_per_chain : list
        Per chain (empty without ``sample_stats``); ``bfmi_per_chain`` is the energy
        Bayesian fraction of missing information (E-BFMI).
    bfmi_min : float or None
    treedepth_saturated : int or None
        Transitions that hit the sampler's maximum tree depth (``None`` where the sampler
        does not record it).
    treedepth_share : float or None
        Their share of all transitions (ArviZ's checklist flags any).
    minor_mode_chains : list of int
        Chains whose mean log-likelihood is far below the best chain's.
    problems : list of str
        What failed, in words (what the warning says).
    """

    table: pd.DataFrame
    ok: bool
    by_variable: pd.DataFrame = field(default_factory=pd.DataFrame)
    failed: list[str] = field(default_factory=list)
    divergences: int | None = None
    divergences_per_chain: list[int] = field(default_factory=list)
    bfmi_per_chain: list[float] = field(default_factory=list)
    bfmi_min: float | None = None
    treedepth_saturated: int | None = None
    treedepth_share: float | None = None
    minor_mode_chains: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict:
        """The fit-level fields as a dict (everything but the tables)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name not in ("table", "by_variable")}

    def _failing(self) -> pd.DataFrame:
        return self.table[self.table["failed"] != ""].head(_SHOWN_ROWS)

    def _repr_html_(self) -> str:
        html = f"<p>{self._headline()}</p>" + self.by_variable._repr_html_()
        if self.failed:
            html += f"<p>Failing entries (first {_SHOWN_ROWS}):</p>" + self._failing()._repr_html_()
        return html

    def _sampler_line(self) -> str:
        parts = []
        if self.divergences is not None:
            parts.append(f"divergences {self.divergences}")
        if self.bfmi_min is not None:
            parts.append(f"min E-BFMI {self.bfmi_min:.2f}")
        if self.treedepth_share is not None:
            parts.append(f"max tree depth hit {self.treedepth_saturated} ({100 * self.treedepth_share:.1f}%)")
        return ", ".join(parts)

    def _headline(self) -> str:
        state = "ok" if self.ok else "FAILED: " + "; ".join(self.problems)
        return f"Diagnostics of {len(self.table)} entries ({self._sampler_line()}): {state}"

    def __repr__(self) -> str:
        text = f"{self._headline()}\n{self.by_variable.round(3).to_string()}"
        if self.failed:
            text += f"\nFailing entries (first {_SHOWN_ROWS}):\n{self._failing().round(3).to_string()}"
        return text


def _entries(stat: xr.DataArray, constant: xr.DataArray, name: str) -> pd.Series:
    """One value per non-constant entry, labelled like ArviZ: ``lam[skill_1, hellaswag]``."""
    if not stat.dims:
        return pd.Series({name: float(stat)})
    values, keep = stat.to_series(), constant.to_series().reindex(stat.to_series().index)
    values = values[~keep.astype(bool)]
    labels = [f"{name}[{', '.join(map(str, i if isinstance(i, tuple) else (i,)))}]" for i in values.index]
    return pd.Series(values.to_numpy(), index=labels)


def _per_chain_stats(fit: xr.DataTree) -> dict:
    import arviz_stats as azs  # imported here: it doubles the import time of the package

    stats = fit["sample_stats"].to_dataset() if "sample_stats" in fit.children else xr.Dataset()
    out: dict = {}
    if "diverging" in stats:
        per_chain = stats["diverging"].sum("draw").values.astype(int)
        out |= {"divergences": int(per_chain.sum()), "divergences_per_chain": per_chain.tolist()}
    if "energy" in stats:
        bfmi = azs.bfmi(stats[["energy"]])["energy"].values
        out |= {"bfmi_per_chain": [float(b) for b in np.atleast_1d(bfmi)], "bfmi_min": float(np.min(bfmi))}
    saturated = next((stats[name] for name in _TREEDEPTH_STATS if name in stats), None)
    if saturated is not None:
        n = int(saturated.sum())
        out |= {"treedepth_saturated": n, "treedepth_share": n / saturated.size}
    return out


def _by_variable(table: pd.DataFrame) -> pd.DataFrame:
    """The entries' table summarized per variable: the worst of each check."""
    grouped = table.groupby("variable", sort=False)
    return pd.DataFrame(
        {
            "entries": grouped.size(),
            "max_r_hat": grouped["r_hat"].max(),
            "min_ess_bulk": grouped["ess_bulk"].min(),
            "min_ess_tail": grouped["ess_tail"].min(),
            "n_failed": grouped["failed"].apply(lambda f: int((f != "").sum())),
            # idxmax skips NaN; a variable whose every entry is NaN has no worst entry.
            "worst": grouped["r_hat"].apply(lambda r: r.idxmax() if r.notna().any() else ""),
        }
    )


def diagnose(
    fit: xr.DataTree,
    var_names: Sequence[str] = DEFAULT_VARS,
    *,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    bfmi_min: float = 0.3,
) -> Diagnostics:
    """ArviZ's convergence checklist for a sampled fit: rank-normalized R-hat, bulk and tail ESS
    of every entry, divergences, E-BFMI per chain and tree-depth saturation.

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
        A chain with a lower energy BFMI (E-BFMI) is reported.

    Returns
    -------
    Diagnostics
        ``table``: one row per non-constant parameter entry (structural constants, such as
        the zero loadings of the anchor block and the diagonal of ``corr``, and the upper
        triangle of ``corr`` are left out), columns ``variable``, ``r_hat``, ``ess_bulk``,
        ``ess_tail`` and ``failed``; ``by_variable``: the worst entry of each variable (one
        row for all of ``alpha``); and the fit-level summary: ``ok``, ``failed``,
        ``divergences``, ``divergences_per_chain``, ``bfmi_per_chain``, ``bfmi_min``,
        ``treedepth_saturated``, ``treedepth_share``, ``minor_mode_chains``, ``problems``.

    Raises
    ------
    BayesLslError
        For point fits (``mle``, ``map``: one draw), which have nothing to diagnose, or
        unknown ``var_names``.

    Warns
    -----
    UserWarning
        When any entry fails, any transition diverged or hit the maximum tree depth, any
        chain's E-BFMI is low, or a chain sits in a minor mode, with the counts.

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
    import arviz_stats as azs  # imported here: it doubles the import time of the package

    ds = post[list(var_names)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 on the constant entries
        rhat = azs.rhat(ds, method="rank")  # rank-normalized split R-hat (Vehtari et al. 2021)
        bulk = azs.ess(ds, method="bulk")
        tail = azs.ess(ds, method="tail")
    parts = []
    for name in var_names:
        constant = structural_constants(ds[name])
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
        problems.append(f"chain(s) {low_bfmi} have E-BFMI below {bfmi_min}")
    if summary.get("treedepth_saturated"):
        problems.append(f"{summary['treedepth_saturated']} transitions hit the maximum tree depth "
                        f"({100 * summary['treedepth_share']:.1f}%)")  # fmt: skip
    if stuck:
        problems.append(f"chain(s) {stuck} sit in a minor mode")
    if problems:
        warnings.warn(
            f"the fit fails its diagnostics (R-hat <= {rhat_max}, ESS >= {ess_min}): " + "; ".join(problems),
            stacklevel=2,
        )
    return Diagnostics(
        table=table, by_variable=_by_variable(table), ok=not problems, failed=failed, minor_mode_chains=stuck,
        problems=problems, **summary,
    )
