"""Figures: each function draws what it says from real fits, into the axes given or a new figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import inspect  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bayes_lsl import plots  # noqa: E402
from bayes_lsl.errors import BayesLslError  # noqa: E402
from bayes_lsl.fitting.result import POSTERIOR_VARS  # noqa: E402


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_scaling_curves_show_the_family_data_over_bands(mle_fit, small_sim):
    data, _ = small_sim
    family = data.families[0]
    fig = plots.plot_scaling_curves(mle_fit, family, benchmarks=list(data.benchmarks[:2]), n_draws=200)
    axes = _visible(fig)
    assert len(axes) == 2
    members = int((data.model_family == family).sum())
    points = [line for line in axes[0].lines if line.get_marker() == "o"]
    assert len(points[0].get_xdata()) == members
    assert len(axes[0].collections) == 2  # score and mean bands
    assert fig.get_suptitle().startswith(f"{family}: scaling with size")

    given, panels = plt.subplots(1, 2)
    fig = plots.plot_scaling_curves(mle_fit, family, benchmarks=list(data.benchmarks[:2]), n_draws=50, axes=panels)
    assert fig is given and [ax.get_title() for ax in panels] == list(data.benchmarks[:2])
    assert fig.get_suptitle() == ""  # the caller's figure: no figure-wide title
    plt.close("all")


def test_forest_has_one_row_per_entry_and_fit(mle_fit, nuts_fit):
    fig = plots.plot_forest({"mle": mle_fit, "nuts": nuts_fit}, names=("beta",))
    ax = fig.axes[0]
    n_entries = int(np.prod(mle_fit.posterior["beta"].shape[2:]))
    assert len(ax.get_yticks()) == n_entries
    assert len(ax.collections) == 2  # one set of intervals per fit


def test_holdout_plot_draws_every_prediction():
    df = pd.DataFrame({"benchmark": ["a", "a", "b"], "observed": [0.5, 0.2, 0.9], "mean": [0.4, 0.2, 0.6],
                       "lower": [0.3, 0.1, 0.5], "upper": [0.6, 0.3, 0.7]})  # fmt: skip
    fig = plots.plot_holdout(df)
    markers = [line for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert sum(len(m.get_xdata()) for m in markers) == 3


def _overlaps(fig, artist) -> list[str]:
    """The visible texts of ``fig`` (tick labels, labels, annotations) whose boxes overlap ``artist``'s."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = artist.get_window_extent(renderer)
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t is not artist and t.get_visible() and t.get_text()]
    return [t.get_text() for t in texts if t.get_window_extent(renderer).overlaps(box)]


@pytest.mark.parametrize("K", [2, 3])
def test_skill_correlation_title_clears_the_colorbar(mle_fit, K):
    fit = mle_fit
    if K != mle_fit.attrs["K"]:  # the layout depends on K only: a K-skill identity matrix will do
        fit = mle_fit.copy()
        skills = [f"skill_{k + 1}" for k in range(K)]
        corr = xr.DataArray(np.eye(K)[None, None], dims=("chain", "draw", "skill", "skill_other"),
                            coords={"skill": skills, "skill_other": skills})  # fmt: skip
        # The other variables only need to be there, for the fit contract.
        others = {name: xr.DataArray(np.zeros((1, 1))) for name in POSTERIOR_VARS if name != "corr"}
        fit["posterior"] = xr.DataTree(xr.Dataset({"corr": corr} | others))
        fit.attrs |= {"K": K, "benchmarks": [f"bench{k}" for k in range(K + 2)]}
    fig = plots.plot_skill_correlation(fit)
    titles = [t for t in fig.findobj(matplotlib.text.Text) if "Skill correlation" in t.get_text()]
    assert len(titles) == 1
    assert _overlaps(fig, titles[0]) == []
    anchors = list(fit.attrs["benchmarks"])[:K]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [f"skill_{k + 1}\n({anchors[k]})" for k in range(K)]
    plt.close(fig)


