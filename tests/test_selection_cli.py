"""Choosing K, the figures, and the command line end to end."""

from __future__ import annotations

import warnings

import controls
import matplotlib
import numpy as np
import pandas as pd
import pytest

import bayes_lsl as bl
from bayes_lsl import plots
from bayes_lsl.cli import main
from bayes_lsl.simulate import random_design, random_parameters, simulate

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def k_selection(small_sim):
    return bl.select_k(small_sim[0], Ks=[1, 2], progress=False, n_starts=2)


@pytest.fixture(scope="module")
def k_table(k_selection):
    return k_selection.table


def test_select_k_table(k_table, k_selection, small_sim):
    assert list(k_table.index) == [1, 2]
    assert {"marginal_loglik", "n_params", "aic", "bic", "integration_error"} <= set(k_table.columns)
    np.testing.assert_allclose(k_table["aic"], -2 * k_table["marginal_loglik"] + 2 * k_table["n_params"])
    n_families = len(small_sim[0].families)
    assert k_table.attrs["bic_n"] == "families" and (k_table["bic_sample_size"] == n_families).all()
    bic = -2 * k_table["marginal_loglik"] + k_table["n_params"] * np.log(n_families)
    np.testing.assert_allclose(k_table["bic"], bic)
    # The reported log-likelihood is the sweep's importance sampler's, with its error.
    assert ((k_table["marginal_loglik_mc_se"] > 0) & (k_table["marginal_loglik_mc_se"] < 0.1)).all()
    assert k_selection.fits[2].attrs["check"] == "4000 draws" and k_selection.bic_n == "families"
    # The data were simulated with K=2: one skill fits far worse than two.
    assert k_table["marginal_loglik"][2] > k_table["marginal_loglik"][1] + 20
    assert k_table["aic"].idxmin() == 2 and k_table["bic"].idxmin() == 2
    assert k_selection.best == {"aic": 2, "bic": 2}
    # The fits are the object's, not a payload of the table that pandas copies with every selection.
    assert "fits" not in k_table.attrs and "best={'aic': 2, 'bic': 2}" in repr(k_selection)
    with pytest.raises(ValueError, match="method='mle'"):
        bl.select_k(bl.load_example(), Ks=[1], method="nuts")


@pytest.fixture(scope="module")
def one_skill_table():
    """select_k over K = 1, 2 on data simulated with one skill (30 families x 4 models)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, _ = simulate(random_parameters(K=1, J=6, seed=21), random_design(30, 4, seed=21), missing=0.15, seed=22)
    return bl.select_k(data, Ks=[1, 2], progress=False, n_starts=2).table


@pytest.mark.slow  # select_k over two K: in CI's slow step (.ci/run)
def test_select_k_does_not_over_select(one_skill_table):
    # K = 2 has 8 more parameters (29 against 21). With one true skill, twice the
    # log-likelihood ratio is at most about chi-square(8) (less: the second skill's
    # loadings are not identified at zero), so AIC (penalty 16) over-selects with
    # probability <= P(chi2_8 > 16) = 4% per data set, BIC (8 log n, n = 30 families: 27)
    # practically never.
    controls.assert_not_overselected(one_skill_table, true_K=1)


@pytest.mark.slow  # the negative control of the test above, on its table
def test_likelihood_alone_over_selects(one_skill_table):
    # Negative control: without the penalty the larger model always fits at least as well.
    assert one_skill_table["marginal_loglik"][2] >= one_skill_table["marginal_loglik"][1]
    with pytest.raises(AssertionError, match="over-selects"):
        controls.assert_not_overselected(controls.likelihood_alone(one_skill_table), true_K=1)


def test_figures(k_selection, mle_fit):
    for fig in (plots.plot_information_criteria(k_selection), plots.plot_loadings(mle_fit),
                plots.plot_skill_correlation(mle_fit)):  # fmt: skip
        assert fig.axes and fig.axes[0].has_data()
    n_families = len(k_selection.fits[1]["constant_data"]["family"])
    for table in (k_selection, k_selection.table):  # the object select_k returns, or its table
        legend = [t.get_text() for t in plots.plot_information_criteria(table).axes[0].get_legend().get_texts()]
        assert f"BIC (n = {n_families} families)" in legend


def test_cli_fit_on_example(example_fit):
    """``bayes-lsl fit --data example --K 2 --method mle`` (run once for the test run, conftest)."""
    out, printed = example_fit
    assert out.is_file()
    assert "marginal log-likelihood" in printed and str(out) in printed
    fit = bl.load_fit(out, data=bl.load_example())
    truth = bl.example_truth()
    # The shipped example is recovered: intercepts within 0.4 of the truth on the logit scale.
    assert np.abs(fit.posterior["b"].values[0, 0] - truth["b"]).max() < 0.4


def test_cli_bad_inputs(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    frame = bl.load_example().to_frame()
    frame.loc[3, "mmlu"] = 57.0
    frame.to_csv(bad, index=False)
    out = tmp_path / "never.nc"
    assert main(["fit", "--data", str(bad), "--K", "2", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayes-lsl: error:") and "mmlu" in err and "row 3" in err and "percentages" in err
    assert not out.exists()
    assert main(["data", "--data", str(tmp_path / "missing.csv")]) == 2
    assert "not 'example', 'leaderboard'" in capsys.readouterr().err
    frame.drop(columns="tokens").to_csv(bad, index=False)
    assert main(["data", "--data", str(bad)]) == 2
    assert "missing required column(s) ['tokens']" in capsys.readouterr().err


def test_cli_data_summary(data_dir, capsys):
    assert main(["data", "--data", "leaderboard", "--variant", "raw", "--data-dir", str(data_dir), "--quiet"]) == 0
    assert "286 models, 170 families, 12 benchmarks" in capsys.readouterr().out


def test_example_frame_is_simulated_truth():
    truth = bl.example_truth()
    data = bl.load_example()
    assert truth["K"] == 2 and list(truth["benchmarks"]) == list(data.benchmarks)
    assert isinstance(data.to_frame(), pd.DataFrame) and data.n_models == 160


def test_bic_n_is_an_explicit_choice(small_sim):
    """BIC's n counts families, models or observed scores, as asked; anything else is refused
    before any fitting."""
    from bayes_lsl.selection import bic_sample_size

    data = small_sim[0]
    assert bic_sample_size(data) == bic_sample_size(data, "families") == len(data.families)
    assert bic_sample_size(data, "models") == data.n_models
    assert bic_sample_size(data, "scores") == int(np.isfinite(data.scores).sum())
    with pytest.raises(ValueError, match="bic_n must be one of"):
        bl.select_k(data, Ks=[1], progress=False, bic_n="cells")
    with pytest.raises(ValueError, match="bic_n must be one of"):
        bl.fit(data, K=1, method="mle", progress=False, bic_n="rows")
