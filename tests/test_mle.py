"""The marginal maximum-likelihood estimator: structure, optimality, standard errors, recovery."""

from __future__ import annotations

import warnings

import controls
import numpy as np
import pytest
import scipy.special
import scipy.stats

import bayes_lsl as bl
from bayes_lsl.fitting.marginal import MarginalLikelihood, family_modes
from bayes_lsl.fitting.result import POSTERIOR_VARS, FitInfo
from bayes_lsl.model import n_params
from bayes_lsl.simulate import random_design, random_parameters, simulate


def test_layout_matches_other_methods(mle_fit, map_fit):
    for name in POSTERIOR_VARS:
        assert mle_fit.posterior[name].dims == map_fit.posterior[name].dims, name
        assert mle_fit.posterior[name].shape == map_fit.posterior[name].shape, name
    assert mle_fit.posterior.sizes["chain"] == mle_fit.posterior.sizes["draw"] == 1
    assert mle_fit["constant_data"]["x"].dims == ("model", "covariate")
    attrs = mle_fit.attrs
    assert attrs["method"] == "mle" and attrs["K"] == 2
    assert attrs["n_params"] == n_params(2, 6) == 6 + 2 + 8 + 12 + 1
    assert np.isclose(attrs["aic"], -2 * attrs["marginal_loglik"] + 2 * attrs["n_params"])
    # BIC's n is the number of families by default: the marginal likelihood factorizes over them.
    n_families = mle_fit["constant_data"].sizes["family"]
    assert attrs["bic_n"] == "families" and attrs["bic_sample_size"] == n_families
    assert np.isclose(attrs["bic"], -2 * attrs["marginal_loglik"] + attrs["n_params"] * np.log(n_families))
    for name in ("beta", "lam", "b", "phi", "corr"):
        se = mle_fit.mle[f"{name}_se"]
        assert se.dims == mle_fit.posterior[name].dims[2:]
        assert np.isfinite(se).all()
    # Structural zeros and the unit diagonal have no uncertainty.
    assert float(mle_fit.mle["corr_se"][0, 0]) < 1e-6
    assert float(mle_fit.mle["lam_se"][0, 1]) < 1e-6


def test_is_a_maximum(mle_fit, small_sim):
    data, _ = small_sim
    attrs = mle_fit.attrs
    assert attrs["converged"]
    assert attrs["grad_norm"] < 1e-1
    # No start found a higher likelihood than the one reported.
    assert max(attrs["starts_loglik"]) <= attrs["marginal_loglik_objective"] + 1e-6
    # Small steps in random directions from the optimum only lower the objective.
    model = bl.build_model(data, K=2)
    parts = MarginalLikelihood(model, data, attrs["quadrature_nodes_per_dim"])
    theta = mle_fit.mle["theta_hat"].values
    modes, _ = family_modes(parts, theta)
    best = parts.value_and_grad(theta, modes)[0]
    rng = np.random.default_rng(0)
    for _ in range(5):
        u = rng.normal(size=theta.shape)
        assert parts.value_and_grad(theta + 0.02 * u / np.linalg.norm(u), modes)[0] < best


