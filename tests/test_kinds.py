"""Model kinds (base or tuned): the column, its validation, and the leaderboard rule."""

import numpy as np
import pandas as pd
import pytest

import bayes_lsl as bl
from bayes_lsl.errors import DataError
from bayes_lsl.kinds import kind_from_name, leaderboard_kinds


def _frame(kinds):
    rng = np.random.default_rng(0)
    n = len(kinds)
    return pd.DataFrame({
        "model": [f"m{i}" for i in range(n)], "family": [f"f{i // 2}" for i in range(n)],
        "size": rng.uniform(1, 70, n), "tokens": rng.uniform(0.5, 15, n), "kind": kinds,
        "mmlu": rng.uniform(0.3, 0.8, n), "arc": rng.uniform(0.3, 0.8, n),
    })  # fmt: skip


def test_kind_column_is_read_with_aliases_and_survives_round_trips():
    data = bl.ScalingData.from_frame(_frame(["base", "Pretrained", "chat", "instruct", "tuned", "BASE"]))
    assert list(data.kind) == ["base", "base", "tuned", "tuned", "tuned", "base"]
    assert "kind" not in data.benchmarks
    assert list(data.to_frame()["kind"]) == list(data.kind)
    assert list(data.drop_models(["m0"]).kind) == list(data.kind[1:])
    assert list(data.to_xarray()["kind"].values) == list(data.kind)
    assert "3 base, 3 tuned" in repr(data)
    assert bl.ScalingData.from_frame(_frame(["base"] * 6).drop(columns="kind")).kind is None


@pytest.mark.parametrize(
    ("value", "message"), [("chatty", "unknown kind 'chatty' in row 2"), (None, "missing value in row 2")]
)
def test_bad_kind_names_the_row(value, message):
    kinds = ["base", "tuned", value, "base", "tuned", "base"]
    with pytest.raises(DataError, match=message):
        bl.ScalingData.from_frame(_frame(kinds))


def test_name_rule():
    assert kind_from_name("Qwen1.5-14B-Chat") == "tuned"
    assert kind_from_name("gemma-2-2b-jpn-it") == "tuned"
    assert kind_from_name("deepseek-coder-33b-base") == "base"
    assert kind_from_name("llama-2-13b") is None
    assert kind_from_name("hermit-7b") is None  # "it" only as a whole token


def test_leaderboard_rule_order():
    dumps = [pd.DataFrame({"Model": ["org/llama-x-7b", "other/llama-x-7b", "org/tuned-y"], "T": ["🟢", "🔶", "💬"]})]
    kinds = leaderboard_kinds(["llama-x-7b", "tuned-y", "tuned-y (2)", "llama-x-7b-chat", "unlisted-1b"], dumps)
    assert list(kinds["kind"]) == ["base", "tuned", "tuned", "tuned", "base"]
    assert list(kinds["rule"]) == ["leaderboard", "leaderboard", "leaderboard", "name", "default"]


def test_leaderboard_kinds(data_dir):
    data = bl.load_leaderboard(data_dir=data_dir)
    frame = data.to_frame().set_index("model")
    # Kinds never split a family: fine-tunes are families of their own in the paper's files.
    assert frame.groupby("family")["kind"].nunique().max() == 1
    assert frame.loc[["llama-2-7b", "codellama-13b", "pythia-1b", "deepseek-coder-33b-base"], "kind"].eq("base").all()
    assert frame.loc[["llama-2-7b-chat", "gemma-7b-it", "qwen1.5-14b-chat", "openhermes-7b"], "kind"].eq("tuned").all()
    assert bl.load_leaderboard(data_dir=data_dir, kinds=False).kind is None


def test_missing_dump_says_how_to_skip_kinds(data_dir, tmp_path, monkeypatch):
    from bayes_lsl.sources import DataNotFoundError

    monkeypatch.delenv("BAYES_LSL_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("df_full_v1.csv", "df_full_v2.csv"):
        (folder / name).symlink_to((data_dir / name).resolve())
    with pytest.raises(DataNotFoundError, match="open-llm-leaderboard_old.csv.*kinds=False"):
        bl.load_leaderboard(data_dir=folder, download=False)
    assert bl.load_leaderboard(data_dir=folder, download=False, kinds=False).n_models == 286


def test_held_out_scores_ignore_the_kind_column(small_sim):
    data, _ = small_sim
    frame = data.to_frame()
    with_kinds = bl.ScalingData.from_frame(frame.assign(kind=np.where(frame.index % 2, "base", "tuned")),
                                           anchors=data.anchors)  # fmt: skip
    held = list(with_kinds.models[::7])
    result = bl.evaluate_holdout(with_kinds, held, method="baseline", n_boot=200, progress=False)
    assert set(result.predictions["benchmark"]) <= set(data.benchmarks)
    assert result.predictions["observed"].dtype == float
