"""Held-out predictions: the cluster bootstrap, paired differences, family groups, proper
scores, and calibration on simulated data against negative controls (``controls.py``)."""

from __future__ import annotations

import warnings

import controls
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_lsl.baseline import fit_baseline
from bayes_lsl.data import DataError
from bayes_lsl.errors import BayesLslError
from bayes_lsl.holdout import (
    cell_scores,
    compare_predictions,
    cross_validate,
    evaluate_holdout,
    family_groups,
    score_predictions,
)
from bayes_lsl.scores import crps, interval_score, log_predictive_density
from bayes_lsl.simulate import random_design, random_parameters, simulate

N_BOOT = 4000
# Monte Carlo error of a bootstrap standard deviation from N_BOOT near-normal replicates:
# relative sd 1 / sqrt(2 (N_BOOT - 1)); four of those.
SE_RTOL = 4 / np.sqrt(2 * (N_BOOT - 1))


def _clustered_cells(errors: np.ndarray, n_benchmarks: int) -> pd.DataFrame:
    """One model per family; its ``n_benchmarks`` cells all have the family's absolute error."""
    rows = [{"model": f"m{c}", "family": f"f{c}", "benchmark": f"b{j}", "observed": 0.5, "mean": 0.5 + e}
            for c, e in enumerate(errors) for j in range(n_benchmarks)]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def errors() -> np.ndarray:
    return np.random.default_rng(3).uniform(0.01, 0.2, size=8)


def test_clustered_se_is_the_between_cluster_se(errors):
    # Cells of a family are perfectly correlated: the 96 cells carry the information of 8.
    df = _clustered_cells(errors, n_benchmarks=12)
    clustered = score_predictions(df, cluster="family", n_boot=N_BOOT, seed=0).loc["overall"]
    naive = score_predictions(df, cluster=None, n_boot=N_BOOT, seed=0).loc["overall"]
    # The bootstrap of G equal clusters: variance of the mean of G draws from the cluster means.
    between = errors.std() / np.sqrt(len(errors))
    cells = np.repeat(errors, 12)
    assert clustered["clusters"] == 8 and naive["clusters"] == 96
    assert clustered["mae"] == pytest.approx(errors.mean())
    assert clustered["mae_se"] == pytest.approx(between, rel=SE_RTOL)
    assert naive["mae_se"] == pytest.approx(cells.std() / np.sqrt(len(cells)), rel=SE_RTOL)
    assert clustered["mae_se"] > 2 * clustered["mae_se_iid"]
    np.testing.assert_allclose(clustered["mae_se_iid"], cells.std(ddof=1) / np.sqrt(len(cells)))
    assert clustered["mae_lower"] < errors.mean() < clustered["mae_upper"]
    # The percentile interval of a near-normal statistic spans about +- 1.96 se; a mean of 8
    # draws is only nearly normal, hence the loose tolerance (Monte Carlo error alone: ~2%).
    assert clustered["mae_upper"] - clustered["mae_lower"] == pytest.approx(2 * 1.96 * between, rel=0.15)


def test_group_is_derived_from_families_when_absent(errors):
    df = _clustered_cells(errors, n_benchmarks=3)
    # Family f1's instruction-tuned sibling: a second family, the same group.
    df = pd.concat([df, df[df["family"] == "f1"].assign(model="m1-it", family="f1-instruct")], ignore_index=True)
    assert score_predictions(df).loc["overall", "clusters"] == 8
    assert score_predictions(df, cluster="family").loc["overall", "clusters"] == 9
    with pytest.raises(ValueError, match="cluster=None"):
        score_predictions(df.drop(columns="family"))
    # A missing cluster label is named, not a numpy error about negative indices.
    with pytest.raises(DataError, match=r"column 'family' has missing labels in rows \[0\]"):
        score_predictions(df.assign(family=df["family"].mask(df.index == 0)), cluster="family")


