"""Model options that change the design matrix: covariate sets and model kind (by_kind)."""

from __future__ import annotations

import warnings

import controls
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes_lsl as bl
from bayes_lsl.cli import main
from bayes_lsl.data import COVARIATES
from bayes_lsl.design import COVARIATE_SETS, TERMS, covariate_terms, design_matrix
from bayes_lsl.errors import BayesLslError, DataError
from bayes_lsl.fitting.result import FORMAT_VERSION, FitInfo
from bayes_lsl.model import n_params
from bayes_lsl.simulate import random_design, random_parameters, simulate

K, J = 2, 6


def _simulated(covariates: str = "paper", by_kind: bool = False, seed: int = 3):
    """About 160 models (40 families of 4, like the example), K = 2, J = 6, 10% missing."""
    terms = covariate_terms(covariates, by_kind)
    params = random_parameters(K=K, J=J, seed=seed, p=len(terms))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scores below a floor are the model's own noise
        return simulate(params, random_design(40, 4, seed=seed, kinds=by_kind), missing=0.1, seed=seed + 1,
                        covariates=covariates, by_kind=by_kind)  # fmt: skip


# ------------------------------------------------------------- the default design
def test_paper_design_is_the_old_one(small_sim, map_fit):
    data, _ = small_sim
    assert data.terms == COVARIATES == COVARIATE_SETS["paper"]
    assert data.with_covariates("paper") is data and data.with_covariates() is data
    # Bit for bit the formula the package always used.
    log_n, log_d = np.log(data.size), np.log(data.tokens)
    raw = np.column_stack([log_n, log_d, log_n * log_d])
    np.testing.assert_array_equal(data.x, (raw - raw.mean(axis=0)) / raw.std(axis=0))
    # A fit asking for the paper's covariates is the shared default fit, number for number.
    again = bl.fit(data, K=K, method="map", seed=0, progress=False, covariates="paper")
    xr.testing.assert_equal(again.posterior.to_dataset(), map_fit.posterior.to_dataset())  # not created_at
    assert FitInfo.from_tree(again).covariates == FitInfo.from_tree(map_fit).covariates == data.terms


def test_default_marginal_loglik_unchanged(mle_fit, small_sim):
    """The marginal likelihood of the default design at the shared MLE: the same model as before."""
    from bayes_lsl.fitting.marginal import MarginalLikelihood, family_modes

    data, _ = small_sim
    parts = MarginalLikelihood(bl.build_model(data, K=K, covariates="paper"), data,
                               mle_fit.attrs["quadrature_nodes_per_dim"])  # fmt: skip
    theta = mle_fit.mle["theta_hat"].values
    modes, _ = family_modes(parts, theta)
    # (The modes are found again, to their tolerance: a changed model would be off by far more.)
    assert np.isclose(parts.value_and_grad(theta, modes)[0], mle_fit.attrs["marginal_loglik_objective"], atol=1e-3)


def test_older_files_are_the_paper_design(map_fit):
    old = map_fit.copy()
    old.attrs = {k: v for k, v in map_fit.attrs.items() if k != "covariates"} | {"format_version": 2}
    assert FitInfo.from_tree(old).covariates == COVARIATE_SETS["paper"]


# ------------------------------------------------------------------ vocabulary
def test_terms():
    assert covariate_terms("no-interaction") == ("log_size", "log_tokens")
    assert covariate_terms("compute") == ("log_compute",)
    assert covariate_terms("paper", by_kind=True) == (
        "log_size", "log_tokens", "log_size_x_log_tokens",
        "tuned", "tuned_x_log_size", "tuned_x_log_tokens", "tuned_x_log_size_x_log_tokens",
    )  # fmt: skip
    assert covariate_terms(["log_compute", "tuned"], by_kind=True) == ("log_compute", "tuned", "tuned_x_log_compute")
    size, tokens = np.array([1.0, 10.0]), np.array([2.0, 0.5])
    x = design_matrix(("log_compute", "tuned", "tuned_x_log_size"), size, tokens, np.array(["base", "tuned"]))
    np.testing.assert_allclose(x, [[np.log(2.0), 0.0, 0.0], [np.log(5.0), 1.0, np.log(10.0)]])


@pytest.mark.parametrize(
    ("covariates", "message"),
    [
        ("quadratic", "not a covariate set"),
        (["log_size", "log_flops"], r"unknown term\(s\) \['log_flops'\]; the terms are"),
        (["log_size", "log_size"], "more than once"),
        ([], "empty"),
    ],
)
def test_unknown_covariates(small_sim, covariates, message):
    with pytest.raises(BayesLslError, match=message) as err:
        bl.fit(small_sim[0], K=K, method="map", covariates=covariates, progress=False)
    if "unknown" in message:
        assert all(t in str(err.value) for t in TERMS)


