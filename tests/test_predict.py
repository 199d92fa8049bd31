"""Predictions for new models: calibration on simulated data, conditioning, layout, errors."""

from __future__ import annotations

import warnings

import controls
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes_lsl as bl
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


@pytest.fixture(scope="module")
def seen_family_cells(mle_fit, small_sim):
    """New models of the fitted families, simulated with the families' true effects, and
    each predictor's intervals for them (``controls.PREDICTORS``; the family-ignoring one
    twice, with another seed, as the reference it cannot beat)."""
    data, truth = small_sim
    design = _new_design(list(data.families), 8, seed=7)
    observed = _simulate_new(truth, design, data.benchmarks, seed=8, alpha=truth["alpha"])
    cells = {name: controls.interval_cells(predictor(mle_fit, design, 2), observed)
             for name, predictor in controls.PREDICTORS.items()}  # fmt: skip
    cells["family-ignoring, seed 3"] = controls.interval_cells(controls.family_ignoring(mle_fit, design, 3), observed)
    return cells


def test_seen_family_intervals_from_mle_are_calibrated(seen_family_cells):
    # The intervals condition on each family's scores and carry the MLE's uncertainty:
    # coverage 95% up to sampling error over the 30 families (the independent units; 8 new
    # models x 6 benchmarks each), and narrower, more accurate than ignoring the family.
    cells = seen_family_cells["ours"]
    controls.assert_calibrated(cells)
    controls.assert_sharper(cells, seen_family_cells["family-ignoring"])


def test_plug_in_predictor_fails_the_seen_family_calibration(seen_family_cells):
    # Negative control: without the parameters' and the family effect's uncertainty the
    # intervals are too narrow and under-cover.
    with pytest.raises(AssertionError, match="coverage"):
        controls.assert_calibrated(seen_family_cells["plug-in"])


def test_family_ignoring_predictor_fails_the_seen_family_sharpness(seen_family_cells):
    # Negative control: alpha ~ N(0, corr) is the distribution the truth was drawn from, so
    # these intervals are calibrated; blind to the family's scores, they are no sharper than
    # themselves with another seed, which is what the criterion must detect.
    controls.assert_calibrated(seen_family_cells["family-ignoring"])
    with pytest.raises(AssertionError, match="not smaller"):
        controls.assert_sharper(seen_family_cells["family-ignoring"], seen_family_cells["family-ignoring, seed 3"])


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
    result = bl.predict_draws(mle_fit, design, seed=4, n_draws=300)
    table, draws = result.table, result.draws
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
    assert "Prediction(draws (sample: 300" in repr(result) and "<table" in result._repr_html_()


def test_removed_arguments_say_what_to_call(mle_fit, small_sim):
    design = _new_design([small_sim[0].families[0]], 1, seed=11)
    with pytest.raises(bl.BayesLslError, match="predict_draws"):
        bl.predict(mle_fit, design, return_draws=True)
    with pytest.raises(TypeError):
        bl.predict(mle_fit, design, 0.9)  # level is keyword-only
    with pytest.raises(TypeError, match="unexpected"):
        bl.predict(mle_fit, design, levl=0.9)


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
    draws = bl.predict_draws(nuts_fit, design, seed=0).draws
    posterior = nuts_fit.posterior["alpha"].sel(family=fam).stack(sample=("chain", "draw")).values.T
    assert draws.sizes["sample"] == posterior.shape[0]
    assert np.allclose(np.sort(draws["alpha"].values[:, 0], axis=0), np.sort(posterior, axis=0))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.drop(columns="size"), "lacks column"),
        (lambda d: d.assign(size=-1.0), "'size': -1.0 in row 0 .* must be positive"),
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


