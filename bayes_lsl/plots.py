"""Figures from fits and tables.

Every figure is a function ``plot_<what>``. Those with one panel take ``ax=None``, those
with several (one per benchmark, skill, parameter or quantity) ``axes=None``: given
axes, the function draws into them, so that figures compose; without, it makes a new
figure. Either way it returns the matplotlib :class:`~matplotlib.figure.Figure` that
holds the drawing. Figure-wide touches (the layout, a title over several panels) are
made only on a figure the function created.

Examples
--------
Two figures side by side in one:

>>> import matplotlib.pyplot as plt
>>> from bayes_lsl.plots import plot_loadings, plot_skill_correlation
>>> # fit = bl.fit(bl.load_example(), K=2, method="map")
>>> fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3), layout="constrained")
>>> plot_loadings(fit, ax=left) is plot_skill_correlation(fit, ax=right) is fig
True
>>> [ax.get_title() for ax in (left, right)]
['Loadings (map, K=2); hatched: fixed at 0 by the anchors', 'Skill correlation of family effects']
>>> plt.close(fig)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.result import FitInfo, posterior_mean

__all__ = [
    "plot_allocation",
    "plot_family_comparison",
    "plot_forest",
    "plot_holdout",
    "plot_information_criteria",
    "plot_loadings",
    "plot_loo_pit",
    "plot_prior_predictive",
    "plot_ppc",
    "plot_scaling_curves",
    "plot_skill_correlation",
    # model comparison and recalibration (issue 14)
    "plot_calibration",
    "plot_scaling_bands",
]


# ------------------------------------------------------------------ axes
def _root(ax: Axes) -> Figure:
    return ax.get_figure(root=True)


def _single_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure with one axes."""
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    if not isinstance(ax, Axes):
        raise BayesLslError(f"ax: expected one matplotlib Axes, got {type(ax).__name__}")
    return _root(ax), ax


def _panel_axes(
    axes, n: int, per: str, *, width: float = 3.2, height: float = 2.6, ncols: int = 4, **subplots
) -> tuple[Figure, list[Axes], bool]:
    """The ``n`` panels of a figure with one panel ``per`` something: ``axes`` as given, or a
    new grid of ``ncols`` columns (the unused cells hidden). Also says whether the figure is new."""
    if axes is None:
        ncols = min(ncols, n)
        nrows = int(np.ceil(n / ncols))
        fig, grid = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                                 layout="constrained", **subplots)  # fmt: skip
        for ax in grid.flat[n:]:
            ax.set_visible(False)
        return fig, list(grid.flat[:n]), True
    given = [axes] if isinstance(axes, Axes) else list(np.ravel(np.asarray(axes, dtype=object)))
    if len(given) != n or not all(isinstance(ax, Axes) for ax in given):
        kinds = sorted({type(ax).__name__ for ax in given})
        raise BayesLslError(f"axes: this figure has one panel per {per} and needs {n} matplotlib Axes; got "
                            f"{len(given)} ({', '.join(kinds) or 'none'})")  # fmt: skip
    if len({id(_root(ax)) for ax in given}) > 1:
        raise BayesLslError("axes: the panels must belong to one figure")
    return _root(given[0]), given, False


def _ink(scaled: float) -> str:
    """Text colour readable on a diverging colormap's cell at ``scaled`` in [-1, 1] (white on the dark ends)."""
    return "white" if abs(scaled) > 0.6 else "black"


def _skill_labels(info: FitInfo, sep: str = " ") -> list[str]:
    return [f"{skill}{sep}({anchor})" for skill, anchor in zip(info.skills, info.anchors, strict=True)]


# ------------------------------------------------------------------ a fit's parameters
def _fixed_loadings(info: FitInfo) -> np.ndarray:
    """Boolean mask (skill x benchmark) of the loadings fixed at 0: the anchor block's off-diagonal."""
    i, j = np.indices((info.K, len(info.benchmarks)))
    return (j < info.K) & (i != j)


