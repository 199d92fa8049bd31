"""Tests for bayes_lsl.raw: raw accuracies replacing normalized v2 scores."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from bayes_lsl import raw as raw_mod

BENCH = list(raw_mod.BENCHMARKS)
FLOORS = {"gpqa": 0.25, "musr": 0.343298, "bbh": 0.288504, "mmlu-pro": 0.1}

# Established on the published files: 111 leaderboard fine-tunes carry
# normalized scores; IFEval and MATH Lvl 5 are normalized as raw * 100, so
# only the four chance-corrected benchmarks change.
N_ROWS = 111
PER_BENCH = {"bbh": 111, "mmlu-pro": 111, "gpqa": 111, "musr": 111}
# Replaced rows whose *raw* accuracy is itself below chance (the leaderboard
# clipped the normalized score at or near 0); these are not normalized values.
RAW_BELOW_FLOOR = {
    "gpqa": {
        "fietje-2-chat",
        "fietje-2-instruct",
        "qwen-las-v0.1",
        "suzume-llama-3-8b-multilingual-orpo-borda-half",
    },
    "musr": {
        "fietje-2-instruct",
        "llama-3-8b-magpie-align-sft-v0.1",
        "llama-3-8b-magpie-align-sft-v0.3",
        "llama-3-8b-magpie-align-v0.1",
        "llama-3-8b-magpie-align-v0.3",
        "smollm-1.7b-instruct-ifeval",
        "suzume-llama-3-8b-multilingual-orpo-borda-full",
        "openlongcot-base-gemma2-2b",
        "phi-1_5-instruct-v0.1",
        "phi-2-instruct-apo",
        "gemma-2-9b-moth",
    },
    "bbh": {"qwen2-0.5b-abyme"},
    "mmlu-pro": set(),
}


@pytest.fixture(scope="module")
def data(data_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    dump = pd.read_csv(data_dir / "raw" / "open-llm-leaderboard_new.csv", index_col=0, low_memory=False)
    return pd.read_csv(data_dir / "df_full_v2.csv", index_col=0), dump


@pytest.fixture(scope="module")
def result(data):
    return raw_mod.raw_v2_scores(*data)


def test_change_counts(result):
    _, changes = result
    assert list(changes.columns) == ["model", "benchmark", "paper", "raw"]
    assert changes.index.nunique() == N_ROWS
    assert changes["benchmark"].value_counts().to_dict() == PER_BENCH
    assert len(changes) == sum(PER_BENCH.values()) == 444


def test_no_ambiguous_match(data, caplog):
    with caplog.at_level(logging.WARNING, logger=raw_mod.__name__):
        raw_mod.raw_v2_scores(*data)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_no_normalized_value_survives(data, result):
    out, changes = result
    # Running the replacement again finds nothing left to replace.
    _, again = raw_mod.raw_v2_scores(out, data[1])
    assert again.empty
    # Every replaced cell moved up (raw >= normalized), never stayed put.
    assert (changes["raw"] > changes["paper"]).all()


def test_floors_after_replacement(data, result):
    v2, _ = data
    out, changes = result
    replaced = out.loc[changes.index.unique()]
    for bench, floor in FLOORS.items():
        below = replaced[replaced[bench] < floor]
        # Only raw sub-chance accuracies remain, and only slightly below chance
        # (a normalized score would sit near 0).
        assert set(below["model"]) == RAW_BELOW_FLOOR[bench], bench
        assert (below[bench] > floor - 0.05).all(), bench
        # Before: most replaced rows were below the floor.
        assert (v2.loc[replaced.index, bench] < floor).sum() > len(below)


def test_raw_values_in_unit_interval(result):
    out, changes = result
    assert changes["raw"].between(0, 1).all()
    assert out[BENCH].notna().all().all()
    assert ((out[BENCH] >= 0) & (out[BENCH] <= 1)).all().all()


def test_unflagged_rows_and_other_columns_unchanged(data, result):
    v2, _ = data
    out, changes = result
    rows = changes.index.unique()
    pd.testing.assert_frame_equal(out.drop(index=rows), v2.drop(index=rows))
    other = [c for c in v2.columns if c not in BENCH]
    pd.testing.assert_frame_equal(out[other], v2[other])
    # IFEval and MATH of replaced rows are unchanged up to float noise.
    pd.testing.assert_frame_equal(
        out.loc[rows, ["ifeval", "math"]],
        v2.loc[rows, ["ifeval", "math"]],
        atol=1e-12,
        rtol=0,
    )


def test_duplicate_name_rows_get_their_own_entry(data, result):
    # "l3-pneuma-8b" appears twice in v2 (Kquant03 and Replete-AI repos).
    v2, dump = data
    out, _ = result
    rows = v2.index[v2["model"] == "l3-pneuma-8b"]
    assert len(rows) == 2
    got = set(out.loc[rows, "gpqa"].round(9))
    want = set(
        dump.loc[
            dump["fullname"].str.lower().str.endswith("/l3-pneuma-8b"), "GPQA Raw"
        ].round(9)
    )
    assert got == want and len(got) == 2


def test_missing_column_raises(data):
    v2, dump = data
    with pytest.raises(ValueError, match="GPQA Raw"):
        raw_mod.raw_v2_scores(v2, dump.drop(columns="GPQA Raw"))
