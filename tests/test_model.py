"""The model: shapes and names, the correlation transform, and the likelihood against scipy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import scipy.special
import scipy.stats

import bayes_lsl as bl
from bayes_lsl.data import DataError
from bayes_lsl.model import n_params
from bayes_lsl.model.likelihood import corr_cholesky, corr_to_z, lkj_cholesky_logp


def test_dims_and_shapes(paper):
    model = bl.build_model(paper, K=4)
    point = model.initial_point()
    dims = model.named_vars_to_dims
    assert dims["beta"] == ("covariate", "skill")
    assert dims["lam"] == ("skill", "benchmark")
    assert dims["alpha"] == ("family", "skill")
    assert dims["corr"] == ("skill", "skill_other")
    assert dims["b"] == dims["phi"] == ("benchmark",)
    assert len(model.coords["cell"]) == int(paper.observed.sum()) == 2304
    assert point["alpha_z"].shape == (170, 4)
    # The anchor block is diagonal: zeros off its diagonal whatever the free values are.
    lam = pytensor.function(model.value_vars, model["lam"], on_unused_input="ignore")(
        *[np.random.default_rng(0).normal(size=point[v.name].shape) for v in model.value_vars]
    )
    block = lam[:, :4]
    assert np.all(block[~np.eye(4, dtype=bool)] == 0) and np.all(np.diag(block) > 0)


def test_n_params_matches_paper():
    assert n_params(4, 12) == 78
    assert n_params(1, 12) == 3 + 1 + 11 + 24


def test_K_validation(paper, small_sim):
    with pytest.raises(DataError, match="K=13 needs 13 anchor benchmarks"):
        bl.build_model(paper, K=13)
    with pytest.raises(DataError, match="positive integer"):
        bl.build_model(paper, K=0)
    with pytest.raises(ValueError, match="unknown prior setting"):
        bl.build_model(paper, K=2, priors={"beta_sd": 1.0})


@pytest.mark.parametrize("K", [2, 3, 4])
def test_corr_transform_round_trip_and_jacobian(K):
    rng = np.random.default_rng(K)
    z = pt.vector("z")
    L, log_jac = corr_cholesky(z, K)
    f = pytensor.function([z], [L, log_jac])
    z0 = rng.normal(size=K * (K - 1) // 2)
    L0, lj = f(z0)
    corr = L0 @ L0.T
    np.testing.assert_allclose(np.diag(corr), 1.0, atol=1e-12)
    assert np.linalg.eigvalsh(corr).min() > 0
    np.testing.assert_allclose(corr_to_z(corr), z0, atol=1e-10)
    # The log-Jacobian of z -> strictly lower entries of L, by finite differences.
    tril = np.tril_indices(K, -1)
    h = 1e-6
    J = np.column_stack(
        [(f(z0 + h * e)[0][tril] - f(z0 - h * e)[0][tril]) / (2 * h) for e in np.eye(len(z0))]
    )
    np.testing.assert_allclose(lj, np.log(abs(np.linalg.det(J))), atol=1e-6)


def test_lkj_two_by_two():
    # For K=2 the LKJ(eta) density of r is proportional to (1 - r^2)^(eta - 1).
    r, eta = 0.6, 3.0
    L = np.linalg.cholesky(np.array([[1, r], [r, 1]]))
    val = lkj_cholesky_logp(pt.as_tensor(L), eta).eval()
    assert np.isclose(val, (eta - 1) * np.log(1 - r**2))


def test_loglik_matches_scipy(small_sim):
    data, _ = small_sim
    K = 2
    model = bl.build_model(data, K=K)
    rng = np.random.default_rng(5)
    J, F = data.n_benchmarks, len(data.families)
    beta = rng.normal(size=(3, K))
    lam_anchor = rng.uniform(0.5, 1.5, K)
    lam_free = rng.normal(size=(K, J - K))
    b = rng.normal(size=J)
    phi = rng.uniform(10, 100, J)
    corr = np.array([[1.0, -0.4], [-0.4, 1.0]])
    alpha_z = rng.normal(size=(F, K))
    point = {
        "beta": beta, "lam_anchor_log__": np.log(lam_anchor), "lam_free": lam_free, "b": b,
        "corr_z": corr_to_z(corr), "alpha_z": alpha_z, "phi_log__": np.log(phi),
    }  # fmt: skip
    ours = model.compile_logp(vars=[model["y"]], sum=True)(point)

    lam = np.hstack([np.diag(lam_anchor), lam_free])
    alpha = alpha_z @ np.linalg.cholesky(corr).T
    theta = alpha[data.family_index] + data.x @ beta
    mu = data.floors + (1 - data.floors) * scipy.special.expit(theta @ lam + b)
    dens = scipy.stats.beta.logpdf(data.scores, phi * mu, phi * (1 - mu))
    expected = np.nansum(np.where(data.observed, dens, np.nan))
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


def test_covariate_dispersion_variant(small_sim):
    data, _ = small_sim
    model = bl.build_model(data, K=2, dispersion="covariates")
    assert model.named_vars_to_dims["phi"] == ("model", "benchmark")
    assert {"phi_a", "phi_s"} <= set(model.named_vars)
    assert np.isfinite(model.compile_logp()(model.initial_point()))
    with pytest.raises(ValueError, match="dispersion"):
        bl.build_model(data, K=2, dispersion="family")


def test_simulate_is_seeded_and_fit_ready(small_sim):
    from bayes_lsl.simulate import random_design, random_parameters, simulate

    data, truth = small_sim
    again, _ = simulate(random_parameters(K=2, J=6, seed=1), random_design(30, 4, seed=1), missing=0.15, seed=2)
    np.testing.assert_array_equal(again.scores, data.scores)
    assert truth["alpha"].shape == (30, 2)
    assert 0.75 < data.observed.mean() < 0.95
    # Round trip through a frame, as a user would save and reload it.
    reloaded = bl.ScalingData.from_frame(data.to_frame(), anchors=data.benchmarks)
    np.testing.assert_array_equal(reloaded.scores, data.scores)
    assert np.isfinite(bl.build_model(reloaded, K=2).compile_logp()(bl.build_model(reloaded, K=2).initial_point()))


def test_partial_parameterization_has_the_same_density(small_sim):
    """The NUTS parameterization is the same model as the default.

    Some families lose all scores on an anchor (so that their effect on that skill is
    sampled non-centered), one on both. At matched points (the same beta, lam, b, phi,
    corr, alpha) the log density on the sampler's scale differs from the default's by a
    constant only, plus the log-Jacobian of the change of variables: per skill, -(n_k - 1)
    log s_k for the n_k centered effects in anchor units; per family, log|L_{U|O}| for the
    non-centered effects U given the centered O; -F log|L| for the default's
    alpha = z L'; (J - K - p) sum log s for the loadings and slopes in anchor units.
    b, alpha, beta and lam come back as the same deterministics.
    """
    from bayes_lsl.model.likelihood import corr_cholesky
    from bayes_lsl.model.parameterization import FamilyLayout, partially_centered_values

    data, _ = small_sim
    scores = data.scores.copy()
    fam = data.family_index
    scores[np.isin(fam, [0, 1, 2, 3]), 0] = np.nan  # no skill-1 anchor scores
    scores[np.isin(fam, [4, 5, 6]), 1] = np.nan  # no skill-2 anchor scores
    scores[fam == 7, :2] = np.nan  # neither
    data = dataclasses.replace(data, scores=scores)
    K, J, F = 2, data.n_benchmarks, len(data.families)
    layout = FamilyLayout.from_data(data, K)
    assert layout.informed[:4].tolist() == [[False, True]] * 4 and layout.informed[7].tolist() == [False, False]
    assert layout.informed[8:].all()  # the other families keep both anchors
    default = bl.build_model(data, K=K)
    other = bl.build_model(data, K=K, centered="partial")
    assert other.named_vars_to_dims["b"] == ("benchmark",)
    assert other.named_vars_to_dims["alpha"] == ("family", "skill")
    logp_default, logp_other = default.compile_logp(), other.compile_logp()
    natural_fn = pytensor.function(
        other.value_vars,
        other.replace_rvs_by_values([other[n] for n in ("b", "alpha", "beta", "lam")]),
        on_unused_input="ignore",
    )
    rng = np.random.default_rng(11)
    diffs = []
    for _ in range(3):
        corr_z = rng.normal(scale=0.7, size=K * (K - 1) // 2)
        L = pytensor.function([], corr_cholesky(pt.as_tensor(corr_z), K)[0])()
        lam_anchor, lam_free = rng.uniform(0.5, 1.5, K), rng.normal(size=(K, J - K))
        alpha_z = rng.normal(size=(F, K)) + rng.normal(size=K)  # a non-zero mean over families
        alpha, b = alpha_z @ L.T, rng.normal(size=J)
        common = {"beta": rng.normal(size=(3, K)), "lam_anchor_log__": np.log(lam_anchor), "lam_free": lam_free,
                  "corr_z": corr_z, "phi_log__": np.log(rng.uniform(10, 100, J))}  # fmt: skip
        lam = np.hstack([np.diag(lam_anchor), lam_free])
        ours = partially_centered_values(
            {"alpha": alpha, "b": b, "lam": lam, "corr": L @ L.T, "beta": common["beta"]}, layout
        )
        ours["lam_anchor_log__"] = np.log(ours.pop("lam_anchor"))
        point = {v.name: (common | ours)[v.name] for v in other.value_vars}
        for got, expected in zip(natural_fn(*point.values()), (b, alpha, common["beta"], lam), strict=True):
            np.testing.assert_allclose(got, expected, atol=1e-10)
        # Residual sd of skill 1 given skill 2 (and the reverse): sqrt(1 - r^2); both: |L|.
        r = (L @ L.T)[0, 1]
        n_seen = layout.informed.sum(axis=1)
        n_u = {"one": int((n_seen == 1).sum()), "both": int((n_seen == 0).sum())}
        jac = (
            -sum((layout.informed[:, k].sum() - 1) * np.log(lam_anchor[k]) for k in range(K))
            + n_u["one"] * 0.5 * np.log(1 - r**2) + n_u["both"] * np.log(np.diag(L)).sum()
            - F * np.log(np.diag(L)).sum() + (J - K - 3) * np.log(lam_anchor).sum()
        )  # fmt: skip
        diffs.append(logp_other(point) - logp_default(common | {"b": b, "alpha_z": alpha_z}) - jac)
    np.testing.assert_allclose(diffs, diffs[0], atol=1e-8)

    unanchored = dataclasses.replace(data, scores=np.where(np.arange(J) == 1, np.nan, scores))
    with pytest.raises(DataError, match="anchor"):
        FamilyLayout.from_data(unanchored, K)


def test_unknown_parameterization(small_sim):
    with pytest.raises(ValueError, match="centered must be"):
        bl.build_model(small_sim[0], K=2, centered="zero")


# ------------------------------------------------ the correlation's prior, a proper distribution
def _corr_z_logp_fn(K, eta=2.0):
    import pymc as pm

    z = pt.vector("z")
    with pm.Model(coords={"corr_entry": range(K * (K - 1) // 2)}):
        from bayes_lsl.model.likelihood import lkj_corr_z

        rv = lkj_corr_z("corr_z", K, eta, dims="corr_entry")
    return pytensor.function([z], pm.logp(rv, z))


@pytest.mark.parametrize("K", [2, 3, 4])
def test_corr_z_logp_is_the_former_lkj_potential(K):
    # The former model: a Flat corr_z (log-density 0) plus the potential
    # lkj_cholesky_logp(L) + log-Jacobian; the CustomDist must give the same value.
    z = pt.vector("z")
    L, log_jac = corr_cholesky(z, K)
    old = pytensor.function([z], lkj_cholesky_logp(L, 2.0) + log_jac)
    new = _corr_z_logp_fn(K)
    for z0 in np.random.default_rng(K).normal(scale=1.5, size=(5, K * (K - 1) // 2)):
        np.testing.assert_allclose(new(z0), old(z0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("K", [2, 4])
def test_corr_z_density_is_that_of_its_draws(K):
    # The draws are independent partial correlations tanh(z) ~ 2 Beta(a, a) - 1; the
    # log-density of z under them differs from the model's logp only by a constant.
    from bayes_lsl.model.likelihood import lkj_cpc_shapes

    eta = 1.7
    a = lkj_cpc_shapes(K, eta)
    logp = _corr_z_logp_fn(K, eta)
    diffs = []
    for z0 in np.random.default_rng(0).normal(scale=1.2, size=(6, len(a))):
        r = np.tanh(z0)
        draws_logp = np.sum(scipy.stats.beta.logpdf((r + 1) / 2, a, a) - np.log(2) + np.log1p(-(r**2)))
        diffs.append(logp(z0) - draws_logp)
    np.testing.assert_allclose(diffs, diffs[0], atol=1e-9)


def test_prior_correlations_have_the_lkj_marginal(paper):
    # Under LKJ(eta) in K dimensions every correlation is 2 Beta(b, b) - 1 with
    # b = eta - 1 + K/2. One-sample KS tests of the model's own prior draws, seeded,
    # at level 0.01 / 6 (Bonferroni over the 6 entries).
    import pymc as pm

    K, eta, n = 4, 2.0, 4000
    model = bl.build_model(paper, K=K, priors={"lkj_eta": eta})
    corr = pm.draw(model["corr"], draws=n, random_seed=11)
    b = eta - 1 + K / 2
    for i, j in zip(*np.tril_indices(K, -1), strict=True):
        p = scipy.stats.kstest((corr[:, i, j] + 1) / 2, scipy.stats.beta(b, b).cdf).pvalue
        assert p > 0.01 / 6, (i, j, p)
    # The same test tells a wrong shape apart (power check): LKJ(1) has b = 2, not 3.
    wrong = scipy.stats.kstest((corr[:, 3, 2] + 1) / 2, scipy.stats.beta(2.0, 2.0).cdf).pvalue
    assert wrong < 1e-6
