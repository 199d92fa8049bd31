"""The data layer: the leaderboard loader and every validation rule of ScalingData.from_frame."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_lsl as bl
from bayes_lsl.data import KNOWN_FLOORS, PAPER_ANCHORS, DataError, ScalingData
from bayes_lsl.sources import DataNotFoundError


def test_paper_counts(paper):
    assert paper.n_models == 286
    assert len(paper.families) == 170
    assert paper.benchmarks == PAPER_ANCHORS
    obs = paper.observed
    v1 = obs[:, [paper.benchmarks.index(b) for b in ("arc", "hellaswag", "mmlu", "truthfulqa", "winogrande", "gsm8k")]]
    v2 = obs[:, [paper.benchmarks.index(b) for b in ("ifeval", "bbh", "math", "mmlu-pro", "gpqa", "musr")]]
    assert obs.all(axis=1).sum() == 98
    assert (v1.all(axis=1) & ~v2.any(axis=1)).sum() == 70
    assert (v2.all(axis=1) & ~v1.any(axis=1)).sum() == 118
    # Missingness comes in whole leaderboards: a model has all six of a version or none.
    assert ((v1.all(axis=1) | ~v1.any(axis=1)) & (v2.all(axis=1) | ~v2.any(axis=1))).all()
    np.testing.assert_allclose(paper.floors, [KNOWN_FLOORS[b] for b in paper.benchmarks])


def test_paper_duplicate_kept_and_renamed(paper):
    names = list(paper.models)
    assert "l3-pneuma-8b" in names and "l3-pneuma-8b (2)" in names
    assert len(set(names)) == len(names)


def test_scores_clipped_into_open_interval(paper):
    s = paper.scores[paper.observed]
    assert s.min() >= paper.eps and s.max() <= 1 - paper.eps
    # MATH has 37 exact zeros in the files: they sit at eps now.
    assert np.sum(paper.scores[:, paper.benchmarks.index("math")] == paper.eps) >= 37


def test_covariates_standardized_and_reused(paper):
    x = paper.x
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose(paper.covariates(paper.size[:3], paper.tokens[:3]), x[:3])
    log_n, log_d = np.log(7.0), np.log(2.0)
    expect = (np.array([log_n, log_d, log_n * log_d]) - paper.covariate_center) / paper.covariate_scale
    np.testing.assert_allclose(paper.covariates([7.0], [2.0])[0], expect)


def test_frame_round_trip(paper):
    again = ScalingData.from_frame(paper.to_frame())
    np.testing.assert_array_equal(again.scores, paper.scores)
    assert again.benchmarks == paper.benchmarks and list(again.models) == list(paper.models)
    np.testing.assert_allclose(again.covariate_center, paper.covariate_center)


def test_xarray_dims(paper):
    ds = paper.to_xarray()
    assert ds["scores"].dims == ("model", "benchmark")
    assert ds.sizes["model"] == 286 and ds.sizes["benchmark"] == 12
    assert ds["x"].dims == ("model", "covariate")


def test_below_floor_warning_counts(data_dir):
    with pytest.warns(UserWarning, match="below their benchmark's chance floor") as rec:
        bl.load_leaderboard("paper", data_dir=data_dir)
    msg = str(rec[0].message)
    assert "'gpqa': 118" in msg and "'musr': 120" in msg and "'bbh': 67" in msg and "'mmlu-pro': 9" in msg


def test_raw_variant(data_dir, paper):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = bl.load_leaderboard("raw", data_dir=data_dir)
    assert raw.n_models == paper.n_models and list(raw.models) == list(paper.models)
    changed = ~np.isclose(raw.scores, paper.scores, equal_nan=True, atol=1e-9)
    per_bench = dict(zip(raw.benchmarks, changed.sum(axis=0), strict=True))
    assert per_bench["gpqa"] == per_bench["musr"] == per_bench["bbh"] == per_bench["mmlu-pro"] == 111
    assert sum(per_bench.values()) == 444
    # Every changed cell moved up: a normalized score is below its raw accuracy.
    assert (raw.scores[changed] > paper.scores[changed]).all()


def test_below_floor_warning_names_the_variant_only_for_the_leaderboard(data_dir):
    with pytest.warns(bl.data.BelowFloorWarning, match="variant='raw'"):
        bl.load_leaderboard("paper", data_dir=data_dir)
    with pytest.warns(bl.data.BelowFloorWarning) as rec:
        bl.load_leaderboard("raw", data_dir=data_dir)
    assert "genuine raw accuracies" in str(rec[0].message) and "variant='raw' replaces" not in str(rec[0].message)


def test_below_floor_warning_on_own_data_does_not_mention_the_leaderboard():
    with pytest.warns(UserWarning, match=r"below their benchmark's chance floor: \{'mmlu': 1\}") as rec:
        ScalingData.from_frame(frame(mmlu=[0.1] + [0.5] * 7))
    assert "leaderboard" not in str(rec[0].message) and "variant" not in str(rec[0].message)


def test_example_loads_without_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = bl.load_example()
    assert [str(w.message) for w in caught] == []
    # The example does have scores below the floors (the model's Beta noise): they are not hidden, only not warned.
    assert (np.nan_to_num(data.scores, nan=1.0) < data.floors).any()


def test_missing_files_error_names_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("BAYES_LSL_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError, match="BAYES_LSL_DATA") as err:
        bl.load_leaderboard(data_dir=tmp_path, download=False)
    assert "df_full_v1.csv" in str(err.value)
    assert "github.com/felipemaiapolo/statistical-scaling-law" in str(err.value)


def test_env_variable_is_used(data_dir, monkeypatch):
    monkeypatch.setenv("BAYES_LSL_DATA", str(data_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert bl.load_leaderboard(download=False).n_models == 286


def test_unknown_variant(data_dir):
    with pytest.raises(DataError, match="unknown variant"):
        bl.load_leaderboard("normalized", data_dir=data_dir)


# ------------------------------------------------------------------ validation
def frame(**overrides) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 8
    df = pd.DataFrame(
        {
            "model": [f"m{i}" for i in range(n)],
            "family": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "size": np.geomspace(0.5, 70, n),
            "tokens": np.tile([1.0, 2.0], n // 2),
            "mmlu": rng.uniform(0.3, 0.8, n),
            "gsm8k": rng.uniform(0.1, 0.6, n),
            "arc": rng.uniform(0.3, 0.8, n),
        }
    )
    for k, v in overrides.items():
        df[k] = v
    return df


def test_valid_frame():
    d = ScalingData.from_frame(frame())
    assert d.benchmarks == ("mmlu", "arc", "gsm8k")  # known benchmarks in the paper's anchor order
    assert d.families == ("a", "b", "c", "d")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda df: df.drop(columns="tokens"), r"missing required column\(s\) \['tokens'\]"),
        (lambda df: df.assign(size=["x"] + [1.0] * 7), r"column 'size': non-numeric .*row 0 \(model 'm0'\)"),
        (lambda df: df.assign(size=[1.0] * 3 + [0.0] + [1.0] * 4), r"column 'size': 0.0 in row 3 \(model 'm3'\)"),
        (lambda df: df.assign(tokens=[-1.0] + [1.0] * 7), r"column 'tokens': -1.0 in row 0"),
        (lambda df: df.assign(mmlu=[55.0] * 8), r"benchmark 'mmlu'.*outside \[0, 1\].*percentages"),
        (lambda df: df.assign(mmlu=[1.5] + [0.5] * 7), r"benchmark 'mmlu': score 1.5 in row 0"),
        (lambda df: df.assign(arc=["bad"] + [0.5] * 7), r"benchmark 'arc': non-numeric score 'bad' in row 0"),
        (lambda df: df.assign(family=[None] + ["a"] * 7), r"missing family label in row 0"),
        (lambda df: df.assign(model=[None] + [f"m{i}" for i in range(1, 8)]), r"missing model label in row 0"),
        (lambda df: df.assign(mylab=[0.5] * 8), r"benchmark 'mylab' has no chance-level floor"),
        (lambda df: df.assign(mmlu=np.nan, gsm8k=np.nan, arc=[np.nan] + [0.5] * 7), r"model 'm0' has no scores"),
        (lambda df: df.assign(arc=np.nan), r"benchmark\(s\) \['arc'\] have no scores"),
        (lambda df: df.head(4), r"only 4 models"),
        (lambda df: df.assign(tokens=1.0), r"log_tokens is constant"),
        # Raw counts instead of billions and trillions.
        (lambda df: df.assign(size=df["size"] * 1e9),
         r"size 5e\+08 in row 0 .*billions of parameters, tokens in trillions"),  # fmt: skip
        (lambda df: df.assign(tokens=[2000.0] + [1.0] * 7), r"tokens 2000 in row 0 .*over 1,000"),
        (
            lambda df: pd.concat([df, df.tail(1).assign(mmlu=0.9)], ignore_index=True),
            r"model 'm7' appears more than once with different data",
        ),
    ],
)
def test_validation_errors(change, match):
    with pytest.raises(DataError, match=match):
        ScalingData.from_frame(change(frame()))


def test_unknown_benchmark_and_anchor():
    with pytest.raises(DataError, match=r"unknown benchmark\(s\) \['hellaswag'\]"):
        ScalingData.from_frame(frame(), benchmarks=["mmlu", "hellaswag"])
    with pytest.raises(DataError, match=r"anchor\(s\) \['math'\] are not among the benchmarks"):
        ScalingData.from_frame(frame(), anchors=["math"])


def test_custom_floors_and_anchors():
    d = ScalingData.from_frame(frame(mylab=0.5), floors={"mylab": 0.2}, anchors=["gsm8k", "mylab"])
    assert d.benchmarks[:2] == ("gsm8k", "mylab") and d.anchors == ("gsm8k", "mylab")
    assert d.floors[1] == 0.2


def test_exact_duplicate_dropped_with_warning():
    df = frame()
    with pytest.warns(UserWarning, match="dropped 1 exact duplicate"):
        d = ScalingData.from_frame(pd.concat([df, df.tail(1)], ignore_index=True))
    assert d.n_models == 8


def test_zero_and_one_clipped_with_log(caplog):
    with caplog.at_level(logging.INFO, logger="bayes_lsl.data"):
        d = ScalingData.from_frame(frame(gsm8k=[0.0, 1.0] + [0.5] * 6), eps=0.01)
    assert d.scores[0, d.benchmarks.index("gsm8k")] == 0.01
    assert d.scores[1, d.benchmarks.index("gsm8k")] == 0.99
    assert "moved 2 score(s)" in caplog.text
