"""Compute-optimal allocation: closed form against brute force and the authors' table, constraints, intervals,
edge shares, errors."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.special import expit

from bayes_lsl.allocation import EDGES, allocate, model_budgets, optimal_log_size, paper_budgets
from bayes_lsl.data import DataError, raw_covariates
from bayes_lsl.plots import plot_allocation

matplotlib.use("Agg")
N_DRAWS = 200


def _tree(beta, lam, sizes, tokens, *, b=None, method="nuts") -> xr.DataTree:
    """A fit by hand from draws (chain, draw, ...) of beta and lam, on unstandardized covariates."""
    chains, draws, _, K = beta.shape
    J = lam.shape[-1]
    dims = ("chain", "draw")
    skills, benchmarks = [f"skill_{k + 1}" for k in range(K)], list("abcdefgh"[:J])
    posterior = xr.Dataset(
        {
            "beta": ((*dims, "covariate", "skill"), beta),
            "lam": ((*dims, "skill", "benchmark"), lam),
            "b": ((*dims, "benchmark"), np.zeros((chains, draws, J)) if b is None else b),
            "phi": ((*dims, "benchmark"), np.full((chains, draws, J), 50.0)),
            "corr": ((*dims, "skill", "skill_other"), np.broadcast_to(np.eye(K), (chains, draws, K, K))),
            "alpha": ((*dims, "family", "skill"), np.zeros((chains, draws, 1, K))),
            "theta": ((*dims, "model", "skill"), np.zeros((chains, draws, len(sizes), K))),
        },
        coords={"skill": skills, "skill_other": skills, "benchmark": benchmarks},
    )
    constant = xr.Dataset({"size": ("model", np.asarray(sizes, float)), "tokens": ("model", np.asarray(tokens, float))})
    tree = xr.DataTree.from_dict({"posterior": posterior, "constant_data": constant})
    tree.attrs = {
        "method": method,
        "K": K,
        "benchmarks": benchmarks,
        "anchors": benchmarks[:K],
        "floors": [0.0] * (J - 1) + [0.25],
        "covariate_center": [0.0, 0.0, 0.0],
        "covariate_scale": [1.0, 1.0, 1.0],
    }
    return tree


@pytest.fixture(scope="module")
def toy_fit():
    """A draw-based fit by hand: skill_1 = log N log D (+ noise), skill_2 = log N."""
    rng = np.random.default_rng(0)
    K, J, chains, draws = 2, 3, 2, 200
    noise = 0.05 * rng.normal(size=(chains, draws, 3, K))
    beta = np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]) + noise - noise.mean(axis=(0, 1))  # mean exactly the base
    lam = np.broadcast_to([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]], (chains, draws, K, J))
    return _tree(beta, lam, [0.1, 1.0, 100.0], [0.01, 1.0, 10.0])


@pytest.fixture(scope="module")
def table(mle_fit):
    return allocate(mle_fit, paper_budgets(mle_fit, 6), n_draws=N_DRAWS)


@pytest.fixture(scope="module")
def ranges(mle_fit):
    """The data's sizes (billions) and tokens (trillions): the units of the inputs and of the table."""
    cd = mle_fit["constant_data"]
    return cd["size"].values, cd["tokens"].values


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
        c = row.flops / 6e21  # N D in billions x trillions
        n = np.geomspace(max(n_min, c / d_max), min(n_max, c / d_min), 20001)
        theta = (raw_covariates(n, c / n) - center) / scale @ beta
        k = ["skill_1", "skill_2"].index(row.target)
        assert theta[:, k].max() == pytest.approx(row.value, abs=1e-6)
        assert np.log(n[theta[:, k].argmax()]) == pytest.approx(np.log(row.size_opt), abs=1e-3)


