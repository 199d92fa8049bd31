"""Figures from fits and tables; each function returns a matplotlib ``Figure``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

if TYPE_CHECKING:
    from bayes_lsl.selection import Selection


def information_criteria(table: pd.DataFrame | Selection) -> Figure:
    """AIC and BIC against K from :func:`bayes_lsl.select_k` (the authors' AIC where known).

    ``table`` is what ``select_k`` returns or its ``.table`` (also as read back from CSV).
    The BIC's label names its n (``table.attrs["bic_n"]``, with the count from the
    ``bic_sample_size`` column), since the K it picks depends on it.
    """
    table = getattr(table, "table", table)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(table.index, table["aic"], "o-", label="AIC")
    bic_label = "BIC"
    if "bic_n" in table.attrs:
        size = f"{int(table['bic_sample_size'].iloc[0])} " if "bic_sample_size" in table else ""
        bic_label = f"BIC (n = {size}{table.attrs['bic_n']})"
    ax.plot(table.index, table["bic"], "s-", label=bic_label)
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


def _ink(scaled: float) -> str:
    """Text colour readable on a diverging colormap's cell at ``scaled`` in [-1, 1] (white on the dark ends)."""
    return "white" if abs(scaled) > 0.6 else "black"


def fixed_loadings(fit: xr.DataTree) -> xr.DataArray:
    """Boolean mask (skill x benchmark) of the loadings fixed at 0: the anchor block's off-diagonal."""
    lam = fit.posterior["lam"]
    K = lam.sizes["skill"]
    i, j = np.indices((K, lam.sizes["benchmark"]))
    return xr.DataArray((j < K) & (i != j), coords={"skill": lam["skill"], "benchmark": lam["benchmark"]})


def loadings(fit: xr.DataTree) -> Figure:
    """Heatmap of the loadings ``lam`` (skill x benchmark), annotated with their values.

    The loadings fixed at 0 by the anchoring (the off-diagonal of the anchor block) are
    hatched grey cells marked "fixed", not coloured like estimates.
    """
    lam = _point(fit, "lam")
    fixed = fixed_loadings(fit).transpose(*lam.dims).values
    fig, ax = plt.subplots(figsize=(1 + 0.7 * lam.sizes["benchmark"], 1.3 + 0.6 * lam.sizes["skill"]),
                           layout="constrained")  # fmt: skip
    lim = float(np.abs(lam).max())
    # Fixed cells are masked: drawn in the colormap's "bad" colour, then hatched.
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_array(lam.values, fixed), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(lam.sizes["benchmark"]), lam["benchmark"].values, rotation=45, ha="right")
    skills = [f"{s} ({a})" for s, a in zip(lam["skill"].values, fit.attrs["anchors"], strict=True)]
    ax.set_yticks(range(lam.sizes["skill"]), skills)
    for (i, j), v in np.ndenumerate(lam.values):
        if fixed[i, j]:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.6", lw=0))
            ax.text(j, i, "0\nfixed", ha="center", va="center", fontsize=7, color="0.3")
        else:
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color=_ink(v / lim))
    fig.colorbar(im, ax=ax, label="loading")
    fig.suptitle(f"Loadings ({fit.attrs['method']}, K={fit.attrs['K']}); hatched: fixed at 0 by the anchors")
    return fig


def skill_correlation(fit: xr.DataTree) -> Figure:
    """Heatmap of the correlation of the family effects across skills."""
    corr = _point(fit, "corr")
    names = [f"{s}\n({a})" for s, a in zip(corr["skill"].values, fit.attrs["anchors"], strict=True)]
    # Constrained layout with a figure title: the title sits above the colorbar too, clear
    # of its top tick label (an axes title spans the colorbar and ran into its "1.0").
    fig, ax = plt.subplots(figsize=(2 + corr.sizes["skill"], 1.3 + corr.sizes["skill"]), layout="constrained")
    im = ax.imshow(corr.values, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    for (i, j), v in np.ndenumerate(corr.values):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9, color=_ink(v))
    fig.colorbar(im, ax=ax, label="correlation")
    fig.suptitle("Skill correlation of family effects")
    return fig


