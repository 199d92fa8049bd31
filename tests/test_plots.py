"""Figures: each function draws what it says from real fits."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

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