def test_constraints_and_intervals(table, ranges):
    assert len(table) == 12 and set(table["target"]) == {"skill_1", "skill_2"}
    assert table["feasible"].all()
    # Billions of parameters and trillions of tokens: F = 6 N D = 6e21 size tokens.
    np.testing.assert_allclose(6e21 * table["size_opt"] * table["tokens_opt"], table["flops"], rtol=1e-9)
    np.testing.assert_allclose(6e21 * table["size_lower"] * table["tokens_upper"], table["flops"], rtol=1e-9)
    np.testing.assert_allclose(table["tokens_per_param"], 1e3 * table["tokens_opt"] / table["size_opt"], rtol=1e-9)
    for what, values in zip(("size", "tokens"), ranges, strict=True):
        cols = table[[f"{what}_lower", f"{what}_opt", f"{what}_upper"]].to_numpy()
        assert np.all(cols >= values.min() * (1 - 1e-9)) and np.all(cols <= values.max() * (1 + 1e-9))
        assert np.all(np.diff(cols, axis=1) >= -1e-6 * cols[:, 1:])  # lower <= point <= upper
    edge = table["on_boundary"]
    assert (table.loc[edge, "edge"] != "").all() and (table.loc[~edge, "edge"] == "").all()


def test_paper_budgets_run_between_the_corners_of_the_box(mle_fit, ranges):
    sizes, tokens = ranges
    budgets = paper_budgets(mle_fit, 10)
    assert len(budgets) == 10 and np.all(np.diff(budgets) > 0)
    corners = 6e21 * np.array([sizes.min() * tokens.min(), sizes.max() * tokens.max()])
    np.testing.assert_allclose(budgets[[0, -1]], corners, rtol=1e-12)
    np.testing.assert_allclose(np.diff(np.log(budgets)), np.log(corners[1] / corners[0]) / 9, rtol=1e-9)
    # The other grid: the budgets of the data's smallest and largest models, inside the paper's.
    nd = 6e21 * sizes * tokens
    models = model_budgets(mle_fit, 10)
    np.testing.assert_allclose(models[[0, -1]], [nd.min(), nd.max()], rtol=1e-12)
    assert budgets[0] <= models[0] and models[-1] <= budgets[-1]


def test_paper_budgets_on_the_leaderboard_are_the_authors_grid(paper):
    # The FLOPs column (in 1e19) of the allocation table in the authors' leaderboard_analysis.ipynb.
    published = 1e19 * np.array(
        [6.30, 25.15, 100.37, 400.62, 1599.05, 6382.53, 25475.55, 101684.33, 405867.73, 1620000.00]
    )
    tree = xr.DataTree.from_dict(
        {"constant_data": xr.Dataset({"size": ("model", paper.size), "tokens": ("model", paper.tokens)})}
    )
    np.testing.assert_allclose(paper_budgets(tree, 10), published, atol=0.005e19)  # printed to 2 decimals


def test_point_fit_has_no_spread(map_fit):
    with pytest.warns(UserWarning, match="point estimate"):
        out = allocate(map_fit, paper_budgets(map_fit, 4), n_draws=20)
    for what in ("size", "tokens"):
        np.testing.assert_allclose(out[f"{what}_lower"], out[f"{what}_opt"], rtol=1e-9)
        np.testing.assert_allclose(out[f"{what}_upper"], out[f"{what}_opt"], rtol=1e-9)


def test_targets_by_name_anchor_and_benchmark(mle_fit):
    budgets = paper_budgets(mle_fit, 3)
    by_skill = allocate(mle_fit, budgets, skill="skill_1", n_draws=50)
    by_anchor = allocate(mle_fit, budgets, skill=mle_fit.attrs["anchors"][0], n_draws=50)
    pd.testing.assert_frame_equal(by_skill, by_anchor)
    # The anchor benchmark loads on its skill alone, with a positive loading: same optimum.
    bench = allocate(mle_fit, budgets, benchmark=mle_fit.attrs["anchors"][0], n_draws=50)
    np.testing.assert_allclose(bench["size_opt"], by_skill["size_opt"], rtol=1e-9)
    np.testing.assert_allclose(bench["size_upper"], by_skill["size_upper"], rtol=1e-9)
    other = allocate(mle_fit, budgets, benchmark="mmlu", n_draws=50)
    floor = mle_fit.attrs["floors"][mle_fit.attrs["benchmarks"].index("mmlu")]
    assert np.all((other["value"] > floor) & (other["value"] < 1)) and set(other["target"]) == {"mmlu"}