def test_paired_difference_uses_the_same_resamples(errors):
    ours = _clustered_cells(errors, n_benchmarks=12)
    # The reference is worse by exactly 0.01 on every cell: on any resample the MAEs differ
    # by 0.01, so a paired interval has no width; independent resamples would give it about
    # sqrt(2) times the MAE's standard error.
    reference = ours.assign(mean=ours["mean"] + 0.01).sample(frac=1.0, random_state=1)  # row order must not matter
    diff = compare_predictions(ours, reference, cluster="family", n_boot=N_BOOT).loc["overall"]
    alone = score_predictions(ours, cluster="family", n_boot=N_BOOT).loc["overall"]
    assert alone["mae_se"] > 0.01
    assert diff["difference"] == pytest.approx(-0.01)
    assert diff["difference_se"] < 1e-12
    assert diff["difference_lower"] == pytest.approx(-0.01) and diff["difference_upper"] == pytest.approx(-0.01)
    assert diff["mae"] == pytest.approx(alone["mae"]) and diff["mae_reference"] == pytest.approx(alone["mae"] + 0.01)


def test_paired_difference_beats_unpaired_se(errors):
    # Reference errors share the cluster-level part and differ by independent noise per cell.
    ours = _clustered_cells(errors, n_benchmarks=12)
    noise = np.random.default_rng(4).uniform(0.0, 0.02, size=len(ours))
    reference = ours.assign(mean=ours["mean"] + noise)
    diff = compare_predictions(ours, reference, cluster="family", n_boot=N_BOOT).loc["overall"]
    se_ours = score_predictions(ours, cluster="family", n_boot=N_BOOT).loc["overall", "mae_se"]
    se_ref = score_predictions(reference, cluster="family", n_boot=N_BOOT).loc["overall", "mae_se"]
    assert diff["difference"] == pytest.approx(-noise.mean())
    assert diff["difference_se"] < 0.2 * np.hypot(se_ours, se_ref)
    assert diff["difference_upper"] < 0  # the shared part cancels: ours is better on every resample


def test_unpaired_cells_are_refused(errors):
    ours = _clustered_cells(errors, n_benchmarks=3)
    with pytest.raises(DataError, match="same cells"):
        compare_predictions(ours, ours.iloc[1:])
    with pytest.raises(DataError, match="same cells"):
        compare_predictions(ours, ours.assign(observed=0.6))


def test_family_groups():
    families = ["qwen2", "qwen2-instruct", "gemma-2", "gemma-2-it", "yi-1.5-chat", "yi-1.5", "llama-3-instruct"]
    assert family_groups(families) == {
        "qwen2": "qwen2", "qwen2-instruct": "qwen2", "gemma-2": "gemma-2", "gemma-2-it": "gemma-2",
        "yi-1.5": "yi-1.5", "yi-1.5-chat": "yi-1.5", "llama-3-instruct": "llama-3-instruct",
    }  # fmt: skip


def test_evaluate_holdout_scores_by_group_and_compares(small_sim):
    data, _ = small_sim
    held = [data.models[i] for i in range(0, data.n_models, 6)]
    robust = evaluate_holdout(data, held, method="baseline", n_boot=500)
    squares = evaluate_holdout(data, held, method="baseline", loss="least_squares", n_boot=500)
    groups = family_groups(data.families)
    assert (robust.predictions["group"] == robust.predictions["family"].map(groups)).all()
    overall = robust.summary.loc["overall"]
    assert overall["clusters"] == robust.predictions["group"].nunique()
    assert overall["mae_lower"] <= overall["mae"] <= overall["mae_upper"]
    assert robust.scoring == {"cluster": "group", "n_boot": 500, "level": 0.95, "seed": 0}
    diff = robust.compare(squares).loc["overall"]
    assert diff["n"] == overall["n"]
    assert diff["difference"] == pytest.approx(overall["mae"] - squares.summary.loc["overall", "mae"])
    assert diff["difference_lower"] <= diff["difference"] <= diff["difference_upper"]


def test_largest_in_family_holds_out_each_familys_largest_model(small_sim):
    from bayes_lsl.holdout import cross_validate

    data, _ = small_sim
    frame = data.to_frame()
    sizes = frame.groupby("family")["size"]
    eligible = sizes.nunique()[sizes.nunique() >= 2].index
    largest = frame[frame["family"].isin(eligible) & frame["size"].eq(sizes.transform("max"))]
    assert 0 < len(eligible) and len(largest) < len(frame)
    cv = cross_validate(data, n_folds=3, method="baseline", scheme="largest-in-family", n_boot=200, progress=False)
    predicted = cv.predictions.groupby("model")["fold"].agg(["nunique", "first"])
    # Exactly the largest models of the eligible families, each in one fold, all of a family in the same fold.
    assert set(predicted.index) == set(largest["model"])
    assert (predicted["nunique"] == 1).all()
    assert largest.assign(fold=largest["model"].map(predicted["first"])).groupby("family")["fold"].nunique().max() == 1
    # The rest of each family stayed in its fold's fit: the baseline knows the family (an intercept of its own).
    whole = cross_validate(data, n_folds=3, method="baseline", scheme="family", n_boot=200, progress=False)
    assert set(whole.predictions["model"]) == set(frame["model"][frame[list(data.benchmarks)].notna().any(axis=1)])
    with pytest.raises(BayesLslError, match="unknown cross-validation scheme 'largest'"):
        cross_validate(data, scheme="largest", method="baseline")