def _panels(n: int, width: float = 3.2, height: float = 2.6, ncols: int = 4):
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def scaling_curves(
    fit: xr.DataTree,
    family: str,
    benchmarks: Sequence[str] | None = None,
    tokens: float | None = None,
    sizes: tuple[float, float] | None = None,
    level: float = 0.95,
    n_draws: int = 500,
    seed: int = 0,
) -> Figure:
    """Score against model size for one family: its data over the predictive bands.

    Parameters
    ----------
    fit : xarray.DataTree
        Any fit with parameter uncertainty (``mle``, ``advi``, ``nuts``).
    family : str
        A family of the fit; the curves condition on its scores.
    benchmarks : list of str, optional
        Panels to draw (default all).
    tokens : float, optional
        Pre-training tokens (trillions) along the curve; default the family's median.
    sizes : (float, float), optional
        Range of sizes (billions); default the family's range widened by 3x each way.
    level, n_draws, seed
        Interval probability, draws and seed of :func:`bayes_lsl.predict`.

    Returns
    -------
    Figure
        Per benchmark, the ``level`` band of the score (light) and of its mean ``mu``
        (dark), the median of ``mu``, and the family's observed scores.
    """
    from bayes_lsl.predict import predict, summarize

    cd = fit["constant_data"].to_dataset()
    members = cd["model_family"].values.astype(str) == family
    if not members.any():
        raise ValueError(f"family {family!r} is not in the fit")
    size, tok = cd["size"].values[members], cd["tokens"].values[members]
    tokens = float(np.median(tok)) if tokens is None else float(tokens)
    lo, hi = sizes or (size.min() / 3, size.max() * 3)
    grid = np.geomspace(lo, hi, 40)
    new = pd.DataFrame({"model": [f"{family}@{g:.4g}B" for g in grid], "family": family, "size": grid,
                        "tokens": tokens})  # fmt: skip
    _, draws = predict(fit, new, level=level, seed=seed, n_draws=n_draws, return_draws=True)
    score, mean = summarize(draws, "score", level), summarize(draws, "mu", level)
    benchmarks = list(benchmarks or fit.attrs["benchmarks"])
    fig, axes = _panels(len(benchmarks))
    for ax, bench in zip(axes, benchmarks, strict=True):
        s, m = score[score.benchmark == bench], mean[mean.benchmark == bench]
        ax.fill_between(grid, s["lower"], s["upper"], color="C0", alpha=0.2, lw=0, label=f"{level:.0%} score")
        ax.fill_between(grid, m["lower"], m["upper"], color="C0", alpha=0.45, lw=0, label=f"{level:.0%} mean")
        ax.plot(grid, m["median"], color="C0")
        y = cd["scores"].sel(benchmark=bench).values[members]
        ax.plot(size, y, "o", color="k", ms=4, label="observed")
        ax.set(xscale="log", title=bench, xlabel="parameters (B)", ylim=(0, 1))
    axes[0].set_ylabel("score")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{family}: scaling with size at {tokens:g}T tokens ({fit.attrs['method']}, K={fit.attrs['K']})")
    fig.tight_layout()
    return fig


