"""The ``map`` and ``advi`` methods on simulated data."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayes_lsl import build_model, fit
from bayes_lsl.fitting.approx import elbo_convergence
from bayes_lsl.fitting.draws import initial_values
from bayes_lsl.fitting.result import POSTERIOR_VARS

K = 2  # skills of the shared fits (conftest.FIT_K)


def _layout(tree: xr.DataTree) -> dict:
    post = tree["posterior"].to_dataset()
    return {name: (post[name].dims, {d: post.sizes[d] for d in post[name].dims if d not in ("chain", "draw")})
            for name in post.data_vars}  # fmt: skip


def test_posterior_layout_is_the_same_for_every_method(map_fit, advi_fit, nuts_fit):
    assert set(map_fit["posterior"].data_vars) == set(POSTERIOR_VARS)
    assert _layout(map_fit) == _layout(advi_fit) == _layout(nuts_fit)
    assert map_fit["posterior"].sizes["chain"] == map_fit["posterior"].sizes["draw"] == 1
    assert advi_fit["posterior"].sizes["chain"] == 1 and advi_fit["posterior"].sizes["draw"] == 500


def test_log_likelihood_groups(small_sim, map_fit, advi_fit):
    n_cells = int(small_sim[0].observed.sum())
    assert dict(map_fit["log_likelihood"]["y"].sizes) == {"chain": 1, "draw": 1, "cell": n_cells}
    assert dict(advi_fit["log_likelihood"]["y"].sizes) == {"chain": 1, "draw": 500, "cell": n_cells}
    assert np.isfinite(advi_fit["log_likelihood"]["y"].values).all()


def _joint_logp(model, points: list[dict]) -> list[float]:
    """log p(parameters, alpha, y) at constrained values, without Jacobian (as find_MAP)."""
    logp = model.compile_fn(model.logp(jacobian=False), mode="FAST_COMPILE")  # one-off: skip C compilation
    out = []
    for point in points:
        values = {}
        for rv in model.free_RVs:
            # the only transforms here are the log of the positive lam_anchor and phi
            log_scale = model.rvs_to_transforms.get(rv) is not None
            values[model.rvs_to_values[rv].name] = np.log(point[rv.name]) if log_scale else point[rv.name]
        out.append(float(logp(values)))
    return out


def test_map_is_a_mode(small_sim, map_fit):
    """The optimum beats the truth (with its true family effects) in joint density."""
    data, truth = small_sim
    model = build_model(data, K=K)
    assert {type(t).__name__ for t in model.rvs_to_transforms.values() if t is not None} == {"LogTransform"}
    reported = {v: map_fit["posterior"][v].values[0, 0] for v in ("beta", "b", "phi", "lam", "corr", "alpha")}
    at_truth, at_map = _joint_logp(model, [initial_values(model, truth), initial_values(model, reported)])
    assert map_fit.attrs["converged"]
    assert map_fit.attrs["map_logp"] > at_truth
    # map_logp is the joint density at the reported point
    assert at_map == pytest.approx(map_fit.attrs["map_logp"], abs=1e-6)


def test_map_same_seed_same_numbers(small_sim, map_fit):
    again = fit(small_sim[0], K=K, method="map", seed=0, progress=False)
    xr.testing.assert_equal(again["posterior"].to_dataset(), map_fit["posterior"].to_dataset())


def test_advi_same_seed_same_numbers(small_sim):
    with pytest.warns(UserWarning, match="did not converge"):  # 300 iterations are too few
        a = fit(small_sim[0], K=K, method="advi", seed=3, progress=False, n=300, draws=50)
    with pytest.warns(UserWarning, match="did not converge"):
        b = fit(small_sim[0], K=K, method="advi", seed=3, progress=False, n=300, draws=50)
    assert not a.attrs["elbo_converged"]
    xr.testing.assert_equal(a["posterior"].to_dataset(), b["posterior"].to_dataset())


def test_advi_recovers_truth(small_sim, advi_fit):
    """Posterior means of ``lam`` and ``b`` near the truth.

    The truth is adjusted for the realized family effects: with 30 families their sample
    mean ``m`` and standard deviation ``s`` differ from 0 and 1 by ~0.2 and ~0.13, and the
    data identify ``b + lam' m`` and ``lam * s``, not ``b`` and ``lam``. What is left is
    the estimation error from ~600 scores of precision 30-150 (posterior sds ~0.05-0.1),
    so 0.2 is 2-4 posterior sds.
    """
    data, truth = small_sim
    assert advi_fit.attrs["elbo_converged"]
    alpha = truth["alpha"][data.family_index]  # per model: the data see families through their models
    m, s = alpha.mean(axis=0), alpha.std(axis=0)
    lam_eff = truth["lam"] * s[:, None]
    b_eff = truth["b"] + m @ truth["lam"]
    post = advi_fit["posterior"]
    np.testing.assert_allclose(post["lam"].mean(("chain", "draw")).values, lam_eff, atol=0.2)
    np.testing.assert_allclose(post["b"].mean(("chain", "draw")).values, b_eff, atol=0.2)


def test_elbo_convergence_judges_trend_against_noise():
    rng = np.random.default_rng(0)
    flat = -1000 + rng.normal(0, 5, size=5000)
    rising = flat - np.linspace(0, 200, 5000)  # the loss falls by 20 per window
    assert elbo_convergence(flat) == (pytest.approx(1000, abs=1), True)
    assert not elbo_convergence(rising)[1]
    assert not elbo_convergence(np.r_[flat[:-1], np.nan])[1]


def test_initial_values_converts_reported_variables(small_sim):
    data, truth = small_sim
    model = build_model(data, K=K)
    init = initial_values(model, truth)
    assert set(init) == {rv.name for rv in model.free_RVs}
    L = np.linalg.cholesky(truth["corr"])
    np.testing.assert_allclose(init["alpha_z"] @ L.T, truth["alpha"])
    with pytest.raises(ValueError, match="unknown variable"):
        initial_values(model, {"lamb": truth["lam"]})
    with pytest.raises(ValueError, match="shape"):
        initial_values(model, {"b": truth["b"][:3]})


@pytest.mark.slow
def test_full_rank_advi_started_at_the_map(small_sim, map_fit):
    fitted = fit(small_sim[0], K=K, method="advi", seed=0, progress=False, full_rank=True, n=3000, draws=200,
                 init=map_fit)  # fmt: skip
    assert fitted.attrs["advi"] == "fullrank"
    assert np.isfinite(fitted["posterior"]["lam"].values).all()
    assert np.isfinite(fitted["log_likelihood"]["y"].values).all()