def test_unconstrained_and_infeasible(mle_fit, ranges):
    big = 6e21 * ranges[0].max() * ranges[1].max() * 100  # beyond the data's largest N and D
    with pytest.warns(UserWarning, match="miss the box"), pytest.warns(UserWarning, match="extrapolating"):
        out = allocate(mle_fit, [paper_budgets(mle_fit, 2)[1], big], n_draws=50)
    assert list(out["feasible"]) == [True, False, True, False]
    assert out.loc[~out["feasible"], ["size_opt", "tokens_upper", "value"]].isna().all().all()
    with pytest.warns(UserWarning, match="extrapolating"):  # 100 times beyond the largest model's compute
        free = allocate(mle_fit, big, constrained=False, margin=5.0, n_draws=50)
    assert free["feasible"].all() and np.isfinite(free["size_opt"]).all()
    np.testing.assert_allclose(6e21 * free["size_opt"] * free["tokens_opt"], big, rtol=1e-9)
    # Wherever the widened box binds, the flag says which edge.
    edge_n = np.isclose(np.log(free["size_opt"]), np.log(ranges[0].max()) + 5) | np.isclose(
        np.log(free["size_opt"]), np.log(ranges[0].min()) - 5
    )
    assert np.all(free.loc[edge_n, "on_boundary"])


def test_reproducible_with_seed(toy_fit):
    budgets = paper_budgets(toy_fit, 4)
    a, b = (allocate(toy_fit, budgets, n_draws=100, seed=1) for _ in range(2))
    pd.testing.assert_frame_equal(a, b)
    assert a["feasible"].all()  # the extreme budgets touch corners of the box
    c = allocate(toy_fit, budgets, n_draws=100, seed=2)  # another subsample of the 400 draws
    pd.testing.assert_series_equal(a["size_opt"], c["size_opt"])
    assert not np.allclose(a[["size_lower", "size_upper"]], c[["size_lower", "size_upper"]])


def test_interior_optimum_and_its_interval(toy_fit):
    # theta_1 = log N log D peaks where N = D (in billions and trillions): 1000 tokens per parameter,
    # inside the box for these budgets.
    out = allocate(toy_fit, 6e21 * np.geomspace(0.02, 50, 5), skill="skill_1")
    np.testing.assert_allclose(out["tokens_per_param"], 1e3, rtol=1e-9)
    assert not out["on_boundary"].any()
    assert np.all((out["size_lower"] < out["size_opt"]) & (out["size_opt"] < out["size_upper"]))
    assert np.all((out["tokens_lower"] < out["tokens_opt"]) & (out["tokens_opt"] < out["tokens_upper"]))
    # Benchmark c: eta = (u v + u) / 2, so on u + v = L the optimum is u = (L + 1) / 2, v = u - 1.
    bench = allocate(toy_fit, out["flops"], benchmark="c")
    np.testing.assert_allclose(bench["tokens_per_param"], 1e3 / np.e, rtol=1e-9)
    u, v = np.log(bench["size_opt"].to_numpy()), np.log(bench["tokens_opt"].to_numpy())
    # The value: the posterior mean of the score there (the noise makes it differ from the score at the mean).
    beta = toy_fit["posterior"]["beta"].stack(sample=("chain", "draw")).transpose("sample", ...).values
    eta = np.einsum("bp,spk,k->sb", np.column_stack([u, v, u * v]), beta, [0.5, 0.5])
    np.testing.assert_allclose(bench["value"], (0.25 + 0.75 * expit(eta)).mean(axis=0), rtol=1e-9)


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


