"""The ``nuts`` method: a short nutpie run on simulated data."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr

from bayes_lsl import fit
from bayes_lsl.fitting.nuts import DispersedStarts, minor_mode_chains, named_init
from bayes_lsl.fitting.result import POSTERIOR_VARS

K = 2  # skills of the shared fits (conftest.FIT_K)


def test_nuts_groups_and_attrs(small_sim, nuts_fit):
    n_cells = int(small_sim[0].observed.sum())
    assert set(nuts_fit["posterior"].data_vars) == set(POSTERIOR_VARS)
    assert dict(nuts_fit["log_likelihood"]["y"].sizes) == {"chain": 2, "draw": 200, "cell": n_cells}
    assert np.isfinite(nuts_fit["log_likelihood"]["y"].values).all()
    stats = nuts_fit["sample_stats"]
    assert {"diverging", "lp", "energy"} <= set(stats.data_vars)
    assert stats["lp"].sizes == {"chain": 2, "draw": 200}
    attrs = nuts_fit.attrs
    assert attrs["sampler"] == "nutpie" and attrs["wall_time_s"] > 0
    assert attrs["n_divergences"] == int(stats["diverging"].sum())
    assert len(attrs["chain_mean_lp"]) == 2 and isinstance(attrs["minor_mode_chains"], list)


def test_log_likelihood_matches_the_posterior(small_sim, nuts_fit):
    """The pointwise log-likelihood is the Beta density of the scores at each draw."""
    from scipy import stats

    data = small_sim[0]
    post = nuts_fit["posterior"].isel(chain=1, draw=17)
    rows, cols = np.nonzero(data.observed)
    eta = (post["theta"].values[rows] * post["lam"].values.T[cols]).sum(axis=1) + post["b"].values[cols]
    floor, phi = data.floors[cols], post["phi"].values[cols]
    mu = floor + (1 - floor) / (1 + np.exp(-eta))
    expected = stats.beta.logpdf(data.scores[rows, cols], phi * mu, phi * (1 - mu))
    np.testing.assert_allclose(nuts_fit["log_likelihood"]["y"].isel(chain=1, draw=17).values, expected, rtol=1e-6)


def test_minor_mode_chains_flags_low_chains():
    lp = xr.DataArray(np.array([[100.0, 101], [62, 64], [99, 103], [95, 96]]), dims=("chain", "draw"))
    chains, means = minor_mode_chains(lp, gap=10)
    assert chains == [1] and means == [100.5, 63.0, 101.0, 95.5]


@pytest.fixture
def no_mle(monkeypatch):
    """An MLE fit fails the test: a sampler that cannot run must say so before the MLE that starts its chains."""
    import bayes_lsl.fitting as fitting

    def fail(*args, **kwargs):
        raise AssertionError("the MLE was fitted before the sampler was checked")

    monkeypatch.setitem(fitting.METHODS, "mle", fail)


def test_unknown_sampler(small_sim, no_mle):
    with pytest.raises(ValueError, match="unknown sampler"):
        fit(small_sim[0], K=K, method="nuts", sampler="stan", progress=False)


@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="jax is installed")
def test_numpyro_without_jax_says_what_to_install(small_sim, no_mle):
    with pytest.raises(ImportError, match="numpyro"):
        fit(small_sim[0], K=K, method="nuts", sampler="numpyro", progress=False, chains=1, tune=10, draws=10)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_nuts_started_at_given_values(small_sim, map_fit, sampler):
    """Chains started at a fit (here the MAP), without jitter, run and agree with each other."""
    fitted = fit(small_sim[0], K=K, method="nuts", sampler=sampler, seed=1, progress=False, chains=2, tune=100,
                 draws=100, init=map_fit)  # fmt: skip
    assert fitted.attrs["minor_mode_chains"] == []
    lam = fitted["posterior"]["lam"].mean("draw")
    np.testing.assert_allclose(lam.isel(chain=0), lam.isel(chain=1), atol=0.3)


def test_short_nuts_recovers_truth(small_sim, nuts_fit):
    """Posterior means of the intercepts and loadings lie near the simulating values.

    Judged against the posterior spread: |mean - truth| < 3 sd for nearly every entry
    (a calibrated posterior misses that by chance for about 0.3% of entries).
    """
    _, truth = small_sim
    post = nuts_fit.posterior
    z = []
    for name in ("b", "lam"):
        mean, sd = post[name].mean(("chain", "draw")).values, post[name].std(("chain", "draw")).values
        free = sd > 1e-8
        z.append(np.abs(mean[free] - truth[name][free]) / sd[free])
    z = np.concatenate(z)
    assert np.mean(z < 3) >= 0.9, np.round(z, 2)


def test_partial_starting_values_reproduce_the_fit(small_sim, mle_fit):
    """Starting values from an MLE, converted to the partially centered parameterization's free
    variables, give back the MLE's beta, lam, b, corr and alpha."""
    import pytensor

    from bayes_lsl import build_model
    from bayes_lsl.fitting.nuts import _initial_values

    model = build_model(small_sim[0], K=K, centered="partial")
    init = _initial_values(model, small_sim[0], mle_fit)
    assert {rv.name for rv in model.free_RVs} <= init.keys()
    point = model.initial_point()
    for rv in model.free_RVs:  # constrained starting values -> the sampler's scale
        value = model.rvs_to_values[rv]
        transform = model.rvs_to_transforms.get(rv)
        start = pt.as_tensor(init[rv.name])
        point[value.name] = (transform.forward(start, *rv.owner.inputs) if transform else start).eval()
    names = ("beta", "lam", "b", "corr", "alpha")
    fn = pytensor.function(model.value_vars, model.replace_rvs_by_values([model[n] for n in names]),
                           on_unused_input="ignore")  # fmt: skip
    for name, got in zip(names, fn(*[point[v.name] for v in model.value_vars]), strict=True):
        np.testing.assert_allclose(got, mle_fit.posterior[name].values[0, 0], atol=1e-8, err_msg=name)