def test_quadrature_matches_importance_sampling(mle_fit, small_sim):
    """The adaptive rule agrees with a much more accurate integration at the optimum.

    Importance sampling with 20,000 draws per family from a t(5) proposal centered at each
    family's mode, with the model's likelihood evaluated in numpy/scipy.
    """
    data, _ = small_sim
    post = mle_fit.posterior.isel(chain=0, draw=0)
    beta, lam, b, phi, corr = (post[n].values for n in ("beta", "lam", "b", "phi", "corr"))
    modes = post["alpha"].values
    cov = mle_fit.mle["alpha_cov"].values
    rng = np.random.default_rng(1)
    S, df, K = 20_000, 5, 2
    total = 0.0
    for f in range(len(data.families)):
        rows = np.flatnonzero(data.family_index == f)
        L = np.linalg.cholesky(1.5 * cov[f])
        z = rng.standard_normal((S, K)) / np.sqrt(rng.chisquare(df, S) / df)[:, None]  # multivariate t
        alpha = modes[f] + z @ L.T
        log_q = scipy.stats.multivariate_t.logpdf(alpha, loc=modes[f], shape=1.5 * cov[f], df=df)
        log_prior = scipy.stats.multivariate_normal.logpdf(alpha, mean=np.zeros(K), cov=corr)
        theta = alpha[:, None, :] + data.x[rows] @ beta  # (S, n_f, K)
        mu = data.floors + (1 - data.floors) * scipy.special.expit(theta @ lam + b)
        y = data.scores[rows]
        dens = scipy.stats.beta.logpdf(y, phi * mu, phi * (1 - mu))
        loglik = np.where(np.isnan(y), 0.0, dens).sum(axis=(1, 2))
        total += scipy.special.logsumexp(loglik + log_prior - log_q) - np.log(S)
    # The reported value (the package's importance sampler) is within Monte Carlo error of
    # this one; the 3-node objective is off by a little more, and the reported error says
    # by how much. 5 and 20 Gauss-Hermite nodes per dimension agree with both.
    assert mle_fit.attrs["check"] == "20000 draws" and 0 < mle_fit.attrs["marginal_loglik_mc_se"] < 0.05
    assert abs(total - mle_fit.attrs["marginal_loglik"]) < 0.1
    assert abs(total - mle_fit.attrs["marginal_loglik_objective"] + mle_fit.attrs["integration_error"]) < 0.1

    # Both agree with a 20^2-node product rule, whose error at K = 2 is far below theirs.
    parts = MarginalLikelihood(bl.build_model(data, K=2), data, 1)
    theta = mle_fit.mle["theta_hat"].values
    fam_modes, _ = family_modes(parts, theta)
    exact = parts.per_family(20)(theta, fam_modes).sum()
    assert abs(mle_fit.attrs["marginal_loglik"] - exact) < 4 * mle_fit.attrs["marginal_loglik_mc_se"]
    assert abs(total - exact) < 0.1


def test_prior_monte_carlo_is_the_authors_estimator(mle_fit, small_sim):
    """Plain Monte Carlo over prior draws (the authors' estimator) estimates the same
    per-family log-likelihoods as importance sampling, within its own standard error,
    and its log-mean-exp is never clearly above the reference (it is biased low)."""
    data, _ = small_sim
    parts = MarginalLikelihood(bl.build_model(data, K=2), data, 1)
    theta = mle_fit.mle["theta_hat"].values
    modes, _ = family_modes(parts, theta)
    reference, ref_se = parts.importance(theta, modes, n_draws=20_000, seed=0)
    estimate, se = parts.prior_monte_carlo(theta, n_draws=20_000, seed=1)
    combined = np.sqrt(se**2 + ref_se**2)
    assert abs(estimate.sum() - reference.sum()) < 4 * np.sqrt((combined**2).sum())
    assert ((estimate - reference) / combined).max() < 4
    again, _ = parts.prior_monte_carlo(theta, n_draws=20_000, seed=1)
    np.testing.assert_array_equal(again, estimate)


@pytest.mark.parametrize("K", [1, 3, 5])
def test_rules_integrate_low_degree_polynomials_exactly(K):
    """Cubature: every monomial of total degree <= 3 under N(0, I); the product rule with
    n nodes per dimension: each coordinate's degree up to 2n - 1."""
    from bayes_lsl.fitting.marginal import quadrature_rule

    def moment(powers):  # E prod z_k^p_k under N(0, I): prod (p - 1)!! for even p, else 0
        return np.prod([0.0 if p % 2 else scipy.special.factorial2(p - 1) if p else 1.0 for p in powers])

    for rule, degree in [("cubature", 3), (2, 3), (3, 5)]:
        z, logw = quadrature_rule(K, rule)
        w = np.exp(logw - 0.5 * (z**2).sum(axis=1) - 0.5 * K * np.log(2 * np.pi))  # undo the 1/phi
        assert np.all(w > 0)
        assert len(z) == (2 * K if rule == "cubature" else rule**K)
        for powers in np.ndindex(*([degree + 1] * K)):
            if rule == "cubature" and sum(powers) > 3:
                continue
            integral = (w * np.prod(z ** np.array(powers), axis=1)).sum()
            assert np.isclose(integral, moment(powers), atol=1e-9), (rule, powers)
    with pytest.raises(ValueError, match="cubature"):
        quadrature_rule(K, "sparse")


