"""Comparing two families' effects, e.g. a base model family against its instruction-tuned one.

The family effects ``alpha_l`` are the families' skill levels net of size and tokens, so
their difference is what tuning (or a different recipe) adds per skill at equal compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from bayes_lsl.data import DataError
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.result import FitInfo
from bayes_lsl.parameters import family_effect_draws, parameter_draws


@dataclass(frozen=True)
class FamilyComparison:
    """Draws of two families' effects and a summary of their difference per skill.

    Attributes
    ----------
    draws : xarray.Dataset
        ``alpha`` (sample, family, skill) and ``difference`` (sample, skill), second
        family minus first.
    table : pandas.DataFrame
        Per skill: ``mean``, ``sd``, ``lower``, ``upper`` of the difference and
        ``p_greater``, the probability that the second family's effect is larger.
    """

    draws: xr.Dataset
    table: pd.DataFrame

    def plot(self, *, axes=None) -> Figure:
        """Joint densities of the two effects per skill, with the diagonal of equality
        (:func:`bayes_lsl.plots.plot_family_comparison`; ``axes``: one per skill)."""
        from bayes_lsl.plots import plot_family_comparison

        return plot_family_comparison(self, axes=axes)

    def _repr_html_(self) -> str:
        return self.table._repr_html_()

    def __repr__(self) -> str:
        return f"FamilyComparison\n{self.table.round(3).to_string()}"


def compare_families(
    fit: xr.DataTree, first: str, second: str, *, level: float = 0.95, n_draws: int = 2000, seed: int = 0
) -> FamilyComparison:
    """Per skill, the distribution of ``alpha[second] - alpha[first]``.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit`. With ``nuts``/``advi`` the posterior draws of
        ``alpha`` are used; with ``mle``, each family's empirical-Bayes posterior given
        its scores, re-derived for every draw of the parameters from their asymptotic
        normal, so that the parameters' uncertainty is included.
    first, second : str
        Family names (e.g. ``"yi-1.5"`` and ``"yi-1.5-chat"``).
    level : float
        Probability of the central interval of the difference.
    n_draws : int
        Number of draws of the parameters (and of the effects).
    seed : int
        Seed of every random step.

    Returns
    -------
    FamilyComparison

    Examples
    --------
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> import warnings
    >>> first, second = data.families[:2]
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # a map fit has no parameter uncertainty
    ...     comparison = bl.compare_families(fit, first, second, n_draws=200, seed=1)
    >>> comparison.table.columns.tolist()
    ['mean', 'sd', 'lower', 'upper', 'p_greater']
    >>> comparison.draws["difference"].dims
    ('sample', 'skill')
    """
    if not 0 < level < 1:
        raise BayesLslError(f"level must be in (0, 1), got {level}")
    info = FitInfo.from_tree(fit)
    known = [str(f) for f in fit["constant_data"]["family"].values]
    for name in (first, second):
        if name not in known:
            close = [f for f in known if name.split("-")[0] in f][:8]
            raise DataError(f"family {name!r} is not in the fit" + (f"; similar: {close}" if close else ""))
    if first == second:
        raise BayesLslError("compare two different families")
    params = parameter_draws(fit, n_draws=n_draws, seed=seed)
    J, p = len(info.benchmarks), len(info.covariates)
    alpha = family_effect_draws(
        fit, params, [first, second], np.zeros((2, p)), np.full((2, J), np.nan), seed=seed + 1
    )
    skills = params["skill"].values
    draws = xr.Dataset(
        {"alpha": (("sample", "family", "skill"), alpha)},
        coords={"sample": np.arange(alpha.shape[0]), "family": [first, second], "skill": skills},
    )
    diff = draws["alpha"].sel(family=second) - draws["alpha"].sel(family=first)
    draws["difference"] = diff.drop_vars("family", errors="ignore")
    q = diff.quantile([(1 - level) / 2, (1 + level) / 2], dim="sample").values
    table = pd.DataFrame(
        {
            "mean": diff.mean("sample").values,
            "sd": diff.std("sample").values,
            "lower": q[0],
            "upper": q[1],
            "p_greater": (diff > 0).mean("sample").values,
        },
        index=pd.Index([f"{s} ({a})" for s, a in zip(skills, info.anchors, strict=True)], name="skill"),
    )
    return FamilyComparison(draws, table)