@pytest.mark.slow
def test_nuts_in_the_partial_parameterization(small_sim, mle_fit):
    """A short run from the MLE: same posterior layout, chains agree, no minor-mode false alarm."""
    fitted = fit(small_sim[0], K=K, method="nuts", centered="partial", init=mle_fit, seed=2, progress=False,
                 chains=2, tune=200, draws=200)  # fmt: skip
    assert set(fitted["posterior"].data_vars) == set(POSTERIOR_VARS)
    assert fitted.attrs["minor_mode_chains"] == [] and len(fitted.attrs["chain_mean_loglik"]) == 2
    lam = fitted["posterior"]["lam"].mean("draw")
    np.testing.assert_allclose(lam.isel(chain=0), lam.isel(chain=1), atol=0.3)


@pytest.mark.parametrize(("method", "init"), [("nuts", "prior"), ("advi", "mle"), ("advi", "mle-dispersed")])
def test_named_starts_are_for_nuts_only(small_sim, method, init):
    with pytest.raises(ValueError, match="named start"):
        fit(small_sim[0], K=K, method=method, init=init, progress=False)


def test_old_init_name_still_works_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="init='mle-point'"):
        assert named_init("mle") == "mle-point"
    assert named_init("mle-dispersed") == "mle-dispersed" and named_init("default") == "default"


def test_the_default_nuts_fit_starts_dispersed_around_the_mle(nuts_fit):
    """bl.fit(..., method="nuts") with no init fits the MLE and starts each chain at its own draw."""
    assert nuts_fit.attrs["init"] == "mle-dispersed"
    for key in ("max_r_hat", "min_ess_bulk", "min_ess_tail"):
        assert np.isfinite(nuts_fit.attrs[key])
    assert isinstance(nuts_fit.attrs["convergence_problems"], str)


def test_dispersed_starts_spread_like_the_mle_and_are_seeded(small_sim, mle_fit):
    """Starts drawn around the MLE: finite log density in the sampled (partial)
    parameterization, one per seed and the same for the same seed, and spread as the MLE's
    standard errors say (the intercepts' mean over 400 draws within 4 standard errors of
    the mean, their sd within 20% of the MLE's; both seeded)."""
    from bayes_lsl import build_model

    model = build_model(small_sim[0], K=K, centered="partial")
    starts = DispersedStarts(model, small_sim[0], mle_fit)
    logp = model.compile_logp()
    a, b = starts.unconstrained(11), starts.unconstrained(12)
    np.testing.assert_array_equal(a, starts.unconstrained(11))
    assert not np.allclose(a, b)
    point = model.initial_point()
    k = 0
    for rv in model.free_RVs:  # nutpie's flat vector, laid out as the free variables
        name = model.rvs_to_values[rv].name
        n = point[name].size
        point[name] = a[k : k + n].reshape(point[name].shape)
        k += n
    assert k == len(a) and np.isfinite(logp(point))

    rng = np.random.default_rng(0)
    n = 400
    plain = DispersedStarts(build_model(small_sim[0], K=K, centered=False), small_sim[0], mle_fit)
    b_draws = np.array([plain.draw(rng)["b"] for _ in range(n)])
    b_hat = mle_fit.posterior["b"].values[0, 0]
    se = mle_fit["mle"]["b_se"].values
    assert np.all(np.abs(b_draws.mean(0) - b_hat) < 4 * se / np.sqrt(n))
    np.testing.assert_allclose(b_draws.std(0), se, rtol=0.2)


