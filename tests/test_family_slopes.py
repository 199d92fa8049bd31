"""Random family slopes (``family_slopes=``): the default model unchanged, the errors, predictions, recovery."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_lsl as bl
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.result import FitInfo
from bayes_lsl.model.priors import DEFAULT_PRIORS
from bayes_lsl.simulate import random_design, random_parameters, simulate

K, J = 2, 6
#: The slopes' sd of the simulated families: a family's log-size slope within about +-0.8
#: of the common one on skill 1, +-0.6 on skill 2.
SLOPE_SD = np.array([[0.4, 0.3]])


def _simulated(n_families: int, per_family: int, seed: int):
    """K = 2, J = 6, the design [log size, log tokens], family slopes on log size, 10% missing."""
    params = random_parameters(K=K, J=J, seed=seed, p=2) | {"slope_sd": SLOPE_SD}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scores below a floor are the model's own noise
        return simulate(params, random_design(n_families, per_family, seed=seed), missing=0.1, seed=seed + 1,
                        covariates="no-interaction", family_slopes="log_size")  # fmt: skip


@pytest.fixture(scope="module")
def slope_sim():
    return _simulated(40, 5, seed=3)


@pytest.fixture(scope="module")
def slope_map(slope_sim):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return bl.fit(slope_sim[0], K=K, method="map", seed=0, progress=False, family_slopes="log_size")


def _logp_and_theta(model, point):
    """The model's log density, theta, alpha and beta at ``point`` (values of its value variables)."""
    outs = [model.logp(), *model.replace_rvs_by_values([model["theta"], model["alpha"], model["beta"]])]
    return model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore", mode="FAST_COMPILE")(point)


# ---------------------------------------------------------- the model
@pytest.mark.parametrize("centered", [False, True, "partial"])
def test_slopes_add_to_theta_and_nothing_else(small_sim, centered):
    """Every parameterization: theta gains u_l' x on the chosen term, and the density gains only the slopes' priors."""
    data, _ = small_sim
    plain = bl.build_model(data, K=K, centered=centered)
    assert "slope_term" not in plain.coords and not {"slope_sd", "slope_z", "family_slope"} & set(plain.named_vars)
    model = bl.build_model(data, K=K, centered=centered, family_slopes="log_size")
    assert model.coords["slope_term"] == ("log_size",)
    assert {v.name for v in model.free_RVs} - {v.name for v in plain.free_RVs} == {"slope_sd", "slope_z"}

    rng = np.random.default_rng(0)
    point = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in model.initial_point().items()}
    shared = {k: v for k, v in point.items() if k in plain.initial_point()}
    logp0, theta0, alpha0, beta0 = _logp_and_theta(plain, shared)
    logp, theta, alpha, beta = _logp_and_theta(model, point)
    np.testing.assert_array_equal(alpha, alpha0)
    np.testing.assert_array_equal(beta, beta0)
    sd = np.exp(point["slope_sd_log__"])  # (slope_term, skill)
    u = sd * point["slope_z"]  # (family, slope_term, skill)
    x_size = data.x[:, list(data.terms).index("log_size")]
    np.testing.assert_allclose(theta - theta0, x_size[:, None] * u[data.family_index, 0], rtol=1e-10, atol=1e-12)
    # The slopes' priors: half-normal sd (with its log transform's Jacobian) and standard-normal z.
    # With z = 0 the likelihood is the plain model's: the density differs by the slopes'
    # priors alone, half-normal sd (with its log transform's Jacobian) and standard-normal z.
    s = DEFAULT_PRIORS["slope_sd_sigma"]
    prior = (np.log(2 / np.pi) / 2 - np.log(s) - sd**2 / (2 * s**2) + np.log(sd)).sum()
    prior += -0.5 * np.log(2 * np.pi) * point["slope_z"].size
    logp_zero, *_ = _logp_and_theta(model, point | {"slope_z": np.zeros_like(point["slope_z"])})
    np.testing.assert_allclose(logp_zero - logp0, prior, rtol=1e-9)


def test_default_fit_records_no_slopes(map_fit):
    assert FitInfo.from_tree(map_fit).family_slopes is None
    assert "slope_sd" not in map_fit.posterior and "family_slope" not in map_fit.posterior
    # Files written before the option read as None.
    old = map_fit.copy()
    old.attrs = {k: v for k, v in map_fit.attrs.items() if k != "family_slopes"} | {"format_version": 3}
    assert FitInfo.from_tree(old).family_slopes is None


# ---------------------------------------------------------- errors
def test_unknown_terms_are_named(small_sim):
    data, _ = small_sim
    for bad in ("log_sizes", ["log_size", "params"]):
        with pytest.raises(BayesLslError, match=r"not in the fit's design.*log_size', 'log_tokens'"):
            bl.fit(data, K=K, method="map", progress=False, family_slopes=bad)
    with pytest.raises(BayesLslError, match="log_compute"):
        bl.build_model(data, K=K, family_slopes="log_compute")


def test_mle_refuses_family_slopes(small_sim):
    with pytest.raises(BayesLslError, match=r"family slopes add .* dimensions.*'nuts', 'advi' or 'map'"):
        bl.fit(small_sim[0], K=K, method="mle", progress=False, family_slopes="log_size")


def test_cli_option(capsys):
    from bayes_lsl.cli import main

    assert main(["fit", "--data", "example", "--K", "2", "--method", "mle", "--family-slopes", "log_size",
                 "--quiet"]) == 2  # fmt: skip
    assert "family slopes add" in capsys.readouterr().err
    assert main(["fit", "--data", "example", "--K", "2", "--method", "map", "--family-slopes", "log_size, size",
                 "--quiet"]) == 2  # fmt: skip
    assert "['size'] are not in the fit's design" in capsys.readouterr().err