# The authors' K = 4 leaderboard fit (leaderboard_analysis.ipynb): slopes on the raw covariates (log size in
# billions, log tokens in trillions, their product), printed to 3 decimals, for the skills anchored on MATH,
# IFEval, HellaSwag and BBH; their data's box of sizes (0.07 to 180 B) and tokens (0.15 to 15 T).
AUTHORS_BETA = np.array([[0.432, 0.190, 0.840, 0.656], [0.774, 0.324, 0.384, 0.445], [0.026, 0.154, -0.039, 0.010]])
AUTHORS_BOX = ([0.07, 180.0], [0.15, 15.0])
# Their allocation table on the paper's grid of 10 budgets (row = budget): (params B, tokens T) per skill, as
# printed (2 decimals).
AUTHORS_TABLE = [
    [(0.07, 0.15), (0.07, 0.15), (0.07, 0.15), (0.07, 0.15)],
    [(0.07, 0.60), (0.13, 0.32), (0.28, 0.15), (0.28, 0.15)],
    [(0.07, 2.39), (0.26, 0.63), (1.12, 0.15), (1.12, 0.15)],
    [(0.07, 9.54), (0.53, 1.27), (4.45, 0.15), (4.45, 0.15)],
    [(0.18, 15.00), (1.06, 2.52), (17.77, 0.15), (17.77, 0.15)],
    [(0.71, 15.00), (2.10, 5.05), (70.92, 0.15), (70.92, 0.15)],
    [(2.83, 15.00), (4.22, 10.06), (180.00, 0.24), (180.00, 0.24)],
    [(11.30, 15.00), (11.30, 15.00), (180.00, 0.94), (180.00, 0.94)],
    [(45.10, 15.00), (45.10, 15.00), (180.00, 3.76), (180.00, 3.76)],
    [(180.00, 15.00), (180.00, 15.00), (180.00, 15.00), (180.00, 15.00)],
]