def test_by_kind_needs_kinds(small_sim):
    data, _ = small_sim
    with pytest.raises(DataError, match="'kind' column"):
        bl.fit(data, K=K, method="map", by_kind=True, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # below-floor scores
        all_base = bl.ScalingData.from_frame(data.to_frame().assign(kind="base"), anchors=data.anchors)
    with pytest.raises(DataError, match="covariate tuned is constant.*base and tuned"):
        all_base.with_covariates(by_kind=True)
    with pytest.raises(DataError, match=r"unknown for 1 model\(s\): \['b'\]"):
        design_matrix(["tuned"], [1.0, 2.0], [1.0, 1.0], np.array(["base", None], dtype=object), ["a", "b"])


def test_n_params_follow_the_design(small_sim):
    data, _ = small_sim
    model = bl.build_model(data, K=K, covariates="compute")
    assert model.initial_point()["beta"].shape == (1, K)
    assert list(model.coords["covariate"]) == ["log_compute"]
    assert n_params(K, J, p=1) == n_params(K, J) - 2 * K


def test_simulate_follows_the_design():
    data, truth = _simulated("no-interaction", by_kind=True)
    assert data.terms == covariate_terms("no-interaction", by_kind=True) and truth["beta"].shape == (5, K)
    assert set(data.kind) == {"base", "tuned"} and data.n_models == 160
    # Standardized over its models: mean 0, sd 1 per term.
    np.testing.assert_allclose(data.x.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.x.std(axis=0), 1)
    # The kind is constant within a family.
    assert (pd.Series(data.kind).groupby(data.model_family).nunique() == 1).all()


# ------------------------------------------------------------- recovery (MLE)
@pytest.fixture(scope="module")
def by_kind_mle():
    data, truth = _simulated("paper", by_kind=True)
    return data, truth, bl.fit(data, K=K, method="mle", seed=0, progress=False, by_kind=True)


def test_by_kind_recovers_its_parameters(by_kind_mle):
    """The joint Wald statistic of every free parameter is chi-square (two-sided band)."""
    data, truth, fit = by_kind_mle
    info = FitInfo.from_tree(fit)
    assert info.covariates == data.terms and info.by_kind and len(data.terms) == 7
    assert fit.attrs["n_params"] == n_params(K, J, p=7)
    assert fit.attrs["aic"] == pytest.approx(-2 * fit.attrs["marginal_loglik"] + 2 * fit.attrs["n_params"])
    statistic = controls.wald_statistic(fit, truth)
    assert statistic[1] == n_params(K, J, p=7)
    controls.assert_wald_calibrated([statistic])


@pytest.mark.slow  # a fit per design: 12 to 19 s each (2026-11-26, 2-core machine)
@pytest.mark.parametrize("covariates", ["no-interaction", "compute"])
def test_covariate_sets_recover_their_parameters(covariates):
    data, truth = _simulated(covariates)
    fit = bl.fit(data, K=K, method="mle", seed=0, progress=False)
    assert FitInfo.from_tree(fit).covariates == COVARIATE_SETS[covariates]
    controls.assert_wald_calibrated([controls.wald_statistic(fit, truth)])


@pytest.mark.slow  # NUTS: about a minute (70 s measured, with the MLE it starts from)
def test_nuts_agrees_with_the_mle_by_kind(by_kind_mle):
    """Posterior means within one MLE standard error of the MLE, posterior sds near them.

    (Not MAP: the joint mode over parameters and family effects is not the marginal
    optimum; on this data set it inflates the anchor loadings about 1.8-fold, and with
    seed 0 collapses skill 2's to zero, by_kind or not.)
    """
    data, _, mle = by_kind_mle
    post = bl.fit(data, K=K, method="nuts", seed=0, progress=False, by_kind=True, chains=2, tune=300, draws=300)
    mean, sd = post.posterior["beta"].mean(("chain", "draw")), post.posterior["beta"].std(("chain", "draw"))
    z = (mean - mle.posterior["beta"].isel(chain=0, draw=0)) / mle.mle["beta_se"]
    assert float(np.abs(z).max()) < 1.0, z.values
    np.testing.assert_allclose(sd, mle.mle["beta_se"], rtol=0.35)


# ------------------------------------------------------------------ predictions
def test_predictions_by_kind(by_kind_mle, tmp_path):
    data, _, fit = by_kind_mle
    bl.save_fit(fit, tmp_path / "fit.nc")
    loaded = bl.load_fit(tmp_path / "fit.nc")
    assert FitInfo.from_tree(loaded).covariates == data.terms and loaded.attrs["format_version"] == FORMAT_VERSION
    family = data.families[0]
    new = pd.DataFrame({"model": ["n-7b-chat", "n-7b-base"], "family": "new", "size": 7.0, "tokens": 2.0})
    table = bl.predict(loaded, new, kind="theta", n_draws=200, seed=1)
    # Same size and tokens, other kind: other skills (the tuned terms' slopes are not zero).
    means = table.pivot(index="model", columns="skill", values="mean")
    assert not np.allclose(means.loc["n-7b-chat"], means.loc["n-7b-base"], atol=1e-3)
    # A kind column says the same as the names.
    named = bl.predict(loaded, new.assign(kind=["chat", "pretrained"]), kind="theta", n_draws=200, seed=1)
    pd.testing.assert_frame_equal(named, table)
    with pytest.raises(BayesLslError, match="allocate needs a fit with the paper's covariates"):
        bl.allocate(loaded, [1e22])
    with pytest.raises(DataError, match=r"cannot be told from the name: \['mystery-7b'\]; add a 'kind' column"):
        bl.predict(loaded, pd.DataFrame({"model": ["mystery-7b"], "family": [family], "size": [7.0],
                                         "tokens": [2.0]}), n_draws=50)  # fmt: skip


@pytest.fixture(scope="module")
def sim_with_kinds(small_sim):
    """The shared simulated set with a kind per family (even families base, odd tuned), and the kinds."""
    data = small_sim[0]
    kinds = np.where(data.family_index % 2 == 0, "base", "tuned")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bl.ScalingData.from_frame(data.to_frame().assign(kind=kinds), anchors=data.anchors), kinds


def test_held_out_frames_carry_the_kind(sim_with_kinds):
    from bayes_lsl.holdout import _held_out_frame

    data, kinds = sim_with_kinds
    frame, _ = _held_out_frame(data, data.models[:6])
    assert list(frame["kind"]) == list(kinds[:6])
    # drop_models (what the held-out evaluations fit) keeps kinds and the design.
    designed = data.with_covariates("compute", by_kind=True)
    rest = designed.drop_models(data.models[:6])
    assert rest.terms == designed.terms and list(rest.kind) == list(kinds[6:])


def test_cli_fit_options(tmp_path, capsys):
    from bayes_lsl.cli import _covariates_option

    assert _covariates_option("log_size, log_compute") == ["log_size", "log_compute"]
    assert _covariates_option("compute") == "compute"
    out = tmp_path / "fit.nc"
    assert main(["fit", "--data", "example", "--K", "2", "--method", "map", "--covariates", "no-interaction",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    assert FitInfo.from_tree(bl.load_fit(out)).covariates == ("log_size", "log_tokens")
    assert main(["fit", "--data", "example", "--K", "2", "--method", "map", "--by-kind", "--out",
                 str(tmp_path / "k.nc"), "--quiet"]) == 2  # fmt: skip
    assert "'kind' column" in capsys.readouterr().err and not (tmp_path / "k.nc").exists()


def test_cross_validation_by_kind(sim_with_kinds):
    """The held-out models' kinds reach the fold fits' predictions (whole families held out)."""
    data, _ = sim_with_kinds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bl.cross_validate(data, n_folds=2, K=K, method="map", by_kind=True, n_draws=100, n_boot=50,
                                   progress=False)  # fmt: skip
    assert all(FitInfo.from_tree(f).by_kind for f in result.fits)
    assert set(result.predictions["model"]) == set(data.models[data.observed.any(axis=1)])


def test_model_presets_name_a_design_and_exclude_setting_it():
    """``model="extended"`` is ``covariates="no-interaction", by_kind=True``; ``"paper"`` the default design;
    giving a preset and the options it sets is an error."""
    data, _ = _simulated("no-interaction", by_kind=True)
    extended = bl.fit(data, K=2, method="map", seed=1, progress=False, model="extended")
    assert list(extended.posterior.covariate.values) == list(covariate_terms("no-interaction", by_kind=True))
    paper = bl.PRESETS["paper"]
    assert data.with_covariates(paper["covariates"], paper["by_kind"]).terms == covariate_terms("paper")
    with pytest.raises(BayesLslError, match="either model or"):
        bl.fit(data, K=2, method="map", progress=False, model="extended", by_kind=True)
    with pytest.raises(BayesLslError, match="unknown model"):
        bl.fit(data, K=2, method="map", progress=False, model="bigger")


def test_curves_of_a_fit_by_kind_take_the_family_kind():
    """Predictive curves along a family's sizes carry its kind, which a fit by kind needs."""
    from bayes_lsl.plots import plot_scaling_bands, plot_scaling_curves

    data, _ = _simulated("no-interaction", by_kind=True)
    fit = bl.fit(data, K=K, method="map", seed=0, progress=False, covariates="no-interaction", by_kind=True)
    for family in (data.model_family[data.kind == "base"][0], data.model_family[data.kind == "tuned"][0]):
        bench = data.benchmarks[1]
        curves = plot_scaling_curves(fit, family, benchmarks=[bench], n_draws=50)
        bands = plot_scaling_bands({"by kind": fit}, data, family, bench, n_draws=50)
        # Each draws a median line over its band, from predictions of the family's own kind.
        assert curves.axes[0].lines and bands.axes[0].lines
        plt.close(curves)
        plt.close(bands)