# ------------------------------------------------------------------ proper scores
def _draws(rng: np.random.Generator, models: list[str], benchmarks: list[str], S: int = 50) -> xr.Dataset:
    shape = (S, len(models), len(benchmarks))
    mu, phi = rng.uniform(0.2, 0.8, shape), rng.uniform(5, 50, shape)
    dims = ("sample", "model", "benchmark")
    return xr.Dataset({"y": (dims, rng.beta(mu * phi, (1 - mu) * phi)), "mu": (dims, mu), "phi": (dims, phi)},
                      coords={"model": models, "benchmark": benchmarks})  # fmt: skip


def test_cell_scores_pick_each_rows_draws():
    rng = np.random.default_rng(5)
    draws = _draws(rng, ["m0", "m1"], ["a", "b", "c"])
    table = pd.DataFrame({"model": ["m1", "m0", "m1"], "benchmark": ["c", "a", "a"], "observed": [0.3, 0.0, np.nan],
                          "lower": [0.2, 0.1, 0.1], "upper": [0.6, 0.5, 0.5]})  # fmt: skip
    got = cell_scores(table, draws, level=0.9, eps=1e-3)
    cell = draws.sel(model="m1", benchmark="c")
    mu, phi = cell["mu"].values, cell["phi"].values
    assert got.loc[0, "crps"] == pytest.approx(crps(cell["y"].values, 0.3))
    assert got.loc[0, "log_density"] == pytest.approx(log_predictive_density(mu * phi, (1 - mu) * phi, 0.3))
    assert got.loc[0, "interval_score"] == pytest.approx(0.4)
    # A score of 0 is scored where the likelihood put it, at eps; 0.1 below the interval: 0.4 + 20 x 0.1.
    first = draws.sel(model="m0", benchmark="a")
    a = first["mu"].values * first["phi"].values
    assert got.loc[1, "log_density"] == pytest.approx(log_predictive_density(a, first["phi"].values - a, 1e-3))
    assert got.loc[1, "interval_score"] == pytest.approx(0.4 + 20 * 0.1)
    assert got.loc[2, ["crps", "interval_score", "log_density"]].isna().all()
    with pytest.raises(ValueError, match="no draws"):
        cell_scores(table.assign(model="m9"), draws)


def test_proper_scores_are_summarized_and_paired(errors):
    ours = _clustered_cells(errors, n_benchmarks=4)
    rng = np.random.default_rng(6)
    ours = ours.assign(crps=rng.uniform(0.01, 0.1, len(ours)), interval_score=rng.uniform(0.1, 1, len(ours)),
                       log_density=rng.normal(1, 0.5, len(ours)))  # fmt: skip
    summary = score_predictions(ours, cluster="family", n_boot=500).loc["overall"]
    for name in ("crps", "interval_score", "log_density"):
        assert summary[name] == pytest.approx(ours[name].mean())
        assert summary[f"{name}_lower"] < summary[name] < summary[f"{name}_upper"]
    # Every proper score of the reference worse by a constant: paired intervals without width.
    reference = ours.assign(crps=ours["crps"] + 0.01, interval_score=ours["interval_score"] + 0.2,
                            log_density=ours["log_density"] - 0.3)  # fmt: skip
    diff = compare_predictions(ours, reference, cluster="family", n_boot=500).loc["overall"]
    for name, delta in (("crps", -0.01), ("interval_score", -0.2), ("log_density", 0.3)):
        assert diff[f"{name}_difference"] == pytest.approx(delta)
        assert diff[f"{name}_difference_lower"] == pytest.approx(delta)
        assert diff[f"{name}_difference_upper"] == pytest.approx(delta)
    assert diff["difference"] == pytest.approx(0.0)  # the MAEs' columns keep their names
    # Predictions without draws (a point method, an old file): the proper scores are NaN, not an error.
    bare = score_predictions(ours.drop(columns=["crps", "interval_score", "log_density"]), cluster="family")
    assert bare.loc["overall", ["crps", "interval_score", "log_density"]].isna().all()