@pytest.mark.parametrize(
    ("size", "tokens", "match"),
    [
        (7e9, 2e12, r"size 7e\+09 in row 0 \(model 'x-0'\) is over 10,000"),  # raw counts
        (7.0, 2000.0, r"tokens 2000 in row 0 \(model 'x-0'\) is over 1,000"),  # 2000 T tokens
    ],
)
def test_raw_counts_are_refused_with_the_units(mle_fit, size, tokens, match):
    new = pd.DataFrame({"model": ["x-0"], "family": ["x"], "size": [size], "tokens": [tokens]})
    with pytest.raises(bl.DataError, match=match) as err:
        bl.predict(mle_fit, new, n_draws=20)
    assert "size is in billions of parameters, tokens in trillions" in str(err.value)


def test_extrapolation_warns_and_is_flagged_in_the_table(mle_fit, small_sim):
    data, _ = small_sim
    size_max, tokens_min = data.size.max(), data.tokens.min()
    new = pd.DataFrame({"model": ["inside", "huge", "few-tokens"], "family": "x",
                        "size": [np.median(data.size), 10 * size_max, 1.0],
                        "tokens": [np.median(data.tokens), 1.0, tokens_min / 5]})  # fmt: skip
    with pytest.warns(UserWarning, match="extrapolating") as rec:
        table = bl.predict(mle_fit, new, n_draws=50)
    message = " ".join(str(w.message) for w in rec)
    # Each model outside the range is named with its covariate, value and the data's range.
    assert f"model 'huge': size {10 * size_max:.3g} B parameters, 10 times outside" in message
    assert f"{data.size.min():.3g} to {size_max:.3g}" in message
    assert f"model 'few-tokens': tokens {tokens_min / 5:.3g} T tokens, 5 times outside" in message
    assert "'inside'" not in message
    factor = table.groupby("model")["extrapolation"].first()
    assert factor["inside"] == 1.0
    np.testing.assert_allclose([factor["huge"], factor["few-tokens"]], [10.0, 5.0])


def test_new_model_messages_match_fit(mle_fit):
    """One message per mistake: ``predict`` reports a bad new model as ``ScalingData.from_frame`` does."""
    bench = mle_fit.attrs["benchmarks"][0]
    good = pd.DataFrame({"model": ["a", "b"], "family": ["f", "g"], "size": [1.0, 7.0], "tokens": [1.0, 2.0]})
    for bad in (good.assign(size=["1", "7B"]), good.assign(tokens=[1.0, -2.0]), good.assign(**{bench: [0.5, 55.0]})):
        with pytest.raises(bl.DataError) as in_fit:
            bl.ScalingData.from_frame(bad.assign(**{bench: bad.get(bench, 0.5)}))
        with pytest.raises(bl.DataError) as in_predict:
            bl.predict(mle_fit, bad, n_draws=20)
        assert str(in_predict.value) == str(in_fit.value)
    assert "non-numeric or missing value '7B' in row 1 (model 'b')" in _message(mle_fit, good.assign(size=["1", "7B"]))
    assert "look like percentages" in _message(mle_fit, good.assign(**{bench: [0.5, 55.0]}))


def _message(fit, new) -> str:
    with pytest.raises(bl.DataError) as err:
        bl.predict(fit, new, n_draws=20)
    return str(err.value)


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
        draws = bl.predict_draws(fit, design, n_draws=4000, seed=0).draws
    # Beta variance mu (1 - mu) / (phi + 1): recover phi of each new model from its draws
    # at fixed parameters and compare with exp(phi_a + x' phi_s) (MC error ~3% at 4000 draws;
    # the family effect is drawn too, so compare the within-draw noise via y - mu).
    post = fit.posterior
    phi = np.exp(post["phi_a"].values[0, 0] + draws["x"].values @ post["phi_s"].values[0, 0])  # (model, benchmark)
    mu, y = draws["mu"].values, draws["y"].values
    implied = (mu * (1 - mu)).mean(0) / ((y - mu) ** 2).mean(0) - 1
    np.testing.assert_allclose(implied, phi, rtol=0.15)