def test_simulate_needs_the_terms_of_slope_sd():
    params = random_parameters(K=K, J=J, seed=0) | {"slope_sd": SLOPE_SD}
    with pytest.raises(BayesLslError, match="family_slopes"):
        simulate(params, random_design(5, 3, seed=0))


# ---------------------------------------------------------- fit and predictions
def test_map_fit_and_predictions(slope_sim, slope_map, map_fit, tmp_path):
    data, truth = slope_sim
    info = FitInfo.from_tree(slope_map)
    assert info.family_slopes == ("log_size",)
    slopes = slope_map.posterior["family_slope"].isel(chain=0, draw=0)
    assert slopes.dims == ("family", "slope_term", "skill") and slopes.shape == (40, 1, K)
    # The families' slopes are found (their truth drawn with sd 0.3-0.4; the scale of skills is the model's).
    assert np.corrcoef(slopes.values.ravel(), truth["family_slope"].ravel())[0, 1] > 0.5
    bl.save_fit(slope_map, tmp_path / "slopes.nc")
    loaded = bl.load_fit(tmp_path / "slopes.nc")
    assert FitInfo.from_tree(loaded).family_slopes == ("log_size",)

    seen = data.families[0]
    sizes = [1.0, 300.0]  # near the design's middle (log-uniform 0.1-100 B) and beyond its top
    new = pd.DataFrame({"model": ["n-small", "n-big", "s-small", "s-big"], "family": ["new"] * 2 + [seen] * 2,
                        "size": sizes * 2, "tokens": 2.0})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a map fit is a point; 300 B is an extrapolation
        draws = bl.predict_draws(slope_map, new, n_draws=2000, seed=1).draws
        plain = bl.predict_draws(map_fit, new, n_draws=2000, seed=1).draws
    # A seen family: its own slope (a map fit: a point), so theta is exact.
    x = info.standardize(new["size"], new["tokens"])
    beta, u = slope_map.posterior["beta"].isel(chain=0, draw=0).values, slopes.sel(family=seen).values[0]
    family_alpha = slope_map.posterior["alpha"].isel(chain=0, draw=0).sel(family=seen).values
    expected = family_alpha + x[2:] @ beta + x[2:, :1] * u
    np.testing.assert_allclose(draws["theta"].values[:, 2:], np.broadcast_to(expected, (2000, 2, K)), rtol=1e-10)
    # A new family: theta's variance is 1 + slope_sd^2 x^2, growing with |x|; without slopes, 1 everywhere.
    sd = slope_map.posterior["slope_sd"].isel(chain=0, draw=0).values[0]
    var = draws["theta"].values[:, :2].var(axis=0)
    np.testing.assert_allclose(var, 1 + sd**2 * x[:2, :1] ** 2, rtol=0.15)  # 2000 draws: sd of a variance ~3%
    assert (var[1] > 1.2 * var[0]).all()
    var_plain = plain["theta"].values[:, :2].var(axis=0)
    np.testing.assert_allclose(var_plain[1], var_plain[0], rtol=1e-12)  # the same alpha draws, shifted
    assert ((var[1] / var[0]) > 1.2 * (var_plain[1] / var_plain[0])).all()
    # New scores would need the family's slopes conditioned on them.
    with pytest.raises(BayesLslError, match="family slopes"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bl.predict(slope_map, new.iloc[2:].assign(**{data.benchmarks[0]: 0.5}), n_draws=50)


def test_a_fit_with_slopes_gives_starting_values(slope_sim, slope_map):
    from bayes_lsl.fitting.draws import initial_values

    model = bl.build_model(slope_sim[0], K=K, family_slopes="log_size")
    start = initial_values(model, slope_map)
    post = slope_map.posterior.isel(chain=0, draw=0)
    np.testing.assert_allclose(start["slope_sd"] * start["slope_z"], post["family_slope"].values, rtol=1e-12)


# ---------------------------------------------------------- recovery (NUTS)
@pytest.mark.slow  # NUTS on 240 models, with the MLE it starts from: 2 to 3.5 min (2026-11-26, shared 2 cores)
def test_nuts_recovers_the_slopes_and_their_sd():
    """The true beta and slope_sd inside central posterior intervals; few divergences."""
    data, truth = _simulated(40, 6, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a short run is flagged as unconverged
        fit = bl.fit(data, K=K, method="nuts", seed=0, progress=False, family_slopes="log_size",
                     chains=2, tune=500, draws=500)  # fmt: skip
    post = fit.posterior
    assert fit.attrs["n_divergences"] <= 0.02 * 1000, fit.attrs["n_divergences"]
    inside, z = [], []
    for name in ("beta", "slope_sd"):
        draws = post[name].stack(sample=("chain", "draw")).transpose(..., "sample").values
        true = truth[name]
        lower, upper = np.quantile(draws, [0.05, 0.95], axis=-1)
        inside.append(((lower <= true) & (true <= upper)).ravel())
        z.append(((draws.mean(-1) - true) / draws.std(-1)).ravel())
    inside, z = np.concatenate(inside), np.concatenate(z)
    # 6 entries in 90% intervals: at most 2 outside (probability 0.98 for calibrated intervals).
    assert inside.sum() >= 4, (inside, z)
    assert np.abs(z).max() < 3.5, z