def test_cli_nuts_passes_only_what_was_given(monkeypatch):
    """`bayes-lsl fit --method nuts` calls fit exactly as bl.fit(data, K, method="nuts") unless told otherwise."""
    import bayes_lsl.fitting
    from bayes_lsl.cli import main

    calls = []

    def fake_fit(data, **kwargs):
        calls.append(kwargs)
        raise KeyboardInterrupt  # stop before saving

    monkeypatch.setattr(bayes_lsl.fitting, "fit", fake_fit)
    for extra in ([], ["--init", "mle-point", "--draws", "50"]):
        with pytest.raises(KeyboardInterrupt):
            main(["fit", "--data", "example", "--K", "2", "--method", "nuts", "--quiet", *extra])
    assert calls[0] == {"K": 2, "method": "nuts", "seed": 0, "progress": False}
    assert calls[1]["init"] == "mle-point" and calls[1]["draws"] == 50 and "tune" not in calls[1]


def test_parameter_table_labels_agree_across_methods(nuts_fit, mle_fit):
    """The same entry gets the same label from every method, and the label names its value
    (a Dataset orders dims by its coordinates, which differ between parameterizations)."""
    from bayes_lsl.report import parameter_table

    ours, mle = parameter_table(nuts_fit).set_index("parameter"), parameter_table(mle_fit).set_index("parameter")
    assert list(ours.index) == list(mle.index)
    beta = nuts_fit.posterior["beta"].sel(covariate="log_tokens", skill="skill_2").mean()
    assert np.isclose(ours.loc["beta[log_tokens, skill_2]", "estimate"], float(beta))
    lam = mle_fit.posterior["lam"].isel(chain=0, draw=0).sel(skill="skill_1")
    assert np.isclose(mle.loc[f"lam[skill_1, {lam.benchmark.values[-1]}]", "estimate"], float(lam[-1]))


def test_default_nuts_centering_follows_the_anchor_loadings(mle_fit):
    """The default nuts parameterization: "partial" where the MLE pins every anchor loading,
    centered where one is poorly determined (the standard error of its log above
    ANCHOR_LOG_SE_MAX, or not finite), "partial" without an MLE to judge by."""
    from bayes_lsl.fitting.nuts import ANCHOR_LOG_SE_MAX, default_centering

    assert default_centering(mle_fit) == "partial"
    mle = mle_fit["mle"].to_dataset()
    names = [str(n) for n in mle["param"].values]
    k = names.index("lam_anchor_log__[1]")
    assert np.sqrt(mle["theta_cov"].values[k, k]) < ANCHOR_LOG_SE_MAX  # the fixture's own fit is "partial"

    def with_variance(var):
        cov = mle["theta_cov"].values.copy()
        cov[k, k] = var
        return xr.DataTree.from_dict({"/": xr.Dataset(), "/mle": mle.assign(theta_cov=(mle["theta_cov"].dims, cov))})

    assert default_centering(with_variance((0.9 * ANCHOR_LOG_SE_MAX) ** 2)) == "partial"
    assert default_centering(with_variance((1.1 * ANCHOR_LOG_SE_MAX) ** 2)) is True
    assert default_centering(with_variance(np.nan)) is True
    assert default_centering(None) == "partial"
    assert default_centering({"beta": np.zeros((3, 2))}) == "partial"


@pytest.mark.slow  # two short NUTS runs, one compiling numba's functions afresh: 124 s (2026-11-26, 2 cores)
def test_nuts_draws_do_not_depend_on_the_compile_cache(small_sim):
    """The same seed gives the same draws whether numba compiles the log density afresh or
    loads it from its cache. With fastmath on they differed (see ``_run_nutpie``): this test
    fails then (benchmarks/README.md, "Bit-reproducible NUTS")."""
    options = {"method": "nuts", "init": "default", "chains": 1, "tune": 60, "draws": 60, "seed": 5, "progress": False}
    with pytensor.config.change_flags(numba__cache=False):
        fresh = fit(small_sim[0], K, **options)
    cached = fit(small_sim[0], K, **options)
    for name in ("beta", "lam", "b", "phi"):
        np.testing.assert_array_equal(fresh["posterior"][name].values, cached["posterior"][name].values)
