"""Scoring held-out predictions: the cluster bootstrap, paired differences, family groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_lsl.data import DataError
from bayes_lsl.errors import BayesLslError
from bayes_lsl.holdout import compare_predictions, evaluate_holdout, family_groups, score_predictions

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
