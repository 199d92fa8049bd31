"""``modes``: chains grouped into modes and weighed by stacking (Yao, Vehtari & Gelman 2022)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from bayes_lsl import modes
from bayes_lsl.modes import chain_groups, sample_modes, stacking_weights


def test_stacking_weights_recover_mixture_weights():
    """With each distribution's density as its LOO density, stacking maximizes the mixture
    likelihood: on draws from 0.3 N(0, 1) + 0.7 N(4, 1) it recovers 0.3 within 4 binomial
    standard errors (sqrt(0.21 / 2000) = 0.010; the components barely overlap)."""
    rng = np.random.default_rng(3)
    n = 2000
    x = np.where(rng.random(n) < 0.3, rng.normal(0, 1, n), rng.normal(4, 1, n))
    elpd = np.stack([-0.5 * (x - mu) ** 2 - 0.5 * np.log(2 * np.pi) for mu in (0.0, 4.0)])
    w = stacking_weights(elpd)
    assert w.sum() == pytest.approx(1.0) and abs(w[0] - 0.3) < 4 * np.sqrt(0.21 / n)


def test_stacking_picks_the_better_predictor():
    """A distribution that predicts every point worse gets weight 0; identical ones share it."""
    rng = np.random.default_rng(0)
    good = rng.normal(-1.0, 0.1, size=500)
    w = stacking_weights(np.stack([good, good - 1.0]))
    assert w[0] > 0.999
    np.testing.assert_allclose(stacking_weights(np.stack([good, good])), [0.5, 0.5])


def test_single_mode_fit_has_one_mode_of_weight_one(nuts_fit):
    """Chains started dispersed in one mode mix: one mode, weight 1, nothing distinguishes."""
    result = modes(nuts_fit)
    assert result.n_modes == 1 and result.weights[0] == pytest.approx(1.0)
    assert result.table.loc[0, "chains"] == [0, 1] and len(result.differences) == 0
    assert np.isclose(sum(result.chain_weights), 1.0)
    assert result.table.loc[0, "mean_loglik"] == pytest.approx(float(nuts_fit.attrs["chain_mean_loglik"][0]), abs=50)


def _two_modes(fit: xr.DataTree, shift: float = 6.0, penalty: float = 0.5) -> xr.DataTree:
    """The fit with a second mode made by hand: chain 1's loadings of one benchmark moved by
    ``shift`` posterior sds, and its log-likelihood of every score lowered by ``penalty``."""
    post = fit["posterior"].to_dataset()
    lam = post["lam"]
    sd = lam.std(("chain", "draw"))
    bench = str(lam["benchmark"].values[-1])
    move = xr.DataArray([0.0, shift], dims="chain") * sd * (lam["benchmark"] == bench)
    post["lam"] = lam + move
    ll = fit["log_likelihood"].to_dataset()
    ll["y"] = ll["y"] - xr.DataArray([0.0, penalty], dims="chain")
    tree = fit.copy()
    tree["posterior"], tree["log_likelihood"] = xr.DataTree(post), xr.DataTree(ll)
    return tree, bench


def test_two_modes_are_found_weighed_and_told_apart(nuts_fit):
    """Chain 1 made a worse mode (lower LOO density at every score): two modes, the first
    chain's the heavier, and the moved loadings are what distinguishes them."""
    tree, bench = _two_modes(nuts_fit)
    assert chain_groups(tree) == [[0], [1]]
    result = modes(tree)
    assert result.n_modes == 2 and result.table.loc[0, "chains"] == [0]
    assert result.weights[0] > 0.99 and result.weights.sum() == pytest.approx(1.0)
    assert result.table.loc[1, "mean_loglik"] < result.table.loc[0, "mean_loglik"]
    top = result.differences[result.differences["mode"] == 1]["entry"].tolist()
    assert top[0].startswith("lam[") and top[0].endswith(f", {bench}]")
    assert "2 mode(s)" in repr(result)


def test_modes_need_draws_and_a_log_likelihood(map_fit, nuts_fit):
    with pytest.raises(ValueError, match="modes need draws"):
        modes(map_fit)
    without = xr.DataTree.from_dict({"posterior": nuts_fit["posterior"].to_dataset()})
    with pytest.raises(ValueError, match="log_likelihood"):
        modes(without)


@pytest.mark.slow
def test_sample_modes_on_simulated_data(small_sim):
    """On simulated data with one mode, chains started at the optima found agree: every
    optimum's chains are one mode (or the weights put nearly all mass on one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = sample_modes(small_sim[0], K=2, n_starts=4, chains_per_mode=2, seed=1, progress=False,
                              tune=300, draws=300)  # fmt: skip
    n = fitted["posterior"].sizes["chain"]
    assert len(fitted.attrs["start_optimum"]) == n and fitted.attrs["init"] == "modes"
    result = modes(fitted)
    assert result.weights.max() > 0.95
