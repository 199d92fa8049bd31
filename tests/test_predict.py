"""Predictions for new models: calibration on simulated data, conditioning, layout, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes_lsl as bl
from bayes_lsl.holdout import evaluate_holdout, score_predictions
from bayes_lsl.parameters import parameter_draws
from bayes_lsl.simulate import simulate


def _truth_fit(template: xr.DataTree, truth: dict) -> xr.DataTree:
    """A point fit holding the true parameters (the layout of ``template``, a map fit)."""
    fit = template.copy(deep=True)
    post = fit["posterior"].to_dataset()
    for name in ("beta", "lam", "b", "phi", "corr", "alpha"):
        post[name] = post[name].copy(data=np.asarray(truth[name])[None, None])
    fit["posterior"] = xr.DataTree(post)
    return fit


def _new_design(families: list[str], per_family: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"model": f"new-{f}-{m}", "family": f, "size": float(np.exp(rng.uniform(np.log(0.1), np.log(100)))),
         "tokens": float(np.exp(rng.uniform(np.log(0.2), np.log(15))))}
        for f in families for m in range(per_family)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _coverage(table: pd.DataFrame, truth: pd.DataFrame) -> float:
    long = truth.melt(id_vars=["model"], var_name="benchmark", value_name="observed")
    merged = table.drop(columns="observed").merge(long, on=["model", "benchmark"])
    return float(((merged.observed >= merged.lower) & (merged.observed <= merged.upper)).mean())


def _simulate_new(truth: dict, design: pd.DataFrame, benchmarks, seed: int, alpha=None) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new, _ = simulate(truth, design, benchmarks=benchmarks, seed=seed, alpha=alpha)
    return new.to_frame()[["model", *new.benchmarks]]


def test_new_family_intervals_are_calibrated_under_the_true_parameters(map_fit, small_sim):
    # With the parameters known, a new family's scores are exactly N(0, corr) -> Beta draws:
    # 95% intervals must cover 95% of freshly simulated scores, up to Monte Carlo error
    # (600 independent families x 6 benchmarks; binomial sd ~0.004 per cell, inflated by
    # the shared family effect within a model).
    data, truth = small_sim
    fit = _truth_fit(map_fit, truth)
    design = _new_design([f"unseen{i}" for i in range(600)], 1, seed=5)
    observed = _simulate_new(truth, design, data.benchmarks, seed=6)
    with pytest.warns(UserWarning, match="point estimate"):
        table = bl.predict(fit, design, seed=1)
    assert not table["seen_family"].any()
    assert 0.93 <= _coverage(table, observed) <= 0.97


def test_seen_family_intervals_from_mle_are_calibrated(mle_fit, small_sim):
    # New models of the fitted families, simulated with the families' true effects: the
    # intervals condition on each family's scores and carry the MLE's uncertainty. The 30
    # families are the independent units, so the tolerance is wider than above.
    data, truth = small_sim
    design = _new_design(list(data.families), 8, seed=7)
    observed = _simulate_new(truth, design, data.benchmarks, seed=8, alpha=truth["alpha"])
    table = bl.predict(mle_fit, design, seed=2)
    assert table["seen_family"].all()
    assert 0.90 <= _coverage(table, observed) <= 0.99


def test_own_scores_condition_the_family_effect(mle_fit, small_sim):
    data, truth = small_sim
    design = _new_design([f"unseen{i}" for i in range(5)], 1, seed=9)
    observed = _simulate_new(truth, design, data.benchmarks, seed=10).iloc[:1]  # 5 rows: simulate's minimum
    design = design.iloc[:1]
    given = design.assign(**{b: observed[b].values for b in data.benchmarks[:3]})
    blind = bl.predict(mle_fit, design, seed=3).set_index("benchmark")
    informed = bl.predict(mle_fit, given, seed=3).set_index("benchmark")
    rest = list(data.benchmarks[3:])
    # Three scores of the model pin down its skills: the other benchmarks' intervals shrink.
    assert (informed.loc[rest, "upper"] - informed.loc[rest, "lower"]).mean() < 0.8 * (
        blind.loc[rest, "upper"] - blind.loc[rest, "lower"]
    ).mean()
    given_names = list(data.benchmarks[:3])
    assert np.allclose(informed.loc[given_names, "observed"], observed[given_names].values[0])


def test_layout_kinds_and_reproducibility(mle_fit, small_sim):
    data, _ = small_sim
    design = _new_design([data.families[0], "unseen"], 2, seed=11)
    table, draws = bl.predict(mle_fit, design, seed=4, n_draws=300, return_draws=True)
    assert list(table.columns[:7]) == ["model", "family", "benchmark", "mean", "median", "lower", "upper"]
    assert len(table) == 4 * data.n_benchmarks
    assert (table["lower"] <= table["median"]).all() and (table["median"] <= table["upper"]).all()
    assert draws["y"].dims == ("sample", "model", "benchmark") and draws.sizes["sample"] == 300
    floors = xr.DataArray(data.floors, dims="benchmark", coords={"benchmark": list(data.benchmarks)})
    assert bool((draws["mu"] > floors).all()) and bool((draws["mu"] < 1).all())
    # Models of one family share their family effect in each draw.
    same = design["model"][design["family"] == data.families[0]].tolist()
    assert np.allclose(draws["alpha"].sel(model=same[0]), draws["alpha"].sel(model=same[1]))
    again = bl.predict(mle_fit, design, seed=4, n_draws=300)
    pd.testing.assert_frame_equal(table, again)
    other = bl.predict(mle_fit, design, seed=5, n_draws=300)
    assert not np.allclose(table["mean"], other["mean"])
    skills = bl.predict(mle_fit, design, seed=4, n_draws=300, kind="theta")
    assert set(skills["skill"]) == set(mle_fit.posterior["skill"].values)


def test_mle_parameter_draws_follow_the_standard_errors(mle_fit):
    draws = parameter_draws(mle_fit, n_draws=4000, seed=0)
    # beta is unconstrained: its draws' sd is its standard error (Monte Carlo error ~1.1%).
    np.testing.assert_allclose(draws["beta"].std("sample"), mle_fit.mle["beta_se"], rtol=0.06)
    np.testing.assert_allclose(draws["beta"].mean("sample"), mle_fit.posterior["beta"][0, 0], atol=0.1 * float(
        mle_fit.mle["beta_se"].max()))  # fmt: skip
    assert bool((draws["phi"] > 0).all())
    eig = np.linalg.eigvalsh(draws["corr"].values)
    assert eig.min() > 0 and np.allclose(draws["corr"].values[:, [0, 1], [0, 1]], 1)


def test_nuts_fit_uses_posterior_family_effects(nuts_fit, small_sim):
    data, _ = small_sim
    fam = data.families[0]
    design = _new_design([fam], 1, seed=12)
    _, draws = bl.predict(nuts_fit, design, seed=0, return_draws=True)
    posterior = nuts_fit.posterior["alpha"].sel(family=fam).stack(sample=("chain", "draw")).values.T
    assert draws.sizes["sample"] == posterior.shape[0]
    assert np.allclose(np.sort(draws["alpha"].values[:, 0], axis=0), np.sort(posterior, axis=0))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.drop(columns="size"), "lacks column"),
        (lambda d: d.assign(size=-1.0), "'size' must be positive"),
        (lambda d: d.assign(notabench=0.5), "unknown column"),
        (lambda d: d.assign(**{"math": 1.5}), "outside \\[0, 1\\]"),
        (lambda d: pd.concat([d, d]), "repeats model"),
        (lambda d: d.iloc[:0], "no rows"),
    ],
)
def test_bad_new_models(mle_fit, change, message):
    design = _new_design(["x"], 1, seed=0)
    with pytest.raises(bl.DataError, match=message):
        bl.predict(mle_fit, change(design))


def test_evaluate_holdout_on_simulated_data(small_sim):
    data, _ = small_sim
    held = [data.models[i] for i in range(0, data.n_models, 6)]
    result = evaluate_holdout(data, held, K=2, method="mle", progress=False, n_starts=2)
    summary = result.summary
    assert summary.loc["overall", "n"] == int(sum(data.observed[np.isin(data.models, held)].sum(1)))
    assert 0.85 <= summary.loc["overall", "coverage"] <= 1.0
    baseline = evaluate_holdout(data, held, method="baseline")
    assert np.isnan(baseline.summary.loc["overall", "coverage"])
    # The true model beats a per-benchmark sigmoid of FLOPs on data it generated.
    assert summary.loc["overall", "mae"] < baseline.summary.loc["overall", "mae"]


def test_score_predictions_by_hand():
    df = pd.DataFrame({"benchmark": ["a", "a", "b"], "observed": [0.5, 0.2, 0.9], "mean": [0.4, 0.2, 0.6],
                       "lower": [0.45, 0.1, 0.5], "upper": [0.6, 0.3, 0.7]})  # fmt: skip
    s = score_predictions(df, cluster=None)  # no families: every score its own cluster
    assert np.isclose(s.loc["a", "mae"], 0.05) and np.isclose(s.loc["overall", "mae"], 0.4 / 3)
    assert np.isclose(s.loc["overall", "coverage"], 2 / 3) and np.isclose(s.loc["b", "width"], 0.2)


def test_covariate_dispersion_sets_each_new_models_precision(small_sim):
    data, _ = small_sim
    fit = bl.fit(data, K=2, method="map", dispersion="covariates", progress=False)
    assert {"phi_a", "phi_s"} <= set(fit.posterior.data_vars)
    # Constant-precision data give phi_s near 0: set clear slopes so a wrong phi shows.
    post = fit["posterior"].to_dataset()
    post["phi_s"] = post["phi_s"].copy(data=np.full(post["phi_s"].shape, 0.5))
    fit["posterior"] = xr.DataTree(post)
    design = _new_design(["unseen"], 2, seed=13)
    with pytest.warns(UserWarning, match="point estimate"):
        _, draws = bl.predict(fit, design, n_draws=4000, seed=0, return_draws=True)
    # Beta variance mu (1 - mu) / (phi + 1): recover phi of each new model from its draws
    # at fixed parameters and compare with exp(phi_a + x' phi_s) (MC error ~3% at 4000 draws;
    # the family effect is drawn too, so compare the within-draw noise via y - mu).
    post = fit.posterior
    phi = np.exp(post["phi_a"].values[0, 0] + draws["x"].values @ post["phi_s"].values[0, 0])  # (model, benchmark)
    mu, y = draws["mu"].values, draws["y"].values
    implied = (mu * (1 - mu)).mean(0) / ((y - mu) ** 2).mean(0) - 1
    np.testing.assert_allclose(implied, phi, rtol=0.15)
