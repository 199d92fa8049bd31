"""Prior predictive checks: PyMC's standard calls on the model, bl.prior_predictive and its summary."""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest

import bayes_lsl as bl
from bayes_lsl.prior_predictive import model_trace, prior_predictive, summarize_prior_predictive


@pytest.mark.parametrize("centered", [False, True])
# K = 4 in the default run; the smaller K (each a compilation, ~10 s) in the slow step.
@pytest.mark.parametrize("K", [*(pytest.param(k, marks=pytest.mark.slow) for k in (1, 2, 3)), 4])
def test_pymc_prior_predictive_on_build_model(paper, K, centered):
    model = bl.build_model(paper, K=K, centered=centered)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tree = pm.sample_prior_predictive(draws=20, model=model, random_seed=K,
                                          compile_kwargs={"mode": "FAST_COMPILE"})  # fmt: skip
    y = tree["prior_predictive"]["y"].values
    assert y.shape == (1, 20, int(paper.observed.sum()))
    assert np.all((y >= 0) & (y <= 1))  # a Beta draw with a small precision can round to 0 or 1
    corr = tree["prior"]["corr"].values
    np.testing.assert_allclose(np.diagonal(corr, axis1=-2, axis2=-1), 1.0, atol=1e-12)


def test_prior_predictive_tree_and_shares(paper):
    tree = prior_predictive(paper, 4, draws=200, seed=3)
    assert set(tree.children) == {"prior", "prior_predictive", "observed_data", "constant_data"}
    y = tree["prior_predictive"]["y"]
    assert y.dims == ("chain", "draw", "model", "benchmark") and y.shape == (1, 200, 286, 12)
    assert tree["prior"]["mu"].dims == y.dims
    np.testing.assert_array_equal(np.isnan(tree["observed_data"]["y"].values), ~paper.observed)
    # The mean score never goes below the floor.
    assert float((tree["prior"]["mu"] - tree["constant_data"]["floor"]).min()) >= 0
    again = prior_predictive(paper, 4, draws=200, seed=3)
    np.testing.assert_array_equal(again["prior_predictive"]["y"].values, y.values)
    s = summarize_prior_predictive(tree)
    assert 0 <= s.share_mean_at_bounds <= 1 and 0 <= s.share_scores_extreme <= 1
    assert list(s.by_benchmark.index) == list(paper.benchmarks)
    assert "within 0.01" in str(s)
    # The figure: one panel per benchmark, titled with its share at the bounds.
    import matplotlib.pyplot as plt

    from bayes_lsl.plots import plot_prior_predictive

    fig = plot_prior_predictive(tree)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split(" ")[0] for ax in shown] == list(paper.benchmarks)
    share = s.by_benchmark.loc["math", "share_mean_at_bounds"]
    assert shown[0].get_title() == f"math (mean at bounds {share:.0%})"
    plt.close(fig)


def test_default_priors_are_weakly_informative_on_the_score_scale(paper):
    # The criterion of issue 13: under 10% of prior mean scores within 0.01 of a floor
    # or the ceiling at K=4; the former priors put 56% there. 400 draws x 2,304 cells:
    # the Monte Carlo error of the share is well under 1 point.
    s = summarize_prior_predictive(prior_predictive(paper, 4, draws=400, seed=0))
    assert s.share_mean_at_bounds < 0.10, str(s)
    old = {"beta_sigma": 2.0, "lam_sigma": 2.0, "b_sigma": 3.0}
    s_old = summarize_prior_predictive(prior_predictive(paper, 4, draws=400, seed=0, priors=old))
    assert s_old.share_mean_at_bounds > 0.4, str(s_old)  # the check can fail


def test_model_trace_gives_the_fits_log_likelihood(nuts_fit, small_sim):
    # The fit's draws as the model's free variables: PyMC then recomputes the fit's own
    # pointwise log-likelihood, and the posterior predictive samples only y.
    data = small_sim[0]
    info = bl.FitInfo.from_tree(nuts_fit)
    model = bl.build_model(data, K=info.K, priors=info.priors)
    trace = model_trace(nuts_fit, model)
    ll = pm.compute_log_likelihood(trace, model=model, extend_inferencedata=False, progressbar=False)
    ll = ll["y"] if "y" in ll else ll["log_likelihood"]["y"]
    np.testing.assert_allclose(ll.values, nuts_fit["log_likelihood"]["y"].values, rtol=1e-7, atol=1e-9)
    pp = pm.sample_posterior_predictive(trace, model=model, random_seed=1, progressbar=False,
                                        compile_kwargs={"mode": "FAST_COMPILE"})  # fmt: skip
    assert pp["posterior_predictive"]["y"].shape == nuts_fit["log_likelihood"]["y"].shape
    with pytest.raises(ValueError, match="centered=False or True"):
        model_trace(nuts_fit, bl.build_model(data, K=info.K, centered="partial"))



def test_log_prior_and_sensitivity(nuts_fit, small_sim):
    # The log_prior group against scipy's densities of the same priors, draw by draw.
    import scipy.stats

    from bayes_lsl.prior_predictive import log_prior, prior_sensitivity

    data = small_sim[0]
    info = bl.FitInfo.from_tree(nuts_fit)
    pr, K = info.priors, info.K
    lp = log_prior(nuts_fit, data)
    post = nuts_fit["posterior"]
    beta = post["beta"].values
    np.testing.assert_allclose(lp["beta"].values, scipy.stats.norm(0, pr["beta_sigma"]).logpdf(beta).sum((-2, -1)))
    lam = post["lam"].values
    anchors = np.diagonal(lam[..., :K], axis1=-2, axis2=-1)
    expected = (scipy.stats.halfnorm(scale=pr["lam_sigma"]).logpdf(anchors).sum(-1)
                + scipy.stats.norm(0, pr["lam_sigma"]).logpdf(lam[..., K:]).sum((-2, -1)))  # fmt: skip
    np.testing.assert_allclose(lp["lam"].values, expected)
    phi = scipy.stats.lognorm(s=pr["log_phi_sigma"], scale=np.exp(pr["log_phi_mu"])).logpdf(post["phi"].values)
    np.testing.assert_allclose(lp["phi"].values, phi.sum(-1))
    table = prior_sensitivity(nuts_fit, data)
    assert {"prior", "likelihood"} <= set(table.columns)
    assert table.loc["b[math]", ["prior", "likelihood"]].notna().all()
    # Structural constants have no spread to scale: left out rather than reported as NaN.
    assert "corr[skill_1, skill_1]" not in table.index and "corr[skill_2, skill_2]" not in table.index
    assert "corr[skill_2, skill_1]" in table.index and "corr[skill_1, skill_2]" not in table.index
    assert table[["prior", "likelihood"]].notna().all(axis=None)
