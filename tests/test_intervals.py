"""Wald intervals of mle fits: built on the unconstrained scale and mapped back, so inside the parameter space."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.stats import norm

from bayes_lsl.report import parameter_table

Z = norm.ppf(0.975)
#: Monte Carlo error of a 2.5% quantile from 4,000 normal draws, in standard errors:
#: sqrt(p (1 - p) / n) / pdf(z); five of them bound each interval end.
MC_TOL = 5 * np.sqrt(0.025 * 0.975 / 4000) / norm.pdf(Z)


def _widened(fit: xr.DataTree, sd: float = 1.0) -> xr.DataTree:
    """The fit with a standard error of ``sd`` on the unconstrained scale of phi[0], the first
    anchor loading and the correlation (K = 2: corr = tanh(z)), their ``*_se`` by the delta method."""
    fit = fit.copy(deep=True)
    mle = fit["mle"].to_dataset()
    names = [str(p) for p in mle["param"].values]
    cov = mle["theta_cov"].values.copy()
    for name in ("phi_log__[0]", "lam_anchor_log__[0]", "corr_z[0]"):
        i = names.index(name)
        cov[i, :] = cov[:, i] = 0.0
        cov[i, i] = sd**2
    post = fit.posterior.isel(chain=0, draw=0)
    phi_se, lam_se, corr_se = (mle[f"{n}_se"].values.copy() for n in ("phi", "lam", "corr"))
    phi_se[0] = float(post["phi"][0]) * sd
    lam_se[0, 0] = float(post["lam"][0, 0]) * sd
    r = float(post["corr"][1, 0])
    corr_se[1, 0] = corr_se[0, 1] = (1 - r**2) * sd
    mle = mle.assign(theta_cov=(("param", "param_other"), cov), phi_se=(mle["phi_se"].dims, phi_se),
                     lam_se=(mle["lam_se"].dims, lam_se), corr_se=(mle["corr_se"].dims, corr_se))  # fmt: skip
    fit["mle"] = xr.DataTree(mle)
    return fit


def test_intervals_stay_in_the_parameter_space(mle_fit):
    """Where estimate +- z se leaves the space (phi < 0, an anchor loading < 0, |corr| > 1),
    the intervals mapped back from the unconstrained scale stay inside it; for a
    log-scale parameter they are exp of the Wald interval of its log."""
    fit = _widened(mle_fit)
    table = parameter_table(fit).set_index("parameter")
    benchmarks = [str(b) for b in fit.posterior["benchmark"].values]
    phi, lam, corr = f"phi[{benchmarks[0]}]", f"lam[skill_1, {benchmarks[0]}]", "corr[skill_2, skill_1]"
    symmetric_lower = table["estimate"] - Z * table["se"]
    symmetric_upper = table["estimate"] + Z * table["se"]
    # The constructed case is one where the symmetric intervals leave the space ...
    assert symmetric_lower[phi] < 0 and symmetric_lower[lam] < 0
    assert symmetric_lower[corr] < -1 or symmetric_upper[corr] > 1
    # ... and ours do not.
    assert (table.loc[table.index.str.startswith("phi["), "lower"] > 0).all()
    anchors = [f"lam[skill_{k + 1}, {benchmarks[k]}]" for k in range(2)]
    assert (table.loc[anchors, "lower"] >= 0).all()
    corr_rows = table.loc[table.index.str.startswith("corr[")]
    assert ((corr_rows["lower"] > -1) & (corr_rows["upper"] < 1)).all()
    est = table.loc[phi, "estimate"]
    np.testing.assert_allclose(np.log(table.loc[phi, ["lower", "upper"]].astype(float) / est), [-Z, Z], atol=MC_TOL)
    r = table.loc[corr, "estimate"]
    np.testing.assert_allclose(np.arctanh(table.loc[corr, ["lower", "upper"]].astype(float)),
                               [np.arctanh(r) - Z, np.arctanh(r) + Z], atol=MC_TOL)  # fmt: skip


def test_intervals_away_from_the_boundary_are_the_symmetric_ones(mle_fit):
    """Entries on an unbounded scale (beta, b, free loadings) get estimate +- z se up to Monte
    Carlo error; log-scale ones (phi, anchor loadings) differ from it only by the map's
    curvature over the interval, est (exp(+-z s) - 1 -+ z s) with s = se / est, which
    is second order in se / est: small where se is small against the distance to the boundary."""
    table = parameter_table(mle_fit).set_index("parameter")
    table = table[(table["se"] > 1e-9) & ~table.index.str.startswith("corr[")]  # corr: the first test
    est, se = table["estimate"].to_numpy(float), table["se"].to_numpy(float)
    benchmarks = [str(b) for b in mle_fit.posterior["benchmark"].values]
    log_scale = table.index.str.startswith("phi[") | table.index.isin(
        [f"lam[skill_{k + 1}, {benchmarks[k]}]" for k in range(2)]
    )
    s = np.where(log_scale, se / est, 0.0)
    curvature = est * np.stack([np.exp(-Z * s) - 1 + Z * s, np.exp(Z * s) - 1 - Z * s])
    allowed = curvature + MC_TOL * se * np.exp(Z * s)
    assert (np.abs(table["lower"].to_numpy(float) - (est - Z * se)) <= allowed[0] + 1e-9).all()
    assert (np.abs(table["upper"].to_numpy(float) - (est + Z * se)) <= allowed[1] + 1e-9).all()


def test_forest_draws_the_same_intervals(mle_fit):
    from bayes_lsl.parameters import mle_intervals
    from bayes_lsl.plots import plot_forest

    ax = plot_forest({"mle": mle_fit}, names=["phi"]).axes[0]
    lower, upper = np.array([seg[:, 0] for seg in ax.collections[0].get_segments()]).T
    expected = mle_intervals(mle_fit, level=0.95)["phi"]
    np.testing.assert_allclose(lower, expected[0].values)
    np.testing.assert_allclose(upper, expected[1].values)


def test_no_covariance_no_intervals(mle_fit):
    from bayes_lsl.parameters import mle_intervals

    fit = mle_fit.copy(deep=True)
    mle = fit["mle"].to_dataset()
    fit["mle"] = xr.DataTree(mle.assign(theta_cov=mle["theta_cov"] * np.nan))
    table = parameter_table(fit)
    assert table["lower"].isna().all() and table["upper"].isna().all()
    fit.attrs["method"] = "map"
    with pytest.raises(ValueError, match="mle fit"):
        mle_intervals(fit)


def test_covariate_dispersion_intervals_per_model(other_sim_data):
    """With dispersion="covariates" phi is exp(phi_a + x' phi_s) per model and benchmark:
    its intervals are too, positive, around the estimate."""
    import bayes_lsl as bl

    fit = bl.fit(other_sim_data, K=2, method="mle", progress=False, n_starts=1, check_draws=500,
                 dispersion="covariates")  # fmt: skip
    from bayes_lsl.parameters import mle_intervals

    lower, upper = mle_intervals(fit)["phi"]
    phi = fit.posterior["phi"].isel(chain=0, draw=0)
    assert lower.dims == phi.dims and lower.shape == phi.shape
    assert (lower > 0).all() and (lower < phi).all() and (phi < upper).all()


def test_parameter_intervals_are_wald_for_mle_and_quantiles_for_draws(mle_fit):
    """One function for every method: the report's Wald bounds for mle, posterior quantiles for draws,
    no interval for a point fit."""
    from bayes_lsl.parameters import mle_intervals, parameter_intervals

    table = parameter_intervals(mle_fit, ["phi", "corr"], level=0.9)
    assert table.columns.tolist() == ["variable", "entry", "parameter", "estimate", "lower", "upper", "interval"]
    assert (table["interval"] == "wald").all()
    lower, upper = mle_intervals(mle_fit, level=0.9)["phi"]
    phi = table[table["variable"] == "phi"]
    np.testing.assert_allclose(phi["lower"], lower.values)
    np.testing.assert_allclose(phi["upper"], upper.values)
    assert phi["parameter"].iloc[0] == f"phi[{mle_fit.posterior['benchmark'].values[0]}]"
    K = mle_fit.posterior.sizes["skill"]
    assert (table["variable"] == "corr").sum() == K * K
    # Draws: the central quantiles over chain and draw.
    post = mle_fit["posterior"].to_dataset()
    rng = np.random.default_rng(0)
    draws = post.isel(chain=[0, 0], draw=[0] * 50).assign_coords(chain=[0, 1], draw=np.arange(50))
    draws["b"] = draws["b"] + xr.DataArray(rng.normal(size=draws["b"].shape), dims=draws["b"].dims)
    sampled = xr.DataTree.from_dict({"posterior": draws, "constant_data": mle_fit["constant_data"].to_dataset()})
    sampled.attrs = dict(mle_fit.attrs, method="nuts")
    got = parameter_intervals(sampled, ["b"], level=0.8)
    assert (got["interval"] == "posterior").all()
    flat = draws["b"].stack(s=("chain", "draw")).transpose("s", ...).values
    np.testing.assert_allclose(got["lower"], np.quantile(flat, 0.1, axis=0))
    np.testing.assert_allclose(got["estimate"], flat.mean(0))
    point = mle_fit.copy()
    point.attrs = dict(mle_fit.attrs, method="map")
    none = parameter_intervals(point, ["beta"])
    assert (none["interval"] == "none").all() and none["lower"].isna().all()
    with pytest.raises(ValueError, match="names must be among"):
        parameter_intervals(mle_fit, ["alpha"])
