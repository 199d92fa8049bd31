"""The family effects' distribution: normal (the paper's) or multivariate Student-t (issue 14)."""

from __future__ import annotations

import warnings

import controls
import numpy as np
import pandas as pd
import pymc as pm
import pytest
import scipy.stats

import bayes_lsl as bl
from bayes_lsl.cli import main
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.result import FitInfo
from bayes_lsl.model import n_params
from bayes_lsl.model.likelihood import family_effect_logp, family_effect_prior_derivatives
from bayes_lsl.parameters import family_effect_draws, parameter_draws
from bayes_lsl.simulate import random_design, random_parameters, simulate

K, J, DF = 2, 6, 4.0
#: Level of each statistical check (as tests/controls.py: a correct method fails once in 100).
LEVEL = controls.TEST_LEVEL


def _simulated_t(seed: int = 3):
    """40 families of 4 models, K = 2, J = 6, 10% missing (as tests/test_design.py), t family effects."""
    params = random_parameters(K=K, J=J, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scores below a floor are the model's own noise
        return simulate(params, random_design(40, 4, seed=seed), missing=0.1, seed=seed + 1,
                        family_effects="student-t", family_df=DF)  # fmt: skip


def _binomial_band(p: float, n: int) -> tuple[float, float]:
    """Central 1 - LEVEL band of a binomial(n, p) proportion."""
    low, high = scipy.stats.binom.ppf([LEVEL / 2, 1 - LEVEL / 2], n, p)
    return low / n, high / n


# ------------------------------------------------------------- the default model
def test_default_model_is_unchanged(small_sim):
    """The default builds the model it always built: same variables, same log-density at a
    seeded point (values recorded from the code before issue 14), same simulated data."""
    data, truth = small_sim
    # Recorded with the code before issue 14 (commit 99444ba) on the shared small_sim set.
    assert float(np.nansum(data.scores)) == pytest.approx(339.24291593334965, rel=1e-13)
    assert float(truth["alpha"].sum()) == pytest.approx(-10.95765030351334, rel=1e-13)
    recorded = {
        False: (["lam_anchor_log__", "beta", "lam_free", "b", "corr_z", "alpha_z", "phi_log__"], -22213.340572239886),
        True: (["lam_anchor_log__", "beta", "lam_free", "b", "corr_z", "alpha", "phi_log__"], -22229.24668288941),
        "partial": (["lam_anchor_log__", "lam_ratio", "beta_scaled", "corr_z", "alpha_mean", "alpha_dev", "c",
                     "phi_log__"], -22315.14194449058),
    }  # fmt: skip
    for centered, (names, logp) in recorded.items():
        model = bl.build_model(data, K=K, centered=centered)
        assert [v.name for v in model.value_vars] == names
        assert bl.model.model_family_effects(model) == ("normal", None)
        point = model.initial_point()
        rng = np.random.default_rng(7)
        point = {k: v + 0.1 * rng.standard_normal(np.shape(v)) for k, v in point.items()}
        assert model.compile_logp()(point) == pytest.approx(logp, rel=1e-12)
    # Asking for normal effects is the default, and family_df does not enter the normal model.
    same = bl.build_model(data, K=K, family_effects="normal", priors={"family_df": 9})
    assert [v.name for v in same.value_vars] == recorded[False][0]


def test_density_is_the_multivariate_t():
    """family_effect_logp against scipy, and its derivatives against finite differences."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 5))
    corr = A @ A.T
    corr /= np.sqrt(np.outer(np.diag(corr), np.diag(corr)))
    chol = np.linalg.cholesky(corr)
    alpha = rng.standard_t(3, size=(6, 3))
    prec = np.linalg.inv(corr)
    q = np.einsum("gk,kl,gl->g", alpha, prec, alpha)
    log_det = np.log(np.diag(chol)).sum()
    np.testing.assert_allclose(family_effect_logp(q, log_det, 3, 2.5),
                               scipy.stats.multivariate_t.logpdf(alpha, shape=corr, df=2.5), rtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(family_effect_logp(q, log_det, 3, None),
                               scipy.stats.multivariate_normal.logpdf(alpha, cov=corr), rtol=1e-12)  # fmt: skip
    grad, curvature, hess = family_effect_prior_derivatives(alpha, prec, 2.5)

    def logp(a):
        return family_effect_logp(np.einsum("...k,kl,...l->...", a, prec, a), log_det, 3, 2.5)

    h = 1e-5
    eye = np.eye(3)
    num_grad = np.stack([(logp(alpha + h * e) - logp(alpha - h * e)) / (2 * h) for e in eye], axis=-1)
    np.testing.assert_allclose(grad, num_grad, rtol=1e-6, atol=1e-8)
    num_hess = np.stack([(family_effect_prior_derivatives(alpha + h * e, prec, 2.5)[0]
                          - family_effect_prior_derivatives(alpha - h * e, prec, 2.5)[0]) / (2 * h) for e in eye],
                        axis=-1)  # fmt: skip
    np.testing.assert_allclose(hess, num_hess, rtol=1e-5, atol=1e-7)
    assert (np.linalg.eigvalsh(curvature) > 0).all()  # the Fisher-type curvature: positive definite


# ------------------------------------------------------------------ the prior
def test_pymc_prior_of_alpha_is_the_t(small_sim):
    """Prior draws of alpha: each entry (unit scale) is t(nu), not normal, in both parameterizations."""
    data, _ = small_sim
    nu = 5.0
    for centered in (False, True):
        model = bl.build_model(data, K=K, centered=centered, family_effects="student-t", priors={"family_df": nu})
        assert ("alpha_w" in model.named_vars) == (not centered)
        prior = pm.sample_prior_predictive(draws=400, model=model, var_names=["alpha"], random_seed=11,
                                           compile_kwargs={"mode": "FAST_COMPILE"})  # fmt: skip
        # Skill 1 of every family and draw: independent t(nu) draws (the scale matrix has unit diagonal).
        x = prior.prior["alpha"].values[..., 0].ravel()
        assert scipy.stats.kstest(x, scipy.stats.t(nu).cdf).pvalue > LEVEL
        assert scipy.stats.kstest(x, scipy.stats.norm.cdf).pvalue < 1e-6  # the negative control
        # Tails: beyond the normal's 99.9% two-sided quantile, about 2.2% of a t(5)'s mass, not 0.1%.
        c = scipy.stats.norm.ppf(0.9995)
        low, high = _binomial_band(2 * scipy.stats.t(nu).sf(c), len(x))
        assert low <= np.mean(np.abs(x) > c) <= high


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"family_effects": "cauchy"}, r"family_effects must be one of \['normal', 'student-t'\], got 'cauchy'"),
        ({"family_effects": "student-t", "priors": {"family_df": 0}}, r"priors\['family_df'\].*positive.*got 0"),
        ({"family_effects": "student-t", "priors": {"family_df": -2.0}}, r"priors\['family_df'\]"),
        ({"family_effects": "student-t", "centered": "partial"}, "centered='partial' is built for normal"),
    ],
)
def test_bad_options(small_sim, options, message):
    with pytest.raises(BayesLslError, match=message):
        bl.build_model(small_sim[0], K=K, **options)


def test_simulator_draws_t_effects():
    with pytest.raises(BayesLslError, match="family_df=3 is for family_effects='student-t'"):
        simulate(random_parameters(K=K, J=J), random_design(5, 2), family_df=3)
    # 4000 families of one model, t(4) effects: each skill (unit scale) is t(4), not normal.
    params = random_parameters(K=K, J=J, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, truth = simulate(params, random_design(4000, 1, seed=5), seed=6, family_effects="student-t", family_df=DF)
    for k in range(K):
        assert scipy.stats.kstest(truth["alpha"][:, k], scipy.stats.t(DF).cdf).pvalue > LEVEL
        assert scipy.stats.kstest(truth["alpha"][:, k], scipy.stats.norm.cdf).pvalue < 1e-4  # the negative control


# ------------------------------------------------------------- recovery (MLE)
@pytest.fixture(scope="module")
def t_mle():
    data, truth = _simulated_t()
    # check_draws=0: the importance-sampling check of the log-likelihood does not move the estimate.
    fit = bl.fit(data, K=K, method="mle", seed=0, progress=False, family_effects="student-t",
                 priors={"family_df": DF}, check_draws=0)  # fmt: skip
    return data, truth, fit


def test_mle_recovers_the_t_model(t_mle, tmp_path):
    """The joint Wald statistic of every free parameter against the truth is chi-square (two-sided)."""
    data, truth, fit = t_mle
    info = FitInfo.from_tree(fit)
    assert info.family_effects == "student-t" and info.family_df == DF
    assert fit.attrs["n_params"] == n_params(K, J)  # nu is fixed, not estimated
    statistic = controls.wald_statistic(fit, truth)
    assert statistic[1] == n_params(K, J)
    stats = controls.assert_wald_calibrated([statistic])
    print(f"student-t MLE: Wald {statistic[0]:.2f} on {statistic[1]} df; {stats}")
    # Saved and loaded, the fit keeps its family effects; a file without them reads as normal.
    bl.save_fit(fit, tmp_path / "t.nc")
    loaded = bl.load_fit(tmp_path / "t.nc")
    assert FitInfo.from_tree(loaded).family_effects == "student-t"
    old = fit.copy()
    old.attrs = {k: v for k, v in fit.attrs.items() if k != "family_effects"} | {"format_version": 3}
    assert FitInfo.from_tree(old).family_effects == "normal" and FitInfo.from_tree(old).family_df is None


@pytest.mark.slow  # importance sampling and prior Monte Carlo, compiled: about 8 s
def test_marginal_likelihood_integrates_the_t(t_mle):
    """The adaptive rule of the t model agrees with importance sampling family by family."""
    from bayes_lsl.fitting.marginal import MarginalLikelihood, family_modes

    data, _, fit = t_mle
    model = bl.build_model(data, K=K, family_effects="student-t", priors={"family_df": DF})
    parts = MarginalLikelihood(model, data, fit.attrs["quadrature_nodes_per_dim"])
    theta = fit.mle["theta_hat"].values
    modes, _ = family_modes(parts, theta)
    rule = parts.per_family(fit.attrs["quadrature_nodes_per_dim"])(theta, modes)
    reference, se = parts.importance(theta, modes, n_draws=4000, seed=1)
    # Each family within 5 Monte Carlo standard errors plus a small quadrature error.
    assert np.all(np.abs(rule - reference) < 5 * se + 0.02), np.abs(rule - reference).max()
    # The prior-draw estimator (alpha drawn from the t prior) agrees within its own error.
    prior_mc, prior_se = parts.prior_monte_carlo(theta, n_draws=4000, seed=2)
    z = (prior_mc - reference) / np.hypot(prior_se, se)
    assert np.all(np.abs(z) < 5), z


# ------------------------------------------------------------------ predictions
def test_new_family_has_t_tails(t_mle):
    """A new family's effect: exactly the t prior for the t fit, normal for the same parameters read as normal."""
    data, _, fit = t_mle
    normal = fit.copy()
    normal.attrs = {**fit.attrs, "family_effects": "normal"}
    n = 4000
    params = parameter_draws(fit, n_draws=n, seed=0)
    x, observed = np.zeros((1, len(data.terms))), np.full((1, J), np.nan)
    tails = {}
    c = scipy.stats.norm.ppf(0.9995)
    for name, tree, p in (("t", fit, 2 * scipy.stats.t(DF).sf(c)), ("normal", normal, 2 * scipy.stats.norm.sf(c))):
        alpha = family_effect_draws(tree, params, ["brand-new"], x, observed, seed=3)[:, 0]
        tails[name] = np.mean(np.abs(alpha) > c, axis=0)
        low, high = _binomial_band(p, n)
        assert np.all((low <= tails[name]) & (tails[name] <= high)), (name, tails[name], low, high)
    assert scipy.stats.kstest(family_effect_draws(fit, params, ["brand-new"], x, observed, seed=4)[:, 0, 0],
                              scipy.stats.t(DF).cdf).pvalue > LEVEL  # fmt: skip
    # predict reads the option: a new model's skill intervals are wider with t effects.
    new = pd.DataFrame({"model": ["n-7b"], "family": ["brand-new"], "size": [7.0], "tokens": [2.0]})
    wide = bl.predict(fit, new, kind="theta", n_draws=2000, seed=1, level=0.99)
    narrow = bl.predict(normal, new, kind="theta", n_draws=2000, seed=1, level=0.99)
    assert ((wide["upper"] - wide["lower"]).values > (narrow["upper"] - narrow["lower"]).values).all()


# --------------------------------------------------------- the other methods
def test_cli_passes_the_option(cli_fit_options):
    """``fit --family-effects student-t --family-df 7`` reaches :func:`bayes_lsl.fit` (stubbed: no fit made)."""
    given = cli_fit_options(["--family-effects", "student-t", "--family-df", "7"])
    assert given["family_effects"] == "student-t" and given["priors"] == {"family_df": 7.0}
    given = cli_fit_options([])
    assert "family_effects" not in given and "priors" not in given  # the default call is unchanged


@pytest.mark.slow  # a map and an advi fit of the t model and a map fit by the shell: about a minute
def test_map_advi_and_cli_take_the_option(small_sim, tmp_path):
    data, _ = small_sim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_map = bl.fit(data, K=K, method="map", seed=0, progress=False, family_effects="student-t")
        fit_advi = bl.fit(data, K=K, method="advi", seed=0, progress=False, family_effects="student-t",
                          n=2000, draws=100)  # fmt: skip
    for fit in (fit_map, fit_advi):
        info = FitInfo.from_tree(fit)
        assert info.family_effects == "student-t" and info.family_df == 4.0
        assert np.isfinite(fit.posterior["alpha"].values).all()
    # A fit's draws as the t model's free variables: unit weights reproduce alpha.
    model = bl.build_model(data, K=K, family_effects="student-t")
    trace = bl.model_trace(fit_map, model)
    assert (trace.posterior["alpha_w"].values == 1).all()
    # The held-out evaluations pass the option on to their fits.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bl.cross_validate(data, n_folds=2, K=K, method="map", family_effects="student-t", n_draws=100,
                                   n_boot=50, progress=False)  # fmt: skip
    assert all(FitInfo.from_tree(f).family_effects == "student-t" for f in result.fits)
    out = tmp_path / "t.nc"
    assert main(["fit", "--data", "example", "--K", "2", "--method", "map", "--family-effects", "student-t",
                 "--family-df", "7", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    info = FitInfo.from_tree(bl.load_fit(out))
    assert info.family_effects == "student-t" and info.family_df == 7.0


@pytest.mark.slow  # two NUTS runs after the MLE they start from: about 90 s
def test_nuts_agrees_with_the_mle(t_mle):
    """NUTS on the t model: the scale mixture (non-centered, fit's default for t) and PyMC's
    MvStudentT (centered) give the same posterior, near the MLE.

    Near, not within one standard error as for the normal model (tests/test_design.py): with
    t(4) effects the 40 families say less about each skill's scale, so the priors on the
    loadings and slopes pull more. Measured (seeds 0, 1, centered): posterior means of
    ``beta`` up to 1.3-1.5 MLE standard errors from the MLE, the same in both
    parameterizations; the normal model on the normal data set of the same design: 0.9.
    """
    data, _, mle = t_mle
    posts = {}
    for centered in (None, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            posts[centered] = bl.fit(data, K=K, method="nuts", seed=0, progress=False, family_effects="student-t",
                                     priors={"family_df": DF}, centered=centered, chains=2, tune=300,
                                     draws=300)  # fmt: skip
    assert FitInfo.from_tree(posts[None]).parameterization == "non-centered"
    assert FitInfo.from_tree(posts[True]).parameterization == "centered"
    means = {c: p.posterior["beta"].mean(("chain", "draw")) for c, p in posts.items()}
    sd = posts[None].posterior["beta"].std(("chain", "draw"))
    # The same posterior: means within half a posterior sd (about 5 Monte Carlo errors of the difference).
    assert float(np.abs((means[None] - means[True]) / sd).max()) < 0.5
    z = (means[None] - mle.posterior["beta"].isel(chain=0, draw=0)) / mle.mle["beta_se"]
    assert float(np.abs(z).max()) < 2.0, z.values
    np.testing.assert_allclose(sd, mle.mle["beta_se"], rtol=0.35)