@pytest.mark.slow  # a fit of its own: in CI's slow step
def test_cubature_rule_reaches_the_same_optimum(mle_fit, small_sim):
    """The 2K-node cubature (the default from K = 5) as the objective: the optimum's
    log-likelihood, by the same importance sampler, within 0.1 of the 3^K product rule's."""
    cub = bl.fit(small_sim[0], K=2, method="mle", seed=0, progress=False, n_nodes="cubature", n_starts=1)
    assert cub.attrs["quadrature_nodes_per_dim"] == "cubature"
    assert cub.attrs["check"] == mle_fit.attrs["check"] == "20000 draws"
    assert abs(cub.attrs["marginal_loglik"] - mle_fit.attrs["marginal_loglik"]) < 0.1


def test_same_seed_same_numbers(mle_fit, small_sim):
    again = bl.fit(small_sim[0], K=2, method="mle", seed=0, progress=False)
    np.testing.assert_array_equal(again.posterior["lam"].values, mle_fit.posterior["lam"].values)
    assert again.attrs["marginal_loglik"] == mle_fit.attrs["marginal_loglik"]


def _coverage(fit, truth) -> tuple[int, int]:
    post = fit.posterior.isel(chain=0, draw=0)
    covered, total = 0, 0
    for name in ("beta", "lam", "b", "phi", "corr"):
        est, se, true = post[name].values, fit.mle[f"{name}_se"].values, truth[name]
        free = se > 1e-8  # skip structural zeros and the unit diagonal
        if name == "corr":
            free &= np.tril(np.ones_like(free), -1).astype(bool)
        covered += int((np.abs(est[free] - true[free]) / se[free] < 1.96).sum())
        total += int(free.sum())
    return covered, total