def holdout(predictions: pd.DataFrame, title: str = "Held-out scores") -> Figure:
    """Predicted against observed held-out scores with their intervals (from :func:`bayes_lsl.evaluate_holdout`)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i, (bench, g) in enumerate(predictions.groupby("benchmark", sort=False)):
        if {"lower", "upper"} <= set(g.columns) and g["lower"].notna().all():
            err = np.vstack([g["mean"] - g["lower"], g["upper"] - g["mean"]])
            ax.errorbar(g["observed"], g["mean"], yerr=err, fmt="none", ecolor=f"C{i % 10}", alpha=0.4, lw=1)
        ax.plot(g["observed"], g["mean"], "o", color=f"C{i % 10}", ms=4, label=bench)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set(xlabel="observed score", ylabel="predicted score", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _intervals(
    fit: xr.DataTree, name: str, level: float, wald: dict | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Point, lower and upper of every entry of ``name``: Wald for mle (on the unconstrained
    scale, mapped back: :func:`bayes_lsl.parameters.mle_intervals`, or ``wald``, its result
    computed once for all names), central posterior otherwise."""
    post = fit.posterior[name]
    coords = [post[d].values for d in post.dims[2:]]
    labels = [", ".join(str(c[i]) for c, i in zip(coords, idx, strict=True)) for idx in np.ndindex(*post.shape[2:])]
    if fit.attrs["method"] == "mle":
        from bayes_lsl.parameters import mle_intervals

        lower, upper = (wald or mle_intervals(fit, level))[name]
        return post.values[0, 0].ravel(), lower.values.ravel(), upper.values.ravel(), labels
    flat = post.stack(sample=("chain", "draw")).transpose("sample", ...).values.reshape(-1, len(labels))
    lo, hi = np.quantile(flat, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return flat.mean(0), lo, hi, labels


def forest(fits: Mapping[str, xr.DataTree], names: Sequence[str] = ("beta", "lam"), level: float = 0.95) -> Figure:
    """Estimates with intervals of each parameter entry from several fits, side by side.

    Parameters
    ----------
    fits : dict
        Label -> fit, e.g. ``{"mle": fit_mle, "nuts": fit_nuts}``. ``mle`` fits show
        Wald intervals (on the unconstrained scale, mapped back), draw-based fits central posterior
        intervals, point fits (``map``) only the point.
    names : list of str
        Parameters to show (``beta``, ``lam``, ``b``, ``phi``, ``corr``).
    """
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 0.5 + 0.22 * max(
        int(np.prod(next(iter(fits.values())).posterior[n].shape[2:])) for n in names)), squeeze=False)  # fmt: skip
    offsets = np.linspace(-0.25, 0.25, len(fits)) if len(fits) > 1 else [0.0]
    from bayes_lsl.parameters import mle_intervals

    # One set of Wald draws per mle fit, shared by every parameter shown.
    wald = {label: mle_intervals(fit, level) for label, fit in fits.items() if fit.attrs["method"] == "mle"}
    for ax, name in zip(axes[0], names, strict=True):
        for k, (label, fit) in enumerate(fits.items()):
            point, lo, hi, labels = _intervals(fit, name, level, wald.get(label))
            y = np.arange(len(point))[::-1] + offsets[k]
            ax.hlines(y, lo, hi, color=f"C{k}", lw=1.5)
            ax.plot(point, y, "o", color=f"C{k}", ms=3.5, label=label)
        ax.set_yticks(np.arange(len(labels))[::-1], labels, fontsize=7)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(f"{name} ({level:.0%} intervals)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def family_comparison(comparison) -> Figure:
    """Joint density of two families' effects per skill, with the diagonal of equality.

    Mass above the diagonal means the second family has the higher effect on that skill;
    the title gives that probability.
    """
    alpha = comparison.draws["alpha"]
    first, second = (str(f) for f in alpha["family"].values)
    labels = list(comparison.table.index)
    fig, axes = _panels(len(labels), width=3.2, height=3.2)
    for ax, skill, label in zip(axes, alpha["skill"].values, labels, strict=True):
        a = alpha.sel(family=first, skill=skill).values
        b = alpha.sel(family=second, skill=skill).values
        lim = np.quantile(np.concatenate([a, b]), [0.005, 0.995])
        ax.hexbin(a, b, gridsize=30, extent=(*lim, *lim), cmap="Blues", mincnt=1)
        ax.plot(lim, lim, color="k", lw=1, ls="--")
        p = comparison.table.loc[label, "p_greater"]
        ax.set(xlim=lim, ylim=lim, xlabel=first, ylabel=second, title=f"{label}\nP({second} > {first}) = {p:.2f}")
    fig.tight_layout()
    return fig


def allocation(table: pd.DataFrame) -> Figure:
    """Optimal size and tokens versus FLOPs, one line per target, with interval bands.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`bayes_lsl.allocate`.

    Returns
    -------
    matplotlib.figure.Figure
        Two log-log panels, size (billions of parameters) and tokens (trillions); open
        markers flag optima set by the box (most draws on one of its edges), where the band
        says nothing about certainty.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, constrained_layout=True)
    for i, (name, part) in enumerate(table.groupby("target", sort=False)):
        color = f"C{i}"
        for ax, what in zip(axes, ("size", "tokens"), strict=True):
            ax.plot(part["flops"], part[f"{what}_opt"], "-o", color=color, label=name, ms=4)
            ax.fill_between(part["flops"], part[f"{what}_lower"], part[f"{what}_upper"], color=color, alpha=0.2, lw=0)
            edge = part[part["set_by_box"]]
            ax.plot(edge["flops"], edge[f"{what}_opt"], "o", mfc="white", mec=color, ms=8)
    for ax, label in zip(axes, ("optimal size (B parameters)", "optimal tokens (T)"), strict=True):
        ax.set(xscale="log", yscale="log", xlabel="training FLOPs", ylabel=label)
    axes[0].legend(title="target (open: set by the data's box)", fontsize="small")
    return fig


__all__ = [
    "allocation",
    "family_comparison",
    "forest",
    "holdout",
    "information_criteria",
    "loadings",
    "scaling_curves",
    "skill_correlation",
]