def plot_loadings(fit: xr.DataTree, *, ax: Axes | None = None) -> Figure:
    """Heatmap of the loadings ``lam`` (skill x benchmark), annotated with their values.

    The loadings fixed at 0 by the anchoring (the off-diagonal of the anchor block) are
    hatched grey cells marked "fixed", not coloured like estimates.

    Parameters
    ----------
    fit : xarray.DataTree
        Any fit; the posterior mean is shown (the point itself for ``mle`` and ``map``).
    ax : matplotlib.axes.Axes, optional
        Where to draw (its figure gets the colorbar); default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from bayes_lsl.plots import plot_loadings
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> fig = plot_loadings(fit)
    >>> fig.axes[0].get_title()
    'Loadings (map, K=2); hatched: fixed at 0 by the anchors'
    >>> [label.get_text() for label in fig.axes[0].get_yticklabels()]
    ['skill_1 (math)', 'skill_2 (ifeval)']
    """
    info = FitInfo.from_tree(fit)
    lam = posterior_mean(fit, ["lam"])["lam"]
    fixed = _fixed_loadings(info)
    J = len(info.benchmarks)
    fig, ax = _single_axes(ax, figsize=(1.5 + 0.7 * J, 1.3 + 0.6 * info.K))
    lim = float(np.abs(lam).max())
    # Fixed cells are masked: drawn in the colormap's "bad" colour, then hatched.
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_array(lam, fixed), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(J), info.benchmarks, rotation=45, ha="right")
    ax.set_yticks(range(info.K), _skill_labels(info))
    for (i, j), v in np.ndenumerate(lam):
        if fixed[i, j]:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.6", lw=0))
            ax.text(j, i, "0\nfixed", ha="center", va="center", fontsize=7, color="0.3")
        else:
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color=_ink(v / lim))
    # A shrunk colorbar keeps its end labels below the axes' title.
    fig.colorbar(im, ax=ax, label="loading", shrink=0.85)
    ax.set_title(f"Loadings ({info.method}, K={info.K}); hatched: fixed at 0 by the anchors", fontsize=10)
    return fig


def plot_skill_correlation(fit: xr.DataTree, *, ax: Axes | None = None) -> Figure:
    """Heatmap of the correlation of the family effects across skills.

    Parameters
    ----------
    fit : xarray.DataTree
        Any fit; the posterior mean is shown (the point itself for ``mle`` and ``map``).
    ax : matplotlib.axes.Axes, optional
        Where to draw (its figure gets the colorbar); default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from bayes_lsl.plots import plot_skill_correlation
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> fig = plot_skill_correlation(fit)
    >>> fig.axes[0].get_title()
    'Skill correlation of family effects'
    >>> fig.axes[0].images[0].get_array().shape
    (2, 2)
    """
    info = FitInfo.from_tree(fit)
    corr = posterior_mean(fit, ["corr"])["corr"]
    names = _skill_labels(info, sep="\n")
    fig, ax = _single_axes(ax, figsize=(2.5 + info.K, 1.5 + info.K))
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(info.K), names)
    ax.set_yticks(range(info.K), names)
    for (i, j), v in np.ndenumerate(corr):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9, color=_ink(v))
    # Shrunk, the colorbar's "1.0" stays clear of the title (a full-height one ran into it).
    fig.colorbar(im, ax=ax, label="correlation", shrink=0.8)
    ax.set_title("Skill correlation of family effects", fontsize=10)
    return fig


