"""Figures from fits and tables; each function returns a matplotlib ``Figure``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure


def information_criteria(table: pd.DataFrame) -> Figure:
    """AIC and BIC against K from :func:`bayes_lsl.select_k` (the authors' AIC where known)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(table.index, table["aic"], "o-", label="AIC")
    ax.plot(table.index, table["bic"], "s-", label="BIC")
    if "paper_aic" in table and table["paper_aic"].notna().any():
        ax.plot(table.index, table["paper_aic"], "x--", color="grey", label="AIC reported by the authors")
    for col, marker in (("aic", "o"), ("bic", "s")):
        best = table[col].idxmin()
        ax.plot([best], [table.loc[best, col]], marker, ms=12, mfc="none", mec="k")
    ax.set(xlabel="number of skills K", ylabel="information criterion (lower is better)", xticks=table.index)
    ax.legend()
    fig.tight_layout()
    return fig


def _point(fit: xr.DataTree, name: str) -> xr.DataArray:
    return fit.posterior[name].mean(("chain", "draw"))


def loadings(fit: xr.DataTree) -> Figure:
    """Heatmap of the loadings ``lam`` (skill x benchmark), annotated with their values."""
    lam = _point(fit, "lam")
    fig, ax = plt.subplots(figsize=(1 + 0.7 * lam.sizes["benchmark"], 1 + 0.6 * lam.sizes["skill"]))
    lim = float(np.abs(lam).max())
    im = ax.imshow(lam.values, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(lam.sizes["benchmark"]), lam["benchmark"].values, rotation=45, ha="right")
    skills = [f"{s} ({a})" for s, a in zip(lam["skill"].values, fit.attrs["anchors"], strict=True)]
    ax.set_yticks(range(lam.sizes["skill"]), skills)
    for (i, j), v in np.ndenumerate(lam.values):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label="loading")
    ax.set_title(f"Loadings ({fit.attrs['method']}, K={fit.attrs['K']})")
    fig.tight_layout()
    return fig


def skill_correlation(fit: xr.DataTree) -> Figure:
    """Heatmap of the correlation of the family effects across skills."""
    corr = _point(fit, "corr")
    names = [f"{s}\n({a})" for s, a in zip(corr["skill"].values, fit.attrs["anchors"], strict=True)]
    fig, ax = plt.subplots(figsize=(1.5 + corr.sizes["skill"], 1 + corr.sizes["skill"]))
    im = ax.imshow(corr.values, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    for (i, j), v in np.ndenumerate(corr.values):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9)
    fig.colorbar(im, ax=ax, label="correlation")
    ax.set_title("Skill correlation of family effects")
    fig.tight_layout()
    return fig


__all__ = ["information_criteria", "loadings", "skill_correlation"]
