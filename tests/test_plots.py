"""Figures: each function draws what it says from real fits."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from bayes_lsl import plots  # noqa: E402


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_scaling_curves_show_the_family_data_over_bands(mle_fit, small_sim):
    data, _ = small_sim
    family = data.families[0]
    fig = plots.scaling_curves(mle_fit, family, benchmarks=list(data.benchmarks[:2]), n_draws=200)
    axes = _visible(fig)
    assert len(axes) == 2
    members = int((data.model_family == family).sum())
    points = [line for line in axes[0].lines if line.get_marker() == "o"]
    assert len(points[0].get_xdata()) == members
    assert len(axes[0].collections) == 2  # score and mean bands


def test_forest_has_one_row_per_entry_and_fit(mle_fit, nuts_fit):
    fig = plots.forest({"mle": mle_fit, "nuts": nuts_fit}, names=("beta",))
    ax = fig.axes[0]
    n_entries = int(np.prod(mle_fit.posterior["beta"].shape[2:]))
    assert len(ax.get_yticks()) == n_entries
    assert len(ax.collections) == 2  # one set of intervals per fit


def test_holdout_plot_draws_every_prediction():
    df = pd.DataFrame({"benchmark": ["a", "a", "b"], "observed": [0.5, 0.2, 0.9], "mean": [0.4, 0.2, 0.6],
                       "lower": [0.3, 0.1, 0.5], "upper": [0.6, 0.3, 0.7]})  # fmt: skip
    fig = plots.holdout(df)
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
        fit["posterior"] = xr.DataTree(xr.Dataset({"corr": corr}))
        fit.attrs["anchors"] = [f"bench{k}" for k in range(K)]
    fig = plots.skill_correlation(fit)
    titles = [t for t in fig.findobj(matplotlib.text.Text) if "Skill correlation" in t.get_text()]
    assert len(titles) == 1
    assert _overlaps(fig, titles[0]) == []
    plt.close(fig)


def test_loadings_mark_the_fixed_anchor_zeros(mle_fit):
    fig = plots.loadings(mle_fit)
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
    assert np.array_equal(np.ma.getmaskarray(shown), plots.fixed_loadings(mle_fit).values)
    assert sum(bool(p.get_hatch()) for p in ax.patches) == K * (K - 1)
    plt.close(fig)