def plot_forest(
    fits: Mapping[str, xr.DataTree],
    names: Sequence[str] = ("beta", "lam"),
    *,
    level: float = 0.95,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Estimates with intervals of each parameter entry from several fits, side by side.

    Parameters
    ----------
    fits : dict
        Label -> fit, e.g. ``{"mle": fit_mle, "nuts": fit_nuts}``. ``mle`` fits show
        Wald intervals (on the unconstrained scale, mapped back), draw-based fits central posterior
        intervals, point fits (``map``) only the point.
    names : list of str
        Parameters to show (``beta``, ``lam``, ``b``, ``phi``, ``corr``), one panel each.
    level : float
        Probability of the intervals.
    axes : sequence of matplotlib.axes.Axes, optional
        One per name; default a new figure with one row.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from bayes_lsl.plots import plot_forest
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> fig = plot_forest({"map": fit}, names=("beta", "b"))
    >>> [ax.get_title() for ax in fig.axes]
    ['beta (95% intervals)', 'b (95% intervals)']
    >>> len(fig.axes[1].get_yticks())  # one row per benchmark
    8
    """
    from bayes_lsl.parameters import parameter_intervals

    names = list(names)
    # One table per fit (for an mle fit: one set of Wald draws shared by every parameter shown).
    tables = {label: parameter_intervals(fit, names, level=level) for label, fit in fits.items()}
    rows = max(int((t["variable"] == n).sum()) for t in tables.values() for n in names)
    fig, panels, _ = _panel_axes(axes, len(names), "parameter name", width=4.5, height=0.5 + 0.22 * rows,
                                 ncols=len(names))  # fmt: skip
    offsets = np.linspace(-0.25, 0.25, len(fits)) if len(fits) > 1 else [0.0]
    for ax, name in zip(panels, names, strict=True):
        for k, (label, table) in enumerate(tables.items()):
            part = table[table["variable"] == name]
            y = np.arange(len(part))[::-1] + offsets[k]
            ax.hlines(y, part["lower"], part["upper"], color=f"C{k}", lw=1.5)
            ax.plot(part["estimate"], y, "o", color=f"C{k}", ms=3.5, label=label)
        ax.set_yticks(np.arange(len(part))[::-1], part["entry"], fontsize=7)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(f"{name} ({level:.0%} intervals)")
    panels[0].legend(fontsize=8)
    return fig


# ------------------------------------------------------------------ predictions
def _size_grid(family: str, grid: np.ndarray, tokens: float, kinds=None) -> pd.DataFrame:
    """New models of ``family`` along a grid of sizes at fixed tokens, for predictive curves.

    They take the family's kind when its models share one (``kinds``), so that fits by
    kind can predict them; a family of both kinds gets none (predict then reads the names).
    """
    frame = pd.DataFrame({"model": [f"{family}@{g:.4g}B" for g in grid], "family": family, "size": grid,
                          "tokens": tokens})  # fmt: skip
    known = set() if kinds is None else {str(k) for k in kinds}
    if len(known) == 1:
        frame["kind"] = known.pop()
    return frame


def plot_scaling_curves(
    fit: xr.DataTree,
    family: str,
    *,
    benchmarks: Sequence[str] | None = None,
    tokens: float | None = None,
    sizes: tuple[float, float] | None = None,
    level: float = 0.95,
    n_draws: int = 500,
    seed: int = 0,
    axes: Sequence[Axes] | None = None,
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
    axes : sequence of matplotlib.axes.Axes, optional
        One per benchmark; default a new figure, four panels a row, titled with the
        family and tokens.

    Returns
    -------
    matplotlib.figure.Figure
        Per benchmark, the ``level`` band of the score (light) and of its mean ``mu``
        (dark), the median of ``mu``, and the family's observed scores.

    Examples
    --------
    >>> from bayes_lsl.plots import plot_scaling_curves
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> fig = plot_scaling_curves(fit, "fam000", benchmarks=["math", "mmlu"], n_draws=50)
    >>> [ax.get_title() for ax in fig.axes]
    ['math', 'mmlu']
    >>> fig.get_suptitle()
    'fam000: scaling with size at 0.409T tokens (map, K=2)'
    """
    from bayes_lsl.predict import predict_draws, summarize

    info = FitInfo.from_tree(fit)
    cd = fit["constant_data"].to_dataset()
    members = cd["model_family"].values.astype(str) == family
    if not members.any():
        raise BayesLslError(f"family {family!r} is not in the fit")
    benchmarks = list(info.benchmarks if benchmarks is None else benchmarks)
    unknown = [b for b in benchmarks if b not in info.benchmarks]
    if unknown:
        raise BayesLslError(f"benchmarks {unknown} are not in the fit ({', '.join(info.benchmarks)})")
    if axes is not None:
        _panel_axes(axes, len(benchmarks), "benchmark")  # axes that do not fit fail before the predictions
    size, tok = cd["size"].values[members], cd["tokens"].values[members]
    tokens = float(np.median(tok)) if tokens is None else float(tokens)
    lo, hi = sizes or (size.min() / 3, size.max() * 3)
    grid = np.geomspace(lo, hi, 40)
    new_models = _size_grid(family, grid, tokens, cd["kind"].values[members] if "kind" in cd else None)
    draws = predict_draws(fit, new_models, level=level, seed=seed, n_draws=n_draws).draws
    score, mean = summarize(draws, "score", level=level), summarize(draws, "mu", level=level)
    fig, panels, new = _panel_axes(axes, len(benchmarks), "benchmark")  # a new figure only once nothing can fail
    for ax, bench in zip(panels, benchmarks, strict=True):
        s, m = score[score.benchmark == bench], mean[mean.benchmark == bench]
        ax.fill_between(grid, s["lower"], s["upper"], color="C0", alpha=0.2, lw=0, label=f"{level:.0%} score")
        ax.fill_between(grid, m["lower"], m["upper"], color="C0", alpha=0.45, lw=0, label=f"{level:.0%} mean")
        ax.plot(grid, m["median"], color="C0")
        y = cd["scores"].sel(benchmark=bench).values[members]
        ax.plot(size, y, "o", color="k", ms=4, label="observed")
        ax.set(xscale="log", title=bench, xlabel="parameters (B)", ylim=(0, 1))
    panels[0].set_ylabel("score")
    panels[0].legend(fontsize=7)
    if new:
        fig.suptitle(f"{family}: scaling with size at {tokens:g}T tokens ({info.method}, K={info.K})")
    return fig


def plot_holdout(predictions: pd.DataFrame, *, title: str = "Held-out scores", ax: Axes | None = None) -> Figure:
    """Predicted against observed held-out scores with their intervals.

    Parameters
    ----------
    predictions : pandas.DataFrame
        ``HoldoutResult.predictions`` (:func:`bayes_lsl.evaluate_holdout`): columns
        ``benchmark``, ``observed``, ``mean`` and, optionally, ``lower``, ``upper``.
    title : str
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> from bayes_lsl.plots import plot_holdout
    >>> predictions = pd.DataFrame({"benchmark": ["mmlu", "mmlu", "bbh"], "observed": [0.5, 0.2, 0.9],
    ...                             "mean": [0.4, 0.25, 0.6], "lower": [0.3, 0.1, 0.5], "upper": [0.6, 0.3, 0.7]})
    >>> fig = plot_holdout(predictions)
    >>> fig.axes[0].get_legend_handles_labels()[1]
    ['mmlu', 'bbh']
    """
    fig, ax = _single_axes(ax, figsize=(5.5, 5))
    for i, (bench, g) in enumerate(predictions.groupby("benchmark", sort=False)):
        if {"lower", "upper"} <= set(g.columns) and g["lower"].notna().all():
            err = np.vstack([g["mean"] - g["lower"], g["upper"] - g["mean"]])
            ax.errorbar(g["observed"], g["mean"], yerr=err, fmt="none", ecolor=f"C{i % 10}", alpha=0.4, lw=1)
        ax.plot(g["observed"], g["mean"], "o", color=f"C{i % 10}", ms=4, label=bench)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set(xlabel="observed score", ylabel="predicted score", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(fontsize=7, ncol=2)
    return fig


# ------------------------------------------------------------------ other analyses' results
def plot_information_criteria(table, *, ax: Axes | None = None) -> Figure:
    """AIC and BIC against K from :func:`bayes_lsl.select_k` (the authors' AIC where known).

    The BIC's label names its n (``table.attrs["bic_n"]``, with the count from the
    ``bic_sample_size`` column), since the K it picks depends on it.

    Parameters
    ----------
    table : Selection or pandas.DataFrame
        What :func:`bayes_lsl.select_k` returns, or its ``table`` (also as read back from
        CSV): indexed by K, columns ``aic``, ``bic`` (and ``paper_aic``, ``bic_sample_size``).
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The minimum of each criterion is circled.

    Examples
    --------
    >>> import pandas as pd
    >>> from bayes_lsl.plots import plot_information_criteria
    >>> table = pd.DataFrame({"aic": [310.0, 290.5, 295.2], "bic": [330.1, 318.9, 333.0]},
    ...                      index=pd.Index([1, 2, 3], name="K"))
    >>> fig = plot_information_criteria(table)
    >>> fig.axes[0].get_legend_handles_labels()[1]
    ['AIC', 'BIC']
    """
    table = getattr(table, "table", table)
    fig, ax = _single_axes(ax, figsize=(6, 4))
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
    return fig


def plot_family_comparison(comparison, *, axes: Sequence[Axes] | None = None) -> Figure:
    """Joint density of two families' effects per skill, with the diagonal of equality.

    Mass above the diagonal means the second family has the higher effect on that skill;
    each panel's title gives that probability.

    Parameters
    ----------
    comparison : FamilyComparison
        From :func:`bayes_lsl.compare_families` (its ``.plot()`` calls this).
    axes : sequence of matplotlib.axes.Axes, optional
        One per skill; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from bayes_lsl.plots import plot_family_comparison
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> comparison = bl.compare_families(fit, "fam000", "fam001", n_draws=200)
    >>> fig = plot_family_comparison(comparison)
    >>> [ax.get_xlabel() + " / " + ax.get_ylabel() for ax in fig.axes]
    ['fam000 / fam001', 'fam000 / fam001']
    """
    alpha = comparison.draws["alpha"]
    first, second = (str(f) for f in alpha["family"].values)
    labels = list(comparison.table.index)
    fig, panels, _ = _panel_axes(axes, len(labels), "skill", width=3.2, height=3.2)
    for ax, skill, label in zip(panels, alpha["skill"].values, labels, strict=True):
        a = alpha.sel(family=first, skill=skill).values
        b = alpha.sel(family=second, skill=skill).values
        lim = np.quantile(np.concatenate([a, b]), [0.005, 0.995])
        ax.hexbin(a, b, gridsize=30, extent=(*lim, *lim), cmap="Blues", mincnt=1)
        ax.plot(lim, lim, color="k", lw=1, ls="--")
        p = comparison.table.loc[label, "p_greater"]
        ax.set(xlim=lim, ylim=lim, xlabel=first, ylabel=second, title=f"{label}\nP({second} > {first}) = {p:.2f}")
    return fig


def plot_allocation(table: pd.DataFrame, *, axes: Sequence[Axes] | None = None) -> Figure:
    """Optimal size and tokens versus FLOPs, one line per target, with interval bands.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`bayes_lsl.allocate`.
    axes : pair of matplotlib.axes.Axes, optional
        Where to draw size and tokens; default a new figure, the two side by side.

    Returns
    -------
    matplotlib.figure.Figure
        Two log-log panels, size (billions of parameters) and tokens (trillions); open
        markers flag optima set by the box (most draws on one of its edges), where the band
        says nothing about certainty.

    Examples
    --------
    >>> from bayes_lsl.plots import plot_allocation
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> table = bl.allocate(fit, [1e21, 1e22], n_draws=1)  # a map fit: the point's optimum only
    >>> fig = plot_allocation(table)
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['optimal size (B parameters)', 'optimal tokens (T)']
    """
    fig, panels, _ = _panel_axes(axes, 2, "quantity (size, tokens)", width=5, height=4, sharex=True)
    for i, (name, part) in enumerate(table.groupby("target", sort=False)):
        color = f"C{i}"
        for ax, what in zip(panels, ("size", "tokens"), strict=True):
            ax.plot(part["flops"], part[f"{what}_opt"], "-o", color=color, label=name, ms=4)
            ax.fill_between(part["flops"], part[f"{what}_lower"], part[f"{what}_upper"], color=color, alpha=0.2, lw=0)
            edge = part[part["set_by_box"]]
            ax.plot(edge["flops"], edge[f"{what}_opt"], "o", mfc="white", mec=color, ms=8)
    for ax, label in zip(panels, ("optimal size (B parameters)", "optimal tokens (T)"), strict=True):
        ax.set(xscale="log", yscale="log", xlabel="training FLOPs", ylabel=label)
    panels[0].legend(title="target (open: set by the data's box)", fontsize="small")
    return fig


# ------------------------------------------------------------------ checking a fit
def plot_ppc(check, *, kind: str = "density", n_replicates: int = 50, axes: Sequence[Axes] | None = None) -> Figure:
    """Observed against replicated scores, one panel per benchmark.

    Parameters
    ----------
    check : PosteriorPredictiveCheck
        From :func:`bayes_lsl.posterior_predictive_check` (its ``.plot()`` calls this).
    kind : {"density", "intervals"}
        ``"density"``: the histogram of the benchmark's observed scores (black) over those
        of ``n_replicates`` replicated data sets (blue). ``"intervals"``: the coverage of
        the central predictive intervals (50, 90, 95% ...) by size bin, against their
        nominal levels (dashed): under-coverage in a bin means misfit there.
    n_replicates : int
        Replicated data sets drawn with ``kind="density"``.
    axes : sequence of matplotlib.axes.Axes, optional
        One per benchmark; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from bayes_lsl.plots import plot_ppc
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # a map fit: Beta noise only
    ...     check = bl.posterior_predictive_check(fit, n_draws=100)
    >>> fig = plot_ppc(check, kind="intervals")
    >>> len(fig.axes) == len(data.benchmarks)
    True
    """
    if kind not in ("density", "intervals"):
        raise BayesLslError(f"kind must be 'density' or 'intervals', got {kind!r}")
    cells, rep = check.cells, check.replicates
    benchmarks = list(dict.fromkeys(cells["benchmark"]))
    fig, panels, _ = _panel_axes(axes, len(benchmarks), "benchmark")
    bins = np.linspace(0, 1, 26)
    y_rep = rep["y_rep"].values
    pick = np.linspace(0, len(y_rep) - 1, min(n_replicates, len(y_rep))).astype(int)
    levels = [c.removeprefix("lower_") for c in cells.columns if c.startswith("lower_")]
    for ax, bench in zip(panels, benchmarks, strict=True):
        mask = (cells["benchmark"] == bench).to_numpy()
        if kind == "density":
            for s in pick:
                ax.hist(y_rep[s, mask], bins=bins, histtype="step", color="C0", alpha=0.15, lw=0.8, density=True)
            ax.hist(cells.loc[mask, "observed"], bins=bins, histtype="step", color="k", lw=1.6, density=True)
            ax.set(xlabel="score", ylabel="density", title=bench)
            continue
        part = cells[mask]
        groups = sorted(part["size_bin"].unique())
        for i, level in enumerate(levels):
            inside = (part[f"lower_{level}"] <= part["observed"]) & (part["observed"] <= part[f"upper_{level}"])
            share = inside.groupby(part["size_bin"]).mean().reindex(groups)
            ax.plot(range(len(groups)), share.values, "-o", color=f"C{i}", label=f"{level}%", ms=4)
            ax.axhline(float(level) / 100, color=f"C{i}", ls="--", lw=0.8)
        ax.set_xticks(range(len(groups)), [g.split(": ")[-1] for g in groups], fontsize="small")
        ax.set(ylim=(0, 1.02), xlabel="size bin", ylabel="coverage", title=bench)
    if kind == "intervals":
        panels[0].legend(title="interval", fontsize="small")
    return fig


def plot_loo_pit(
    pit: pd.DataFrame, *, ci_prob: float = 0.95, n_simulations: int = 1000, seed: int = 0,
    axes: Sequence[Axes] | None = None,
) -> Figure:  # fmt: skip
    """ECDF of the LOO-PIT values minus the uniform's, per benchmark, with a simultaneous band.

    A calibrated model stays inside the band (ArviZ's simultaneous ``ci_prob`` band for
    the ECDF of as many uniform values, ``arviz_stats.ecdf_utils.ecdf_pit``). A curve
    above it at low values and below at high values (an S, from too many PITs near 0
    and 1) means predictive intervals too narrow; rising above the band: scores lower
    than predicted; below it: higher.

    Parameters
    ----------
    pit : pandas.DataFrame
        From :func:`bayes_lsl.loo_pit`.
    ci_prob : float
        Simultaneous coverage of the band.
    n_simulations : int
        Simulations that set the band (seeded).
    seed : int
    axes : sequence of matplotlib.axes.Axes, optional
        One per benchmark; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from arviz_stats.ecdf_utils import ecdf_pit

    if not 0 < ci_prob < 1:
        raise BayesLslError(f"ci_prob must be in (0, 1), got {ci_prob}")
    benchmarks = list(dict.fromkeys(pit["benchmark"]))
    fig, panels, _ = _panel_axes(axes, len(benchmarks), "benchmark", sharey=True)
    for ax, bench in zip(panels, benchmarks, strict=True):
        part = pit[pit["benchmark"] == bench]
        x, ecdf, lower, upper = ecdf_pit(part["loo_pit"].to_numpy(), ci_prob, n_simulations,
                                         rng=np.random.default_rng(seed))  # fmt: skip
        ax.fill_between(x, lower - x, upper - x, step="post", color="C0", alpha=0.25, lw=0)
        ax.step(x, ecdf - x, where="post", color="k", lw=1.2)
        ax.axhline(0, color="grey", lw=0.6)
        high = (part["pareto_k"] > 0.7).mean()
        ax.set(xlabel="LOO-PIT", ylabel="ECDF - uniform", title=f"{bench} (k > 0.7: {high:.0%})")
    return fig


# ------------------------------------------------------------------ prior predictive checks
def plot_prior_predictive(tree: xr.DataTree, *, axes: Sequence[Axes] | None = None, bins: int = 40) -> Figure:
    """Prior predictive score distributions per benchmark, against the observed scores.

    Parameters
    ----------
    tree : xarray.DataTree
        From :func:`bayes_lsl.prior_predictive`.
    axes : sequence of matplotlib.axes.Axes, optional
        One per benchmark; default a new figure.
    bins : int
        Histogram bins on [0, 1].

    Returns
    -------
    matplotlib.figure.Figure
        Per benchmark, the density of the prior predictive scores (pooled over draws and the
        scored models) and of the observed scores, the floor dashed; each title gives the
        share of prior mean scores within 0.01 of the floor or the ceiling.

    Examples
    --------
    >>> from bayes_lsl.plots import plot_prior_predictive
    >>> # tree = bl.prior_predictive(data, K=4)
    >>> fig = plot_prior_predictive(tree)  # doctest: +SKIP
    """
    from bayes_lsl.prior_predictive import summarize_prior_predictive

    if not isinstance(tree, xr.DataTree) or "prior_predictive" not in tree.children:
        raise BayesLslError("tree: expected the result of bl.prior_predictive (a DataTree with prior_predictive)")
    summary = summarize_prior_predictive(tree)
    observed = tree["constant_data"]["observed"]
    benchmarks = [str(b) for b in tree["prior_predictive"]["benchmark"].values]
    fig, panels, new = _panel_axes(axes, len(benchmarks), "benchmark", width=3.0, height=2.3)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for ax, name in zip(panels, benchmarks, strict=True):
        scored = observed.sel(benchmark=name).values
        prior = tree["prior_predictive"]["y"].sel(benchmark=name).values[..., scored].ravel()
        obs = tree["observed_data"]["y"].sel(benchmark=name).values[scored]
        ax.hist(prior, bins=edges, density=True, color="C0", alpha=0.5, label="prior predictive")
        ax.hist(obs, bins=edges, density=True, histtype="step", color="k", lw=1.2, label="observed")
        ax.axvline(float(tree["constant_data"]["floor"].sel(benchmark=name)), color="grey", ls="--", lw=1)
        share = summary.by_benchmark.loc[name, "share_mean_at_bounds"]
        ax.set(title=f"{name} (mean at bounds {share:.0%})", xlim=(0, 1), yticks=[])
    panels[0].legend(fontsize="small")
    if new:
        fig.suptitle(f"Prior predictive scores (K={tree.attrs.get('K')}): {summary}", fontsize="small")
    return fig


# ------------------------------------------------------------------ model comparison and recalibration (issue 14)
def _calibration_frame(results, protocol: str | None, levels, cluster, n_boot: int, seed: int) -> pd.DataFrame:
    """Coverage per configuration and level from a ModelComparison, a dict of results or predictions, or a frame."""
    from bayes_lsl.recalibration import coverage_by_level

    if hasattr(results, "calibration"):  # a ModelComparison
        frame = results.calibration
        protocol = protocol or frame["protocol"].iloc[0]
        if protocol not in set(frame["protocol"]):
            raise BayesLslError(f"protocol: {protocol!r} is not in the comparison ({sorted(set(frame['protocol']))})")
        return frame[frame["protocol"] == protocol]
    if isinstance(results, pd.DataFrame) and {"configuration", "level", "coverage"} <= set(results.columns):
        return results
    if not isinstance(results, Mapping) or not results:
        raise BayesLslError("results: expected a ModelComparison, a coverage table, or a dict of name -> "
                            "HoldoutResult (or its predictions)")  # fmt: skip
    parts = [coverage_by_level(getattr(r, "predictions", r), levels, cluster=cluster, n_boot=n_boot, seed=seed)
             .assign(configuration=name) for name, r in results.items()]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def plot_calibration(
    results,
    *,
    protocol: str | None = None,
    levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95),
    cluster: str | None = "group",
    n_boot: int = 1000,
    seed: int = 0,
    ax: Axes | None = None,
) -> Figure:
    """Nominal against empirical coverage of the central intervals, per configuration.

    Parameters
    ----------
    results : ModelComparison, dict or DataFrame
        A :class:`~bayes_lsl.model_comparison.ModelComparison` (its ``calibration``, one
        protocol), a dict of name to :class:`~bayes_lsl.holdout.HoldoutResult` (or its
        predictions, with the level columns ``lower_50`` ... ``upper_95``), or a table from
        :func:`bayes_lsl.recalibration.coverage_by_level` with a ``configuration`` column.
    protocol : str, optional
        The comparison's protocol to draw (default its first).
    levels, cluster, n_boot, seed
        For a dict: the nominal levels and the family-group bootstrap of the error bars.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Each configuration's coverage at each level with its bootstrap interval (the bars
        clustered by family group, so they are wider than binomial ones), side by side,
        over the diagonal; recalibrated configurations dashed.

    Examples
    --------
    >>> import pandas as pd
    >>> from bayes_lsl.plots import plot_calibration
    >>> table = pd.DataFrame({"configuration": ["a"] * 2, "level": [0.5, 0.95], "coverage": [0.4, 0.9],
    ...                       "coverage_lower": [0.3, 0.85], "coverage_upper": [0.5, 0.95]})
    >>> fig = plot_calibration(table)
    >>> fig.axes[0].get_legend_handles_labels()[1]
    ['a']
    """
    frame = _calibration_frame(results, protocol, levels, cluster, n_boot, seed)
    fig, ax = _single_axes(ax, figsize=(5, 5))
    names = list(dict.fromkeys(frame["configuration"]))
    dodge = 0.012 * (np.arange(len(names)) - (len(names) - 1) / 2)
    for i, name in enumerate(names):
        g = frame[frame["configuration"] == name].sort_values("level")
        x = g["level"].to_numpy(float) + dodge[i]
        err = np.vstack([g["coverage"] - g["coverage_lower"], g["coverage_upper"] - g["coverage"]])
        recal = bool(g["recalibrated"].any()) if "recalibrated" in g.columns else False
        ax.errorbar(x, g["coverage"], yerr=err, fmt="o" + ("--" if recal else "-"), color=f"C{i % 10}", ms=4,
                    capsize=2, lw=1, label=name)  # fmt: skip
    lo = min(0.4, float(frame["coverage_lower"].min()) - 0.02)
    ax.plot([lo, 1], [lo, 1], color="grey", lw=1, ls=":")
    ax.set(xlabel="nominal coverage", ylabel="empirical coverage", xlim=(lo, 1), ylim=(lo, 1),
           title="Calibration of the central intervals")  # fmt: skip
    ax.legend(fontsize=7)
    return fig


def _band_draws(fit, grid_models: pd.DataFrame, n_draws: int, seed: int) -> xr.Dataset:
    """Predictive draws of the scores along a grid from a fit or a baseline (``predict_draws`` method)."""
    import warnings

    from bayes_lsl.predict import predict_draws

    if hasattr(fit, "predict_draws"):  # a SigmoidBaseline
        return fit.predict_draws(grid_models, n_draws=n_draws, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the grid reaches past the data's range on purpose
        return predict_draws(fit, grid_models, n_draws=n_draws, seed=seed).draws


def plot_scaling_bands(
    fits: Mapping[str, object],
    data,
    family: str,
    benchmark: str,
    *,
    held_out: Sequence[str] | None = None,
    tokens: float | None = None,
    sizes: tuple[float, float] | None = None,
    level: float = 0.95,
    n_draws: int = 500,
    seed: int = 0,
    ax: Axes | None = None,
) -> Figure:
    """A family's observed scores against size with each configuration's predictive median and band, overlaid.

    Parameters
    ----------
    fits : dict
        Name to a fit (:func:`bayes_lsl.fit`) or a baseline
        (:func:`bayes_lsl.baseline.fit_baseline`), e.g.
        :meth:`ModelComparison.fits_for(family) <bayes_lsl.model_comparison.ModelComparison.fits_for>`.
    data : ScalingData
        The data with the family's scores, held-out models included.
    family, benchmark : str
    held_out : list of str, optional
        The family's models held out of the fits (open markers); default those of the
        family missing from the first fit's data (for a baseline: none).
    tokens : float, optional
        Pre-training tokens (trillions) along the curves; default the family's median.
        Points are drawn at their own sizes whatever their tokens.
    sizes : (float, float), optional
        Range of sizes (billions); default the family's range widened 2x each way.
    level, n_draws, seed
        The band's probability, the predictive draws and their seed.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Per configuration, the median of the score (line) and its central ``level`` band
        (shaded), with the family's scores seen by the fits (filled) and held out (open).
    """
    if not isinstance(fits, Mapping) or not fits:
        raise BayesLslError("fits: expected a non-empty dict of name -> fit")
    frame = data.to_frame()
    members = frame[frame["family"] == family]
    if members.empty:
        raise BayesLslError(f"family {family!r} is not in the data")
    if benchmark not in data.benchmarks:
        raise BayesLslError(f"benchmark {benchmark!r} is not in the data ({', '.join(data.benchmarks)})")
    if held_out is None:
        first = next(iter(fits.values()))
        seen = set(map(str, first["constant_data"]["model"].values)) if hasattr(first, "children") else None
        held_out = [] if seen is None else [m for m in members["model"] if m not in seen]
    tokens = float(members["tokens"].median()) if tokens is None else float(tokens)
    lo, hi = sizes or (members["size"].min() / 2, members["size"].max() * 2)
    grid = np.geomspace(lo, hi, 40)
    grid_models = _size_grid(family, grid, tokens, members["kind"] if "kind" in members else None)
    fig, ax = _single_axes(ax, figsize=(6, 4.5))
    for i, (name, fit) in enumerate(fits.items()):
        y = _band_draws(fit, grid_models, n_draws, seed)["y"].sel(benchmark=benchmark).transpose("sample", "model")
        q = np.quantile(y.values, [(1 - level) / 2, 0.5, (1 + level) / 2], axis=0)
        ax.fill_between(grid, q[0], q[2], color=f"C{i % 10}", alpha=0.18, lw=0)
        ax.plot(grid, q[1], color=f"C{i % 10}", lw=1.5, label=f"{name} (median, {level:.0%})")
    held = members["model"].isin(list(held_out))
    for mask, style, label in ((~held, dict(color="k"), "seen"), (held, dict(mfc="white", mec="k"), "held out")):
        rows = members[mask]
        if len(rows):
            ax.plot(rows["size"], rows[benchmark], "o", ms=6, label=label, **style)
    ax.set(xscale="log", xlabel="parameters (B)", ylabel=f"{benchmark} score", ylim=(0, 1),
           title=f"{family}: {benchmark} at {tokens:g}T tokens")  # fmt: skip
    ax.legend(fontsize=7)
    return fig