def test_loadings_mark_the_fixed_anchor_zeros(mle_fit):
    fig = plots.plot_loadings(mle_fit)
    ax = fig.axes[0]
    lam = mle_fit.posterior["lam"].isel(chain=0, draw=0)
    K = lam.sizes["skill"]
    labels = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    for (i, j), value in np.ndenumerate(lam.values):
        if j < K and i != j:  # off the anchor block's diagonal: 0 by construction, not an estimate
            assert value == 0 and "fixed" in labels[i, j]
        else:
            assert labels[i, j] == f"{value:.2f}"
    # Fixed cells are masked out of the colour scale (drawn grey) and hatched.
    shown = ax.images[0].get_array()
    i, j = np.indices(lam.shape)
    assert np.array_equal(np.ma.getmaskarray(shown), (j < K) & (i != j))
    assert sum(bool(p.get_hatch()) for p in ax.patches) == K * (K - 1)
    plt.close(fig)


def test_every_figure_is_plot_something_returning_a_figure():
    names = [name for name in dir(plots) if not name.startswith("_") and callable(getattr(plots, name))
             and getattr(plots, name).__module__ == plots.__name__]  # fmt: skip
    assert names and all(name.startswith("plot_") for name in names), names
    assert sorted(plots.__all__) == sorted(names)
    for name in names:
        signature = inspect.signature(getattr(plots, name))
        assert signature.return_annotation in ("Figure", Figure), name
        where = {"ax", "axes"} & set(signature.parameters)
        assert len(where) == 1 and signature.parameters[where.pop()].default is None, name


def test_figures_compose_into_given_axes(map_fit):
    fig, (left, right) = plt.subplots(1, 2)
    assert plots.plot_loadings(map_fit, ax=left) is fig
    assert plots.plot_skill_correlation(map_fit, ax=right) is fig
    assert left.get_title().startswith("Loadings (map, K=2)")
    assert right.get_title() == "Skill correlation of family effects"
    assert len(fig.axes) == 4  # the two axes and their colorbars, nothing else
    plt.close(fig)

    fig, axes = plt.subplots(2, 2)
    assert plots.plot_forest({"map": map_fit}, names=("beta", "lam", "b", "phi"), axes=axes) is fig
    assert [ax.get_title() for ax in axes.flat] == [f"{n} (95% intervals)" for n in ("beta", "lam", "b", "phi")]
    assert fig.get_suptitle() == ""  # a figure given is the caller's: no figure-wide title
    plt.close(fig)


def test_axes_that_do_not_fit_are_named(map_fit, small_sim):
    fig, axes = plt.subplots(1, 3)
    family, benchmarks = small_sim[0].families[0], list(small_sim[0].benchmarks[:2])
    with pytest.raises(BayesLslError, match=r"axes: .* one panel per benchmark and needs 2 .*got 3"):
        plots.plot_scaling_curves(map_fit, family, benchmarks=benchmarks, axes=axes)
    with pytest.raises(BayesLslError, match=r"axes: .* one panel per parameter name and needs 2 .*got 3"):
        plots.plot_forest({"map": map_fit}, names=("beta", "lam"), axes=axes)
    with pytest.raises(BayesLslError, match=r"axes: .* needs 2 matplotlib Axes; got 1"):
        plots.plot_allocation(pd.DataFrame(), axes=axes[0])
    with pytest.raises(BayesLslError, match="ax: expected one matplotlib Axes, got ndarray"):
        plots.plot_loadings(map_fit, ax=axes)
    other = plt.figure().add_subplot()
    with pytest.raises(BayesLslError, match="one figure"):
        plots.plot_forest({"map": map_fit}, names=("beta", "lam"), axes=[axes[0], other])
    plt.close("all")


def test_scaling_curves_name_an_unknown_benchmark(map_fit, small_sim):
    with pytest.raises(BayesLslError, match=r"benchmarks \['nope'\] are not in the fit"):
        plots.plot_scaling_curves(map_fit, small_sim[0].families[0], benchmarks=["nope"])
