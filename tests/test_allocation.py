"""Compute-optimal allocation: closed form against brute force, constraints, intervals, errors."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_lsl.allocation import allocate, optimal_log_size, paper_budgets
from bayes_lsl.data import DataError, raw_covariates
from bayes_lsl.plots import allocation as plot_allocation

matplotlib.use("Agg")
N_DRAWS = 200


@pytest.fixture(scope="module")
def toy_fit():
    """A draw-based fit by hand: unstandardized covariates, skill_1 = log N log D (+ noise), skill_2 = log N."""
    rng = np.random.default_rng(0)
    K, J, chains, draws = 2, 3, 2, 200
    noise = 0.05 * rng.normal(size=(chains, draws, 3, K))
    beta = np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]) + noise - noise.mean(axis=(0, 1))  # mean exactly the base
    dims = ("chain", "draw")
    lam = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]
    posterior = xr.Dataset(
        {
            "beta": ((*dims, "covariate", "skill"), beta),
            "lam": ((*dims, "skill", "benchmark"), np.broadcast_to(lam, (chains, draws, K, J))),
            "b": ((*dims, "benchmark"), np.zeros((chains, draws, J))),
            "phi": ((*dims, "benchmark"), np.full((chains, draws, J), 50.0)),
            "corr": ((*dims, "skill", "skill_other"), np.broadcast_to(np.eye(K), (chains, draws, K, K))),
            "alpha": ((*dims, "family", "skill"), np.zeros((chains, draws, 1, K))),
        },
        coords={"skill": ["skill_1", "skill_2"], "skill_other": ["skill_1", "skill_2"], "benchmark": ["a", "b", "c"]},
    )
    sizes, tokens = np.array([0.1, 1.0, 100.0]), np.array([0.01, 1.0, 10.0])
    tree = xr.DataTree.from_dict(
        {"posterior": posterior, "constant_data": xr.Dataset({"size": ("model", sizes), "tokens": ("model", tokens)})}
    )
    tree.attrs = {
        "method": "nuts",
        "K": K,
        "benchmarks": ["a", "b", "c"],
        "anchors": ["a", "b"],
        "floors": [0.0, 0.0, 0.25],
        "covariate_center": [0.0, 0.0, 0.0],
        "covariate_scale": [1.0, 1.0, 1.0],
    }
    return tree


@pytest.fixture(scope="module")
def table(mle_fit):
    return allocate(mle_fit, paper_budgets(mle_fit, 6), n_draws=N_DRAWS)


@pytest.fixture(scope="module")
def ranges(mle_fit):
    cd = mle_fit["constant_data"]
    return 1e9 * cd["size"].values, 1e12 * cd["tokens"].values


def test_closed_form_matches_grid_search():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(500, 3))
    log_c = rng.normal(size=500)
    lo = rng.uniform(-4, 0, size=500)
    hi = lo + rng.uniform(0.1, 5, size=500)
    u = optimal_log_size(g, log_c, lo, hi)
    grid = np.linspace(lo, hi, 20001)  # (grid, case)

    def objective(u):
        v = log_c - u
        return g[:, 0] * u + g[:, 1] * v + g[:, 2] * u * v

    assert np.all((u >= lo) & (u <= hi))
    np.testing.assert_allclose(objective(u), objective(grid).max(axis=0), atol=1e-6)
    assert np.all(objective(u) >= objective(grid).max(axis=0) - 1e-12)


def test_point_optimum_matches_grid_search_on_a_fit(mle_fit, table, ranges):
    beta = mle_fit["posterior"]["beta"].isel(chain=0, draw=0).transpose("covariate", "skill").values
    center, scale = (np.asarray(mle_fit.attrs[k]) for k in ("covariate_center", "covariate_scale"))
    (n_min, n_max), (d_min, d_max) = (np.array([r.min(), r.max()]) for r in ranges)
    for row in table.itertuples():
        n = np.geomspace(max(n_min, row.flops / (6 * d_max)), min(n_max, row.flops / (6 * d_min)), 20001)
        theta = (raw_covariates(n / 1e9, row.flops / (6 * n) / 1e12) - center) / scale @ beta
        k = ["skill_1", "skill_2"].index(row.target)
        assert theta[:, k].max() == pytest.approx(row.value, abs=1e-6)
        assert np.log(n[theta[:, k].argmax()]) == pytest.approx(np.log(row.N_opt), abs=1e-3)


def test_constraints_and_intervals(table, ranges):
    assert len(table) == 12 and set(table["target"]) == {"skill_1", "skill_2"}
    assert table["feasible"].all()
    np.testing.assert_allclose(6 * table["N_opt"] * table["D_opt"], table["flops"], rtol=1e-9)
    np.testing.assert_allclose(6 * table["N_lower"] * table["D_upper"], table["flops"], rtol=1e-9)
    np.testing.assert_allclose(table["tokens_per_param"], table["D_opt"] / table["N_opt"], rtol=1e-9)
    for what, values in zip("ND", ranges, strict=True):
        cols = table[[f"{what}_lower", f"{what}_opt", f"{what}_upper"]].to_numpy()
        assert np.all(cols >= values.min() * (1 - 1e-9)) and np.all(cols <= values.max() * (1 + 1e-9))
        assert np.all(np.diff(cols, axis=1) >= -1e-6 * cols[:, 1:])  # lower <= point <= upper
    edge = table["on_boundary"]
    assert (table.loc[edge, "edge"] != "").all() and (table.loc[~edge, "edge"] == "").all()


def test_budgets_span_the_data(mle_fit):
    cd = mle_fit["constant_data"]
    nd = 6e21 * cd["size"].values * cd["tokens"].values
    budgets = paper_budgets(mle_fit, 10)
    assert len(budgets) == 10 and np.all(np.diff(budgets) > 0)
    np.testing.assert_allclose(budgets[[0, -1]], [nd.min(), nd.max()])


def test_point_fit_has_no_spread(map_fit):
    with pytest.warns(UserWarning, match="point estimate"):
        out = allocate(map_fit, paper_budgets(map_fit, 4), n_draws=20)
    for what in "ND":
        np.testing.assert_allclose(out[f"{what}_lower"], out[f"{what}_opt"], rtol=1e-9)
        np.testing.assert_allclose(out[f"{what}_upper"], out[f"{what}_opt"], rtol=1e-9)


def test_targets_by_name_anchor_and_benchmark(mle_fit):
    budgets = paper_budgets(mle_fit, 3)
    by_skill = allocate(mle_fit, budgets, skill="skill_1", n_draws=50)
    by_anchor = allocate(mle_fit, budgets, skill=mle_fit.attrs["anchors"][0], n_draws=50)
    pd.testing.assert_frame_equal(by_skill, by_anchor)
    # The anchor benchmark loads on its skill alone, with a positive loading: same optimum.
    bench = allocate(mle_fit, budgets, benchmark=mle_fit.attrs["anchors"][0], n_draws=50)
    np.testing.assert_allclose(bench["N_opt"], by_skill["N_opt"], rtol=1e-9)
    np.testing.assert_allclose(bench["N_upper"], by_skill["N_upper"], rtol=1e-9)
    other = allocate(mle_fit, budgets, benchmark="mmlu", n_draws=50)
    floor = mle_fit.attrs["floors"][mle_fit.attrs["benchmarks"].index("mmlu")]
    assert np.all((other["value"] > floor) & (other["value"] < 1)) and set(other["target"]) == {"mmlu"}


def test_unconstrained_and_infeasible(mle_fit, ranges):
    big = 6 * ranges[0].max() * ranges[1].max() * 100  # beyond the data's largest N and D
    with pytest.warns(UserWarning, match="miss the box"):
        out = allocate(mle_fit, [paper_budgets(mle_fit, 2)[1], big], n_draws=50)
    assert list(out["feasible"]) == [True, False, True, False]
    assert out.loc[~out["feasible"], ["N_opt", "D_upper", "value"]].isna().all().all()
    free = allocate(mle_fit, big, constrained=False, margin=5.0, n_draws=50)
    assert free["feasible"].all() and np.isfinite(free["N_opt"]).all()
    np.testing.assert_allclose(6 * free["N_opt"] * free["D_opt"], big, rtol=1e-9)
    # Wherever the widened box binds, the flag says which edge.
    edge_n = np.isclose(np.log(free["N_opt"]), np.log(ranges[0].max()) + 5) | np.isclose(
        np.log(free["N_opt"]), np.log(ranges[0].min()) - 5
    )
    assert np.all(free.loc[edge_n, "on_boundary"])


def test_reproducible_with_seed(toy_fit):
    budgets = paper_budgets(toy_fit, 4)
    a, b = (allocate(toy_fit, budgets, n_draws=100, seed=1) for _ in range(2))
    pd.testing.assert_frame_equal(a, b)
    assert a["feasible"].all()  # the extreme budgets touch corners of the box
    c = allocate(toy_fit, budgets, n_draws=100, seed=2)  # another subsample of the 400 draws
    pd.testing.assert_series_equal(a["N_opt"], c["N_opt"])
    assert not np.allclose(a[["N_lower", "N_upper"]], c[["N_lower", "N_upper"]])


def test_interior_optimum_and_its_interval(toy_fit):
    # theta_1 = log N log D peaks where N = D (in billions and trillions): 1000 tokens per parameter,
    # inside the box for these budgets.
    out = allocate(toy_fit, 6e21 * np.geomspace(0.02, 50, 5), skill="skill_1")
    np.testing.assert_allclose(out["tokens_per_param"], 1e3, rtol=1e-9)
    assert not out["on_boundary"].any()
    assert np.all((out["N_lower"] < out["N_opt"]) & (out["N_opt"] < out["N_upper"]))
    assert np.all((out["D_lower"] < out["D_opt"]) & (out["D_opt"] < out["D_upper"]))
    # Benchmark c: eta = (u v + u) / 2, so on u + v = L the optimum is u = (L + 1) / 2, v = u - 1.
    bench = allocate(toy_fit, out["flops"], benchmark="c")
    np.testing.assert_allclose(bench["tokens_per_param"], 1e3 / np.e, rtol=1e-9)
    u, v = np.log(bench["N_opt"] / 1e9), np.log(bench["D_opt"] / 1e12)
    np.testing.assert_allclose(bench["value"], 0.25 + 0.75 / (1 + np.exp(-(u * v + u) / 2)), rtol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"flops": 0.0}, "positive"),
        ({"flops": [1e21, -1.0]}, "positive"),
        ({"flops": 1e21, "skill": "skill_9"}, r"unknown skill.*skill_1"),
        ({"flops": 1e21, "benchmark": "gsm8k"}, r"unknown benchmark.*mmlu"),
        ({"flops": 1e21, "skill": "skill_1", "benchmark": "mmlu"}, "not both"),
        ({"flops": 1e21, "level": 1.0}, "level"),
    ],
)
def test_errors(mle_fit, kwargs, match):
    with pytest.raises(ValueError, match=match):
        allocate(mle_fit, **kwargs, n_draws=5)


def test_budgets_far_outside_the_data_warn_and_absurd_ones_raise(mle_fit):
    lo, hi = paper_budgets(mle_fit, n=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # budgets within the data's range are silent
        allocate(mle_fit, [lo, hi], n_draws=5)
    with pytest.warns(UserWarning, match=r"budget 2 of 2: flops .* FLOPs, 100 times outside") as rec:
        allocate(mle_fit, [hi, 100 * hi], n_draws=5, constrained=False)
    assert f"{lo:.3g} to {hi:.3g}" in str(rec[0].message) and "budget 1 of 2" not in str(rec[0].message)
    # Parameters times tokens as raw counts: 6 x 7e9 x 2e12 x 1e21.
    with pytest.raises(DataError, match="budgets are FLOPs, F = 6 N D"):
        allocate(mle_fit, [1e21, 6 * 7e9 * 2e12 * 1e21], n_draws=5)


def test_plot(table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = plot_allocation(table)
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