# ------------------------------------------------------------------ simulated data and negative controls
def _holdout_cells(data, held: list[str], K: int = 2, seed: int = 0, **fit_options):
    """``evaluate_holdout`` on ``held`` (whole rows held out), and the scored cells of its
    predictions and of the controls' (``controls.PREDICTIVES``) on the same fit and split."""
    result = evaluate_holdout(data, held, K=K, method="mle", progress=False, seed=seed, **fit_options)
    frame = data.to_frame().set_index("model").loc[held].reset_index()
    new, observed = frame[["model", "family", "size", "tokens"]], frame[["model", *data.benchmarks]]
    fitted = result.fits[0]
    cells = {name: controls.scored_cells(predictive(fitted, new, seed), fitted, observed)
             for name, predictive in controls.PREDICTIVES.items()}  # fmt: skip
    # The held-out predictions and their scores are bl.predict_draws's on the training fit.
    predictions = result.predictions.rename(columns={"observed": "reported"})
    mine = controls.interval_cells(predictions, observed).merge(
        result.predictions[["model", "benchmark", "crps", "interval_score", "log_density"]], on=["model", "benchmark"]
    )
    pd.testing.assert_frame_equal(mine, cells["ours"])
    return result, cells


@pytest.fixture(scope="module")
def holdout_cells(small_sim):
    """Two of the four models of each of the 30 simulated families held out (30 independent
    units, about 320 scores), each predictor's scored cells, the family-ignoring one twice."""
    data, _ = small_sim
    held = [data.models[4 * f + k] for f in range(30) for k in (f % 4, (f + 2) % 4)]
    result, cells = _holdout_cells(data, held, n_starts=2)
    frame = data.to_frame().set_index("model").loc[held].reset_index()
    again = controls.family_ignoring_draws(result.fits[0], frame[["model", "family", "size", "tokens"]], 1)
    cells["family-ignoring, seed 1"] = controls.scored_cells(again, result.fits[0],
                                                            frame[["model", *data.benchmarks]])  # fmt: skip
    return data, held, result, cells


def test_evaluate_holdout_on_simulated_data(holdout_cells):
    data, held, result, cells = holdout_cells
    summary = result.summary
    n_held = int(sum(data.observed[np.isin(data.models, held)].sum(1)))
    assert summary.loc["overall", "n"] == n_held == len(cells["ours"])
    assert np.isclose(summary.loc["overall", "coverage"], cells["ours"]["covered"].mean())
    assert np.isclose(summary.loc["overall", "crps"], cells["ours"]["crps"].mean())
    # Calibrated up to the sampling error of 30 families (two models each held out, half
    # of the training data gone: the parameters' and family effects' uncertainty matters),
    # sharper than ignoring the family's other models, and better by both proper scores.
    controls.assert_calibrated(cells["ours"])
    controls.assert_sharper(cells["ours"], cells["family-ignoring"])
    controls.assert_better_scores(cells["ours"], cells["family-ignoring"])
    # Negative control: the plug-in predictor (no parameter or family-effect uncertainty)
    # under-covers beyond the same tolerance; the proper scores that see the spread (log
    # density, interval score) prefer ours to it.
    with pytest.raises(AssertionError, match="coverage"):
        controls.assert_calibrated(cells["plug-in"])
    controls.assert_better_scores(cells["ours"], cells["plug-in"], ("log_density", "interval_score"))
    baseline = evaluate_holdout(data, held, method="baseline")
    # The true model beats a per-benchmark sigmoid of FLOPs on data it generated, by the
    # MAE and by the proper scores, paired on the same family groups.
    diff = result.compare(baseline).loc["overall"]
    assert summary.loc["overall", "mae"] < baseline.summary.loc["overall", "mae"]
    assert diff["crps_difference_upper"] < 0 and diff["log_density_difference_lower"] > 0


def test_family_ignoring_predictor_fails_the_proper_score_criterion(holdout_cells):
    # Negative control of the criterion above: blind to the family's scores, the
    # family-ignoring predictor is no better than itself with another seed.
    *_, cells = holdout_cells
    for score in ("crps", "log_density"):
        with pytest.raises(AssertionError, match=f"{score}: not better"):
            controls.assert_better_scores(cells["family-ignoring"], cells["family-ignoring, seed 1"], (score,))


