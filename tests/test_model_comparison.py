"""compare_models: every configuration on the same folds, paired differences, recalibrated rows, plots."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from bayes_lsl.errors import BayesLslError
from bayes_lsl.model_comparison import compare_models
from bayes_lsl.plots import plot_calibration, plot_scaling_bands
from bayes_lsl.recalibration import recalibrate
from bayes_lsl.simulate import random_design, random_parameters, simulate

# Two configurations of the baseline (seconds per fit), so that the machinery runs in the
# default test run: "smooth" is the baseline's own default, so its difference to the
# baseline must be exactly zero.
CONFIGS = {"squares": {"loss": "least_squares"}, "smooth": {"loss": "smooth_l1"}}


@pytest.fixture(scope="module")
def sim():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, _ = simulate(random_parameters(K=2, J=3, seed=8), random_design(24, 4, seed=8), seed=9)
    return data


@pytest.fixture(scope="module")
def comparison(sim):
    held = [m for i, m in enumerate(sim.models) if i % 4 == 3][:8]
    # Two folds and three benchmarks: each baseline fit takes about a second per benchmark.
    return compare_models(sim, CONFIGS, method="baseline", protocols=["largest-in-family", "family", "holdout"],
                          n_folds=2, holdout=held, recalibrate=True, n_boot=200, n_draws=200,
                          progress=False)  # fmt: skip


def test_every_configuration_is_scored_on_the_same_cells(comparison):
    table = comparison.table
    assert len(table) == 3 * 3 * 2  # protocols x (two configurations and the baseline) x (model, recalibrated)
    assert comparison.reference == "squares"
    assert set(table["intervals"]) == {"model", "recalibrated"}
    for protocol in ("largest-in-family", "family", "holdout"):
        cells = [comparison.results[(protocol, name)].predictions.sort_values(["model", "benchmark"])
                 for name in ("squares", "smooth", "baseline", "squares (recalibrated)")]  # fmt: skip
        for other in cells[1:]:
            np.testing.assert_array_equal(other["model"], cells[0]["model"])
            if "fold" in other:  # the same folds for every configuration
                np.testing.assert_array_equal(other["fold"], cells[0]["fold"])
    row = table.set_index(["protocol", "configuration"]).loc[("family", "smooth")]
    predictions = comparison.results[("family", "smooth")].predictions
    assert row["elpd"] == pytest.approx(predictions["log_density"].sum())
    assert row["mae"] == pytest.approx((predictions["observed"] - predictions["mean"]).abs().mean())
    assert row["elpd_se"] > 0 and row["coverage_lower"] <= row["coverage"] <= row["coverage_upper"]
    assert np.isnan(table["elpd_loo"]).all()


def test_paired_differences(comparison):
    diffs = comparison.differences.set_index(["protocol", "configuration", "against"])
    table = comparison.table.set_index(["protocol", "configuration"])
    # The baseline's default loss is "smooth": paired with it, every difference and interval is 0.
    same = diffs.loc[("largest-in-family", "smooth", "baseline")]
    for stat in ("mae", "crps", "interval_score", "log_density", "elpd"):
        assert same[[f"{stat}_difference", f"{stat}_difference_lower", f"{stat}_difference_upper"]].abs().max() \
            == pytest.approx(0.0, abs=1e-12)  # fmt: skip
    d = diffs.loc[("holdout", "smooth", "squares")]
    assert d["mae_difference"] == pytest.approx(table.loc[("holdout", "smooth"), "mae"]
                                                - table.loc[("holdout", "squares"), "mae"])  # fmt: skip
    assert d["elpd_difference"] == pytest.approx(table.loc[("holdout", "smooth"), "elpd"]
                                                 - table.loc[("holdout", "squares"), "elpd"])  # fmt: skip
    assert d["mae_difference_lower"] <= d["mae_difference"] <= d["mae_difference_upper"]
    assert ("family", "squares", "squares") not in diffs.index  # the reference is not paired with itself


def test_recalibrated_rows_change_only_the_intervals(comparison):
    table = comparison.table.set_index(["protocol", "configuration"])
    for protocol in ("largest-in-family", "holdout"):
        model, recal = table.loc[(protocol, "squares")], table.loc[(protocol, "squares (recalibrated)")]
        for stat in ("mae", "crps", "elpd"):
            assert recal[stat] == pytest.approx(model[stat])
        assert recal["width"] != pytest.approx(model["width"])
    # Cross-fitted: each fold's factors come from the other folds' cells only.
    plain = comparison.results[("largest-in-family", "squares")].predictions
    recal = comparison.results[("largest-in-family", "squares (recalibrated)")].predictions
    fold = plain["fold"].iloc[0]
    expected = recalibrate(plain[plain["fold"] != fold], n_boot=1).apply(plain[plain["fold"] == fold])
    got = recal[recal["fold"] == fold]
    np.testing.assert_allclose(got["upper_80"].to_numpy(), expected["upper_80"].to_numpy())
    cal = comparison.calibration
    assert len(cal) == len(comparison.table) * 4
    assert cal.loc[cal["configuration"].str.endswith("(recalibrated)"), "recalibrated"].all()


def test_compare_models_refuses_bad_arguments(sim):
    with pytest.raises(BayesLslError, match="protocols: unknown"):
        compare_models(sim, CONFIGS, protocols=["loo"])
    with pytest.raises(BayesLslError, match="non-empty dict"):
        compare_models(sim, {})
    with pytest.raises(BayesLslError, match="'baseline' is the baseline"):
        compare_models(sim, {"baseline": {}})
    with pytest.raises(BayesLslError, match="protocols: expected a list"):
        compare_models(sim, CONFIGS, protocols="family")


def test_plots(comparison, sim):
    fig = comparison.plot(protocol="family")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["squares", "squares (recalibrated)", "smooth", "smooth (recalibrated)", "baseline",
                      "baseline (recalibrated)"]  # fmt: skip
    plt.close(fig)
    results = {n: comparison.results[("family", n)] for n in ("squares", "smooth")}
    fig = plot_calibration(results, n_boot=50)
    assert fig.axes[0].get_xlabel() == "nominal coverage"
    plt.close(fig)
    family = comparison.results[("largest-in-family", "squares")].predictions["family"].iloc[0]
    fig = comparison.plot_scaling(family, sim.benchmarks[0], n_draws=50)
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels[:3] == ["squares (median, 95%)", "smooth (median, 95%)", "baseline (median, 95%)"]
    assert labels[3:] == ["seen", "held out"]
    assert ax.get_xscale() == "log"
    plt.close(fig)
    with pytest.raises(BayesLslError, match="not in the data"):
        plot_scaling_bands({"a": object()}, sim, "nope", sim.benchmarks[0])


def test_scaling_bands_of_a_fit_mark_the_models_it_did_not_see(map_fit, small_sim):
    data, _ = small_sim
    frame = data.to_frame()
    family = frame["family"].iloc[0]
    # The map fit saw every model: nothing held out unless said.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = plot_scaling_bands({"map": map_fit}, data, family, data.benchmarks[1], n_draws=50)
    assert fig.axes[0].get_legend_handles_labels()[1] == ["map (median, 95%)", "seen"]
    plt.close(fig)
    assert isinstance(frame, pd.DataFrame)
