"""Posterior predictive checks and LOO-PIT: replicates from the fit's own likelihood, calibrated
on data from the model, and a misspecified model flagged."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import bayes_lsl as bl  # noqa: E402
from bayes_lsl import plots  # noqa: E402
from bayes_lsl.errors import BayesLslError  # noqa: E402
from bayes_lsl.posterior_predictive import model_kind, size_bins  # noqa: E402


@pytest.fixture(scope="module")
def mle_check(mle_fit):
    return bl.posterior_predictive_check(mle_fit, n_draws=300, seed=0)


def test_replicates_score_the_observed_cells_with_the_fits_own_likelihood(nuts_fit):
    rep = bl.posterior_predictive(nuts_fit, n_draws=None, seed=0)
    stored = nuts_fit["log_likelihood"]["y"]
    assert rep.attrs["chains"] == stored.sizes["chain"]
    # Every posterior draw in chain order: the same log-likelihood as the sampler's, cell by cell.
    np.testing.assert_allclose(rep["log_lik"].values, stored.values.reshape(-1, stored.shape[-1]), atol=1e-8)
    y_rep = rep["y_rep"].values
    assert y_rep.shape == (stored.shape[0] * stored.shape[1], stored.shape[-1])
    eps = bl.FitInfo.from_tree(nuts_fit).eps
    assert ((y_rep >= eps) & (y_rep <= 1 - eps)).all()  # clipped as the data were
    assert set(np.unique(rep["kind"].values)) == {"base"}  # the simulated names say nothing of tuning


def test_model_kind_rule():
    models = ["gemma-2-9b-it", "qwen2-7b-instruct", "yi-1.5-chat", "llama-3-8b", "bloom-560m", "zephyr-7b-dpo",
              "italian-7b", "mistral-7b-sft-beta", "edit-13b"]  # fmt: skip
    kinds = model_kind(models)
    assert kinds.tolist() == ["tuned", "tuned", "tuned", "base", "base", "tuned", "base", "tuned", "base"]
    # The family's name counts too.
    assert model_kind(["foo-7b"], ["foo-chat"]).tolist() == ["tuned"]


def test_size_bins_are_terciles_of_log_size():
    size = np.exp(np.linspace(0, 3, 99))
    labels = size_bins(size)
    assert pd.Series(labels).value_counts().tolist() == [33, 33, 33]
    assert labels[0].startswith("1: ") and labels[-1].startswith("3: ")


def test_ppc_on_data_from_the_model_is_calibrated(mle_check):
    table = mle_check.table.set_index(["grouping", "group"])
    overall = table.loc[("all", "all")]
    # 631 cells: the binomial sd of a 95% coverage is 0.009; in-sample checks lean conservative.
    assert 0.93 <= overall["coverage_95"] <= 0.985
    assert 0.85 <= overall["coverage_90"] <= 0.95
    assert 0.44 <= overall["coverage_50"] <= 0.62
    # No benchmark or size bin whose mean or spread the model cannot reproduce.
    assert table["p_mean"].between(0.01, 0.99).all() and table["p_sd"].between(0.01, 0.99).all()
    assert set(table.index.get_level_values("grouping")) == {"all", "benchmark", "size_bin", "kind"}
    assert (mle_check.dependence["p_value"] > 0.05).all()
    assert mle_check.cells["pit"].between(0, 1).all()


def test_loo_pit_is_uniform_on_data_from_the_model(nuts_fit):
    pit = bl.loo_pit(nuts_fit)
    assert len(pit) == nuts_fit["log_likelihood"]["y"].shape[-1]
    assert pit["loo_pit"].between(0, 1).all()
    quarters = np.histogram(pit["loo_pit"], bins=[0, 0.25, 0.5, 0.75, 1])[0] / len(pit)
    # 631 values: a quarter's share has sd 0.017 if independent.
    assert np.all(np.abs(quarters - 0.25) < 0.06), quarters
    assert ((pit["loo_pit"] < 0.025) | (pit["loo_pit"] > 0.975)).mean() < 0.09


def test_leave_model_out_pit_uses_one_weight_per_model(nuts_fit):
    rep = bl.posterior_predictive(nuts_fit, n_draws=None, seed=0)
    cell, model = (bl.loo_pit(nuts_fit, group=g, replicates=rep) for g in ("cell", "model"))
    assert (model.groupby("model")["pareto_k"].nunique() == 1).all()
    # Leaving a model's every score out is harder for PSIS than leaving one out.
    assert model["pareto_k"].mean() > cell["pareto_k"].mean()
    assert model["loo_pit"].between(0, 1).all()
    with pytest.raises(BayesLslError, match="group"):
        bl.loo_pit(nuts_fit, group="family", replicates=rep)


def test_loo_pit_refuses_a_point_fit(map_fit):
    with pytest.raises(BayesLslError, match="point"):
        bl.loo_pit(map_fit)


def test_check_options_are_validated(mle_fit):
    with pytest.raises(BayesLslError, match="by must be among"):
        bl.posterior_predictive_check(mle_fit, by=("colour",), n_draws=10)
    with pytest.raises(BayesLslError, match="levels"):
        bl.posterior_predictive_check(mle_fit, levels=(95,), n_draws=10)
    with pytest.raises(BayesLslError, match="kinds lacks"):
        bl.posterior_predictive(mle_fit, n_draws=10, kinds={"nobody": "base"})


def test_ppc_and_loo_pit_plots(mle_check, nuts_fit):
    benchmarks = mle_check.cells["benchmark"].unique()
    for kind in ("density", "intervals"):
        fig = mle_check.plot(kind=kind, n_replicates=5)
        assert len([ax for ax in fig.axes if ax.get_visible()]) == len(benchmarks)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["50%", "90%", "95%"]
    given, panels = plt.subplots(2, 3)
    pit = bl.loo_pit(nuts_fit)
    assert plots.plot_loo_pit(pit, axes=panels, n_simulations=100) is given
    assert panels[0, 0].get_title().startswith(str(pit["benchmark"].iloc[0]))
    with pytest.raises(BayesLslError, match="kind"):
        plots.plot_ppc(mle_check, kind="violin")
    plt.close("all")


@pytest.mark.slow
def test_ppc_flags_too_few_skills():
    """Data from K = 3 fitted with K = 1: each score alone is still covered (a smaller
    precision absorbs the misfit), but the residuals' correlation across benchmarks is not
    reproduced; at the true K it is."""
    from bayes_lsl.simulate import random_design, random_parameters, simulate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, _ = simulate(random_parameters(K=3, J=6, seed=3), random_design(30, 4, seed=3), missing=0.1, seed=3)
    p = {}
    for K in (1, 3):
        fit = bl.fit(data, K=K, method="mle", seed=0, progress=False, check_draws=0)
        check = bl.posterior_predictive_check(fit, n_draws=300, seed=0, by=())
        p[K] = check.dependence.set_index("statistic")["p_value"]
    assert p[1]["benchmark_corr"] < 0.01  # measured 0.00 (observed 0.21 against 0.08 replicated)
    assert p[3]["benchmark_corr"] > 0.05  # measured 0.20