def test_reproduces_the_authors_allocation_table():
    fit = _tree(AUTHORS_BETA[None, None], np.eye(4)[None, None], *AUTHORS_BOX, method="map")
    budgets = paper_budgets(fit, 10)
    with pytest.warns(UserWarning, match="point estimate"):
        table = allocate(fit, budgets, n_draws=1)
    # Tolerance from the published precision: the optimum's spread over the coefficients' rounding (each
    # +-0.0005), one step of the authors' 1000-point grid search, and the 2-decimal rounding of the table.
    u_min, u_max = np.log(AUTHORS_BOX[0])
    v_min, v_max = np.log(AUTHORS_BOX[1])
    log_c = np.log(budgets / 6e21)
    lo, hi = np.maximum(u_min, log_c - v_max), np.minimum(u_max, log_c - v_min)
    shifts = np.stack(np.meshgrid(*[[-5e-4, 0.0, 5e-4]] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    for k, skill in enumerate(fit["posterior"]["skill"].values):
        rows = table[table["target"] == skill]
        envelope = optimal_log_size((AUTHORS_BETA[:, k] + shifts)[:, None], log_c, lo, hi)  # (shift, budget)
        slack = np.ptp(envelope, axis=0) + (hi - lo) / 999
        for i, (size, tokens) in enumerate(rows[["size_opt", "tokens_opt"]].to_numpy()):
            for ours, printed in ((size, AUTHORS_TABLE[i][k][0]), (tokens, AUTHORS_TABLE[i][k][1])):
                rounding = -np.log1p(-0.005 / printed)
                assert abs(np.log(ours / printed)) <= slack[i] + rounding, (skill, i, ours, printed)


def _two_kinds_of_draws(n_interior: int, n_edge: int) -> xr.DataTree:
    """skill_1 = log N log D in ``n_interior`` draws (interior optimum N = D) and = log N in ``n_edge`` draws."""
    beta = np.zeros((1, n_interior + n_edge, 3, 1))
    beta[0, :n_interior, 2, 0] = 1.0
    beta[0, n_interior:, 0, 0] = 1.0
    return _tree(beta, np.ones((1, n_interior + n_edge, 1, 1)), [0.1, 100.0], [0.01, 10.0])


def test_edge_shares_count_the_draws_on_each_edge():
    fit = _two_kinds_of_draws(300, 100)
    # log N + log D = 1: the size cap (100 B) binds before the token floor; the interior optimum is
    # log N = 1/2. The smallest paper budget is the corner (min size, min tokens), where every draw sits.
    corner = paper_budgets(fit, 2)[0]
    out = allocate(fit, [corner, 6e21 * np.e], n_draws=10_000).set_index("flops")
    shares = out[[f"share_{e.replace(' ', '_')}" for e in EDGES] + ["share_interior"]]
    np.testing.assert_allclose(shares.loc[corner], [1, 0, 1, 0, 0])
    np.testing.assert_allclose(shares.loc[6e21 * np.e], [0, 0.25, 0, 0, 0.75])
    assert list(out["set_by_box"]) == [True, False]
    # The 95% band reaches the edge although most draws are interior: the shares say how many.
    assert out["size_upper"].iloc[1] == pytest.approx(100.0)
    more_at_edge = allocate(_two_kinds_of_draws(100, 300), 6e21 * np.e, n_draws=10_000)
    assert more_at_edge["set_by_box"].item() and more_at_edge["share_max_size"].item() == pytest.approx(0.75)
    # The mean coefficients (0.75, 0, 0.25) put the point optimum inside, at log N = (0.75 + 0.25) / 0.5 = 2:
    # on_boundary alone would hide that three draws in four sit on the edge.
    assert not more_at_edge["on_boundary"].item() and more_at_edge["size_opt"].item() == pytest.approx(np.exp(2))


def test_shares_of_a_point_fit_follow_its_edge(map_fit):
    with pytest.warns(UserWarning, match="point estimate"):
        out = allocate(map_fit, paper_budgets(map_fit, 6), n_draws=20)
    for edge in EDGES:
        share = out[f"share_{edge.replace(' ', '_')}"]
        assert set(share) <= {0.0, 1.0}
        assert (share[out["edge"] == edge] == 1).all()
    np.testing.assert_array_equal(out["set_by_box"], out["on_boundary"])
    np.testing.assert_allclose(out["value_lower"], out["value"], rtol=1e-9)
    np.testing.assert_allclose(out["value_upper"], out["value"], rtol=1e-9)


def test_value_is_the_mean_score_of_a_family_at_alpha_zero_per_draw():
    # Benchmark a loads on skill_1 = a log N log D with weight lam = a, a = 0.5 or 1.5 in half the draws each:
    # E[beta lam] = 1.25 differs from E[beta] E[lam] = 1. Every draw's optimum is N = D (in B and T).
    a = np.repeat([0.5, 1.5], 200)
    beta = np.zeros((1, 400, 3, 1))
    beta[0, :, 2, 0] = a
    fit = _tree(beta, a[None, :, None, None], [0.1, 100.0], [0.01, 10.0])
    flops = 6e21 * np.exp(np.array([1.0, 3.0]))
    out = allocate(fit, flops, benchmark="a", n_draws=400)
    assert set(out["objective"]) == {"mean score"}
    np.testing.assert_allclose(out["size_opt"], out["tokens_opt"], rtol=1e-9)
    uv = np.log(out["size_opt"].to_numpy()) ** 2  # log N log D at the optimum

    def score(eta):  # b = 0
        floor = fit.attrs["floors"][0]
        return floor + (1 - floor) * expit(eta)

    np.testing.assert_allclose(out["value"], score(a[:, None] ** 2 * uv).mean(axis=0), rtol=1e-9)
    assert not np.allclose(out["value"], score(uv))  # not the score at the mean parameters
    np.testing.assert_allclose(out["value_lower"], score(0.25 * uv), rtol=1e-9)
    np.testing.assert_allclose(out["value_upper"], score(2.25 * uv), rtol=1e-9)
    skill = allocate(fit, flops, n_draws=400)
    assert set(skill["objective"]) == {"skill"}
    np.testing.assert_allclose(skill["value"], uv, rtol=1e-9)  # E[a] = 1