def test_baseline_predictive_scores(small_sim):
    data, _ = small_sim
    held = [data.models[i] for i in range(0, data.n_models, 6)]
    result = evaluate_holdout(data, held, method="baseline", n_boot=200)
    frame = data.to_frame().set_index("model").loc[held].reset_index()
    point = fit_baseline(data.drop_models(held)).predict(frame)
    # The mean is the authors' point prediction; the intervals and scores come from its draws.
    merged = result.predictions.merge(point, on=["model", "benchmark"], suffixes=("", "_point"))
    np.testing.assert_allclose(merged["mean"], merged["mean_point"])
    assert (result.predictions["lower"] < result.predictions["upper"]).all()
    overall = result.summary.loc["overall"]
    assert np.isfinite(overall[["coverage", "crps", "interval_score", "log_density"]].astype(float)).all()
    np.testing.assert_allclose(
        result.predictions["interval_score"],
        interval_score(result.predictions["lower"], result.predictions["upper"], result.predictions["observed"]),
    )


def test_cross_validate_scores_every_fold():
    # Baseline folds (seconds): every held-out cell gets its proper scores, as in evaluate_holdout.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, _ = simulate(random_parameters(K=1, J=4, seed=3), random_design(12, 3, seed=3), seed=4)
    result = cross_validate(data, n_folds=3, method="baseline", progress=False, n_boot=200)
    assert result.predictions["fold"].nunique() == 3
    assert result.predictions[["crps", "interval_score", "log_density"]].notna().all().all()
    assert result.summary.loc["overall", "n"] == int(data.observed.sum())


def replicated_holdout_cells(n_sets: int = 10) -> dict[str, pd.DataFrame]:
    """One model of each family held out of ``n_sets`` independent simulated sets like
    ``small_sim`` (30 families x 4 models): the cells of each predictor, pooled, with the
    units (set, family) independent.

    Small training sets, because that is where the plug-in's missing uncertainty shows: with
    100 families it is a few percent of the width, and its coverage is within sampling
    error of 0.95 (0.943 against ours 0.956 on 524 scores). Even here its deficit is small
    (about 0.025 over 5 sets, with a clustered standard error near 0.01 at 150 units), so
    the test pools 10 sets: about 300 units put the standard error near 0.007, and the
    deficit beyond the 1% test's tolerance (2.6 standard errors) with room to spare.
    """
    params = random_parameters(K=2, J=6, seed=1)
    pooled: dict[str, list[pd.DataFrame]] = {}
    for rep in range(n_sets):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data, _ = simulate(params, random_design(30, 4, seed=50 + rep), missing=0.15, seed=60 + rep)
        held = [data.models[4 * f + f % 4] for f in range(30)]  # each position in the family in turn
        _, cells = _holdout_cells(data, held, n_starts=2)
        for name, c in cells.items():
            pooled.setdefault(name, []).append(c.assign(unit=f"{rep}/" + c["unit"]))
    return {name: pd.concat(parts, ignore_index=True) for name, parts in pooled.items()}


@pytest.mark.slow
def test_holdout_calibration_rejects_the_plug_in_predictor():
    """Held-out models of 10 x 30 simulated families (300 units, about 5 minutes): ours
    calibrated and sharper than ignoring the family; the plug-in predictor under-covers."""
    cells = replicated_holdout_cells(10)
    controls.assert_calibrated(cells["ours"])
    controls.assert_sharper(cells["ours"], cells["family-ignoring"])
    with pytest.raises(AssertionError, match="coverage"):
        controls.assert_calibrated(cells["plug-in"])


def test_score_predictions_by_hand():
    df = pd.DataFrame({"benchmark": ["a", "a", "b"], "observed": [0.5, 0.2, 0.9], "mean": [0.4, 0.2, 0.6],
                       "lower": [0.45, 0.1, 0.5], "upper": [0.6, 0.3, 0.7]})  # fmt: skip
    s = score_predictions(df, cluster=None)  # no families: every score its own cluster
    assert np.isclose(s.loc["a", "mae"], 0.05) and np.isclose(s.loc["overall", "mae"], 0.4 / 3)
    assert np.isclose(s.loc["overall", "coverage"], 2 / 3) and np.isclose(s.loc["b", "width"], 0.2)