@pytest.fixture(scope="module")
def recovery_fits():
    """Four data sets from the same parameters and their MLE fits (29 free parameters each).

    K=2, J=6, 60 families x 3 models, 10% missing. Pooled, because within one data set the
    errors of all loadings and slopes of a skill move together with the realized spread of
    that skill's family effects.
    """
    params = random_parameters(K=2, J=6, seed=11)
    out = []
    for rep in range(4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data, truth = simulate(params, random_design(60, 3, seed=11), missing=0.1, seed=100 + rep)
        out.append((bl.fit(data, K=2, method="mle", seed=0, progress=False, n_starts=2), truth))
    return out


@pytest.mark.slow  # four fits: in CI's slow step (.ci/run)
def test_parameter_recovery_wald_coverage(recovery_fits):
    """The Wald standard errors are right, two-sided: neither too small nor too large.

    The joint Wald statistic of each data set is chi-square(29) if the covariance is the
    estimate's; summed over the four independent data sets, chi-square(116). The
    parameters' own z^2 have mean 1 with a spread set by their correlation.
    """
    assert sum(_coverage(fit, truth)[1] for fit, truth in recovery_fits) == 4 * 29  # free parameters
    statistics = [controls.wald_statistic(fit, truth) for fit, truth in recovery_fits]
    assert [k for _, k in statistics] == [29] * 4  # a positive definite information in each
    controls.assert_wald_calibrated(statistics)
    controls.assert_marginal_z2_calibrated([controls.wald_errors(fit, truth) for fit, truth in recovery_fits])
    # Estimates near the truth: intercepts within 0.5 on the logit scale (about 3 SEs).
    errors = [np.abs(fit.posterior["b"].values[0, 0] - truth["b"]) for fit, truth in recovery_fits]
    assert np.max(errors) < 0.5


@pytest.mark.slow  # the negative controls of the test above, on its fits
@pytest.mark.parametrize("factor", [1.5, 1 / 1.5], ids=["se x 1.5", "se / 1.5"])
def test_wrong_standard_errors_fail_wald_recovery(recovery_fits, factor):
    # Negative controls: standard errors x 1.5 (the old one-sided coverage test passed
    # them) and / 1.5 shift the mean z^2 by 2.25 either way, outside the chi-square band.
    wrong = [(controls.inflated_se(fit, factor), truth) for fit, truth in recovery_fits]
    with pytest.raises(AssertionError, match="chi-square band"):
        controls.assert_wald_calibrated([controls.wald_statistic(fit, truth) for fit, truth in wrong])
    if factor > 1:
        # The marginal z^2's band is wider (the z's of a data set are correlated, so they
        # are fewer independent pieces of evidence): it rejects x 1.5, not / 1.5.
        with pytest.raises(AssertionError, match="marginal z"):
            controls.assert_marginal_z2_calibrated([controls.wald_errors(fit, truth) for fit, truth in wrong])


@pytest.mark.slow  # a fit of its own: in CI's slow step
def test_parameterization_of_family_effects_does_not_change_the_mle(mle_fit, small_sim):
    centered = bl.fit(small_sim[0], K=2, method="mle", seed=0, progress=False, centered=True)
    assert np.isclose(centered.attrs["marginal_loglik"], mle_fit.attrs["marginal_loglik"], atol=1e-6)
    assert FitInfo.from_tree(centered).parameterization == "centered"
    assert FitInfo.from_tree(mle_fit).parameterization == "non-centered"


@pytest.mark.slow  # five fits of its own: in CI's slow step
def test_warm_start_from_fewer_skills_and_cheap_hessian(mle_fit, small_sim):
    """A K=1 optimum gives a start at K=2 that reaches the same optimum; the Laplace-rule
    Hessian gives standard errors close to the full rule's; the partially centered NUTS
    parameterization is refused (the marginal likelihood integrates alpha out)."""
    import pytest

    data, _ = small_sim
    one = bl.fit(data, K=1, method="mle", progress=False, n_starts=1, hessian_nodes=1)
    assert one.attrs["hessian_nodes_per_dim"] == 1 and np.isfinite(one.mle["lam_se"]).all()
    warm = bl.fit(data, K=2, method="mle", progress=False, n_starts=1, start_from=one, hessian_nodes=1)
    assert warm.attrs["n_starts"] == 2 and warm.attrs["warm_start"]
    assert warm.attrs["marginal_loglik"] > mle_fit.attrs["marginal_loglik"] - 0.05
    ratio = warm.mle["lam_se"].values[:, 2:] / mle_fit.mle["lam_se"].values[:, 2:]
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio
    with pytest.raises(ValueError, match="start"):
        bl.fit(data, K=1, method="mle", progress=False, start_from=mle_fit)
    with pytest.raises(ValueError, match="partial"):
        bl.fit(data, K=2, method="mle", progress=False, centered="partial")


def test_information_covariance_gives_flat_directions_the_prior_spread():
    """Positive definite information: its inverse. A flat or wrongly curved direction has
    an unknown (possibly infinite) variance, not none: it gets the default priors' spread
    (variance 4), and the parameters that carry it are named."""
    from bayes_lsl.fitting.mle import FLAT_VARIANCE, information_covariance

    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    good = q @ np.diag([4.0, 2.0, 1.0, 0.5]) @ q.T
    cov, eigmin, flat = information_covariance(good)
    np.testing.assert_allclose(cov, np.linalg.inv(good), atol=1e-12)
    assert eigmin == pytest.approx(0.5) and flat == []

    names = ["beta[0]", "beta[1]", "lam_free[0]", "b[0]"]
    lone = good.copy()
    lone[2, :] = lone[:, 2] = 0.0  # lam_free[0] does not enter the likelihood
    cov, eigmin, flat = information_covariance(lone, names)
    assert flat == ["lam_free[0]"] and eigmin == pytest.approx(0.0, abs=1e-12)
    assert cov[2, 2] == pytest.approx(FLAT_VARIANCE)  # not 0, as the pseudo-inverse gave
    keep = [0, 1, 3]  # the determined parameters keep the inverse of their own block
    np.testing.assert_allclose(cov[np.ix_(keep, keep)], np.linalg.inv(lone[np.ix_(keep, keep)]), atol=1e-12)
    # Never narrower than the weakest determined direction: its variance, where larger.
    weak = q @ np.diag([4.0, 2.0, 0.01, 0.0]) @ q.T
    cov, _, flat = information_covariance(weak, names)
    assert len(flat) >= 1
    np.testing.assert_allclose(cov, q @ np.diag([1 / 4.0, 1 / 2.0, 100.0, 100.0]) @ q.T, atol=1e-9)
    # A saddle: the wrongly curved direction gets the prior spread, the others their own.
    saddle = q @ np.diag([4.0, 2.0, 1.0, -1.19]) @ q.T
    cov, eigmin, flat = information_covariance(saddle, names)
    assert eigmin == pytest.approx(-1.19) and flat
    np.testing.assert_allclose(cov, q @ np.diag([1 / 4.0, 1 / 2.0, 1.0, FLAT_VARIANCE]) @ q.T, atol=1e-12)


@pytest.mark.slow  # fits of its own: in CI's slow step
def test_a_flat_direction_gets_wide_standard_errors_and_predictions(other_sim_data, monkeypatch):
    """A fit whose information is flat along one loading keeps its point estimate, warns
    naming the loading, and gives it the prior's spread, so that predictions stay
    computable and are wider than with that loading determined."""
    import pandas as pd

    from bayes_lsl.fitting.mle import FLAT_VARIANCE

    hessian = MarginalLikelihood.hessian

    def flat_hessian(self, theta, modes, *args, **kwargs):
        H = hessian(self, theta, modes, *args, **kwargs)
        i = self.names.index("lam_free")
        i = sum(int(np.prod(s)) for s in self.shapes[:i])  # lam_free[0]: as if no score depended on it
        H[i, :] = H[:, i] = 0.0
        return H

    options = dict(K=2, method="mle", progress=False, n_starts=1, check_draws=500)
    sound = bl.fit(other_sim_data, **options)
    monkeypatch.setattr(MarginalLikelihood, "hessian", flat_hessian)
    with pytest.warns(UserWarning, match=r"carried by lam_free\[0\].*given variance at least 4"):
        fit = bl.fit(other_sim_data, **options)
    np.testing.assert_allclose(fit.posterior["lam"], sound.posterior["lam"])
    free = fit.mle["lam_se"].values[:, 2:]  # the free loadings; lam_free[0] is skill 1's first
    assert free.flat[0] >= np.sqrt(FLAT_VARIANCE) * (1 - 1e-6)  # at least the priors' spread
    assert free.flat[0] > 3 * sound.mle["lam_se"].values[:, 2:].flat[0]
    new = pd.DataFrame({"model": ["m"], "family": ["new"], "size": [7.0], "tokens": [2.0]})
    bench = fit.posterior["lam"]["benchmark"].values[2]  # the benchmark lam_free[0] loads
    wide, narrow = (bl.predict(f, new, seed=0).set_index("benchmark").loc[bench] for f in (fit, sound))
    assert wide["upper"] - wide["lower"] > narrow["upper"] - narrow["lower"]


def test_draws_at_the_correlation_boundary_are_regularized(mle_fit):
    """A correlation with a huge standard error on the unconstrained scale (its MLE near
    +-1 on a flat likelihood) gives draws with singular correlation matrices; they are
    clipped within 1e-6 of the boundary, with a warning, so that predictions stay computable."""
    import xarray as xr

    from bayes_lsl.parameters import parameter_draws

    fit = mle_fit.copy(deep=True)
    mle = fit["mle"].to_dataset()
    i = next(k for k, name in enumerate(mle["param"].values) if str(name).startswith("corr_z"))
    cov = mle["theta_cov"].values.copy()
    cov[i, i] = 1e4
    fit["mle"] = xr.DataTree(mle.assign(theta_cov=(("param", "param_other"), cov)))
    with pytest.warns(UserWarning, match="clipped"):
        draws = parameter_draws(fit, n_draws=200, seed=0)
    corr = draws["corr"].values
    assert np.linalg.eigvalsh(corr).min() > 0
    assert np.abs(corr[:, 0, 1]).max() > 0.999  # the boundary is reached, only regularized


def test_refine_stops_when_rounds_stall_and_keeps_the_best():
    """A re-centered objective that oscillates between rounds instead of settling (what the
    cubature does at K >= 6 on the paper data): the rounds stop after ``patience`` rounds
    without improvement, flagged ``stalled``, and the best round is returned, consistent
    with its own modes."""
    from types import SimpleNamespace

    from bayes_lsl.fitting.mle import refine

    def target(modes):  # where theta's optimum sits given the modes: jumps between rounds
        return 1.0 + 0.5 * np.sin(50.0 * modes[0, 0])

    def objective(theta, modes):
        d = theta[0] - target(modes)
        return -(d**2) - 0.1 * theta[0] ** 2, np.array([-2 * d - 0.2 * theta[0]])

    def family_curvature(a, theta):  # one family, K = 1, mode at theta
        return -0.5 * (a[:, 0] - theta[0]) ** 2, -(a - theta[0]), -np.ones((1, 1, 1))

    parts = SimpleNamespace(objective=lambda n: objective, n_families=1, K=1, family_curvature=family_curvature)
    result = refine(parts, np.array([0.3]), n_nodes=1, tol=1e-6, max_rounds=30, patience=3)
    assert result["stalled"] and not result["converged"] and result["rounds"] < 30
    value_there = objective(result["theta"], result["modes"])[0]
    assert np.isclose(result["loglik"], value_there)
    # No other round's re-centered value was higher: re-run the same rounds by hand.
    theta, values = np.array([0.3]), []
    for _ in range(result["rounds"]):
        modes = np.array([[theta[0]]])
        theta = np.array([target(modes) / 1.1])  # the round's maximizer with the modes fixed
        values.append(objective(theta, np.array([[theta[0]]]))[0])
    assert np.isclose(result["loglik"], max(values), atol=1e-6)



def test_start_agreement_says_what_agrees_with_what(mle_fit):
    """``n_agree`` counts the Laplace screens near the best screen; ``n_agree_refined`` the refined starts."""
    attrs = mle_fit.attrs
    screens, tol = np.asarray(attrs["laplace_loglik"]), attrs["agree_tol"]
    assert len(screens) == attrs["n_starts"] and screens[0] == screens.max()
    assert attrs["n_agree"] == int((np.abs(screens - screens.max()) < tol).sum())
    refined = np.asarray(attrs["starts_loglik"])
    assert attrs["n_agree_refined"] == int((np.abs(refined - attrs["marginal_loglik_objective"]) < tol).sum())
    from bayes_lsl.fitting.mle import start_agreement

    words = start_agreement(attrs)
    assert f"{attrs['n_agree']}/{attrs['n_starts']} Laplace screens within {tol:g} of the best screen" in words
    assert f"{attrs['n_agree_refined']}/{attrs['n_refined']} refined starts at the optimum" in words


@pytest.mark.slow  # two fits of its own: in CI's slow step
@pytest.mark.parametrize("progress", [True, False])
def test_every_phase_is_on_the_progress_bar_and_none_without_it(small_sim, capsys, progress):
    """Compilation, screens, refinement, check and standard errors are named as they run; none without progress."""
    fit = bl.fit(small_sim[0], K=2, method="mle", seed=0, progress=progress, n_starts=1, check_draws=200)
    err = capsys.readouterr().err
    phases = ["compiling the model", "screening 1 start(s)", "refining 1/1", "checking", "standard errors"]
    if progress:
        assert all(phase in err for phase in phases), err[-2000:]
    else:
        assert err == ""
    # What was compiled is recorded (nothing where the same graphs were compiled before in this process).
    assert len(fit.attrs["compile_functions"]) == len(fit.attrs["compile_s"])


@pytest.mark.slow  # screens, Hessian and importance twice: in CI's slow step
def test_screens_in_parallel_processes_give_the_same_numbers(small_sim):
    """Forked workers give the numbers one process gives: screens, Hessian, importance sampling."""
    from bayes_lsl.fitting.mle import anchored_start, screens

    data, _ = small_sim
    parts = MarginalLikelihood(bl.build_model(data, K=2), data, 3)
    theta0 = anchored_start(data, 2, parts)
    starts = [theta0, theta0 + 0.3 * np.random.default_rng(0).normal(size=theta0.shape)]
    done = []
    parallel = screens(parts, starts, maxiter=50, n_jobs=2, on_done=done.append)
    serial = screens(parts, starts, maxiter=50, n_jobs=1)
    assert done == [1, 2]
    for a, b in zip(parallel, serial, strict=True):
        assert a["loglik"] == b["loglik"] and np.array_equal(a["theta"], b["theta"])
    # The Hessian's columns and the importance-sampling batches, too.
    theta, modes = serial[0]["theta"], serial[0]["modes"]
    results = []
    for n_jobs in (2, 1):
        parts.n_jobs = n_jobs
        results.append((parts.hessian(theta, modes, 1), parts.importance(theta, modes, n_draws=400, seed=0)))
    (h2, (is2, se2)), (h1, (is1, se1)) = results
    assert np.array_equal(h2, h1) and np.array_equal(is2, is1) and np.array_equal(se2, se1)


def test_a_singular_trial_point_is_backed_off_from():
    """A line search's trial point where the objective cannot be computed (a singular correlation
    matrix: LinAlgError) counts as outside the support instead of ending the fit."""
    from bayes_lsl.fitting.mle import _maximize

    calls = []

    def fun_and_grad(v):
        calls.append(v.copy())
        if len(calls) == 2:  # the first trial step
            raise np.linalg.LinAlgError("Singular matrix")
        return -((v - 1.0) ** 2).sum(), -2.0 * (v - 1.0)

    result = _maximize(fun_and_grad, np.zeros(3), maxiter=100)
    assert len(calls) > 2
    np.testing.assert_allclose(result.x, 1.0, atol=1e-4)


def test_compile_ahead_fills_the_compile_cache_from_a_child():
    """A function compiled ahead in a forked child (issue 17) is found compiled afterwards:
    compiling it here then adds no C module; with one job nothing is started."""
    import time
    from pathlib import Path

    import pytensor
    import pytensor.tensor as pt

    from bayes_lsl.fitting.marginal import compile_ahead, compile_function

    # A constant no earlier run compiled (it is part of the fused loop's C code), so that the
    # modules are new to the shared compile directory.
    c = 1.0 + (time.time_ns() % 10**9) * 1e-12
    x = pt.vector("x")
    graph = pt.special.gammaln(x * c + 0.5).sum()

    def n_modules():
        return sum(1 for _ in Path(pytensor.config.compiledir).rglob("mod.cpp"))

    def fail():
        raise AssertionError("started with one job")

    assert compile_ahead(fail, n_jobs=1)() is None
    before = n_modules()
    compile_ahead(lambda: compile_function([x], graph, "ahead"), n_jobs=2)()
    ahead = n_modules()
    fn = compile_function([x], graph, "here")
    assert ahead > before and n_modules() == ahead
    np.testing.assert_allclose(fn(np.array([0.5, 2.0])), scipy.special.gammaln(np.array([0.5, 2.0]) * c + 0.5).sum())


def test_compile_flags_and_precompiled_header(monkeypatch):
    """The package's g++ flags and precompiled header (issue 17) change compile time, not numbers."""
    import os
    import subprocess

    import pytensor
    import pytensor.tensor as pt

    from bayes_lsl.fitting import marginal

    x = pt.vector("x")
    fn = marginal.compile_function([x], [(pt.gammaln(x) * pt.exp(-x)).sum(), pt.digamma(x)], "test")
    values = np.array([0.5, 2.0, 7.5])
    total, psi = fn(values)
    np.testing.assert_allclose(total, (scipy.special.gammaln(values) * np.exp(-values)).sum(), rtol=1e-12)
    np.testing.assert_allclose(psi, scipy.special.digamma(values), rtol=1e-12)
    if pytensor.config.cxx and marginal.USE_PCH:
        flag = marginal.precompiled_header_flag(marginal.COMPILE_CXXFLAGS)
        assert flag.startswith("-I") and os.path.isfile(os.path.join(flag[2:], "Python.h.gch")), flag

    def fail(*args, **kwargs):
        raise subprocess.CalledProcessError(1, args[0])

    # A header that cannot be built leaves the flags as they were (and is not retried).
    monkeypatch.setattr(marginal.subprocess, "run", fail)
    assert marginal.precompiled_header_flag("-O1 -g0 -DBAYES_LSL_TEST_NO_PCH") == ""
