"""Held-out evaluation: fit without some models, predict their scores, score the predictions.

:func:`evaluate_holdout` runs one split (the authors' 41-model protocol is the preset
``"paper"``); :func:`cross_validate` holds out whole families, fold by fold. Both report
the mean absolute error of the predictive mean per benchmark and overall (with its
standard error), the empirical coverage of the central intervals and their mean width.
``method="baseline"`` scores the authors' best baseline
(:mod:`bayes_lsl.baseline`) on the same split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_lsl.data import DataError, ScalingData

#: The authors' 11 test models (arXiv:2512.06553, held-out experiment).
PAPER_TEST_MODELS: tuple[str, ...] = (
    "meta-llama-3-70b", "meta-llama-3-70b-instruct", "qwen2-72b", "qwen2-72b-instruct", "yi-1.5-34b",
    "yi-1.5-34b-chat", "olmo-7b", "smollm-1.7b", "smollm-1.7b-instruct", "gemma-2-9b", "gemma-2-9b-it",
)  # fmt: skip
#: Community fine-tunes of the test models' bases, removed from training but not scored.
PAPER_FINETUNES: tuple[str, ...] = (
    "calme-2.2-llama3-70b", "calme-2.3-llama3-70b", "calme-2.4-llama3-70b", "dolphin-2.9.1-llama-3-70b",
    "higgs-llama-3-70b", "llama-3-70b-instruct-v0.1", "llama-3-sauerkrautlm-70b-instruct",
    "llama3-openbiollm-70b", "calme-2.1-qwen2-72b", "calme-2.2-qwen2-72b", "calme-2.3-qwen2-72b",
    "dolphin-2.9.2-qwen2-72b", "magnum-72b-v1", "magnum-v1-72b", "magnum-v2-72b", "orca_mini_v7_72b",
    "blossom-v5.1-34b", "dolphin-2.9.1-yi-1.5-34b", "smollm-1.7b-instruct-ifeval", "gemma-2-9b-it-dpo",
    "gemma-2-9b-it-simpo", "gemma-2-9b-it-wpo-hb", "gemma-2-9b-moth", "gemma2-9b-it-psy10k-mental_health",
    "gemma2-9b-it-simpo-infinity-preference", "gemma2-9b-it-train6", "lambda-gemma-2-9b-dpo",
    "n3n_gemma-2-9b-it_20241029_1532", "n3n_gemma-2-9b-it_20241110_2026", "magnum-v3-9b-customgemma2",
)  # fmt: skip
#: Named splits: (models removed from training, models whose scores are predicted).
PRESETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "paper": (PAPER_TEST_MODELS + PAPER_FINETUNES, PAPER_TEST_MODELS),
}


@dataclass(frozen=True)
class HoldoutResult:
    """Predictions for held-out scores and their scores.

    Attributes
    ----------
    predictions : DataFrame
        One row per held-out observed score: ``model``, ``family``, ``benchmark``,
        ``observed``, ``mean``, ``median``, ``lower``, ``upper`` (and ``fold``).
    summary : DataFrame
        Indexed by benchmark plus an ``overall`` row: ``n``, ``mae``, ``mae_se``,
        ``coverage``, ``width``.
    fits : list
        The fits (one per fold), or the baseline objects.
    """

    predictions: pd.DataFrame
    summary: pd.DataFrame
    fits: list

    def _repr_html_(self) -> str:
        return self.summary._repr_html_()

    def __repr__(self) -> str:
        return f"HoldoutResult(\n{self.summary.round(4).to_string()}\n)"


def score_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """MAE (with its standard error over cells), coverage and width per benchmark and overall.

    ``predictions`` needs ``benchmark``, ``observed`` and ``mean``; ``lower`` and
    ``upper`` (when present) give coverage and width. Rows without an observed score are
    ignored.
    """
    df = predictions[predictions["observed"].notna()].copy()
    if df.empty:
        raise DataError("no held-out model has an observed score to compare with")
    df["abs_error"] = (df["observed"] - df["mean"]).abs()
    has_interval = {"lower", "upper"} <= set(df.columns) and df["lower"].notna().all()
    df["covered"] = (df["observed"] >= df["lower"]) & (df["observed"] <= df["upper"]) if has_interval else np.nan
    df["width"] = df["upper"] - df["lower"] if has_interval else np.nan

    def stats(g: pd.DataFrame) -> pd.Series:
        n = len(g)
        se = g["abs_error"].std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        return pd.Series({"n": n, "mae": g["abs_error"].mean(), "mae_se": se,
                          "coverage": g["covered"].astype(float).mean(), "width": g["width"].mean()})  # fmt: skip

    order = list(dict.fromkeys(df["benchmark"]))
    per = pd.DataFrame({b: stats(df[df["benchmark"] == b]) for b in order}).T
    per.loc["overall"] = stats(df)
    per["n"] = per["n"].astype(int)
    per.index.name = "benchmark"
    return per


def resolve_holdout(data: ScalingData, holdout: str | Sequence[str], test_models: Sequence[str] | None = None):
    """The models to remove and the models to score, checked against ``data``."""
    if isinstance(holdout, str):
        if holdout not in PRESETS:
            raise ValueError(f"unknown holdout preset {holdout!r}; presets are {sorted(PRESETS)}, or pass model names")
        removed, test = PRESETS[holdout]
        present = set(data.models)
        if not set(test) <= present:
            raise DataError(f"preset {holdout!r} needs models missing from the data: {sorted(set(test) - present)}")
        removed = [m for m in removed if m in present]  # fine-tunes a data variant may lack
    else:
        removed = [str(m) for m in holdout]
        test = removed
    test = list(test_models) if test_models is not None else list(test)
    if not set(test) <= set(removed):
        raise ValueError(f"test models must be held out: {sorted(set(test) - set(removed))}")
    return list(removed), list(test)


def _held_out_frame(data: ScalingData, models: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """New-model frame (no scores: predictions use only size, tokens and family) and the truth."""
    frame = data.to_frame().set_index("model").loc[list(models)].reset_index()
    truth = frame.melt(id_vars=["model", "family", "size", "tokens"], var_name="benchmark", value_name="observed")
    return frame[["model", "family", "size", "tokens"]], truth[["model", "benchmark", "observed"]]


def _predict_split(
    train: ScalingData, new: pd.DataFrame, K: int, method: str, level: float, seed: int, n_draws: int,
    progress: bool, fit_options: dict,
) -> tuple[pd.DataFrame, object]:  # fmt: skip
    if method == "baseline":
        from bayes_lsl.baseline import fit_baseline

        model = fit_baseline(train)
        return model.predict(new), model
    from bayes_lsl.inference import fit
    from bayes_lsl.predict import predict

    if method == "mle":
        # Predictions need the optimum, not its log-likelihood: skip the importance sampler.
        fit_options = {"check_draws": 0, **fit_options}
    result = fit(train, K=K, method=method, seed=seed, progress=progress, **fit_options)
    return predict(result, new, level=level, seed=seed, n_draws=n_draws), result


def evaluate_holdout(
    data: ScalingData,
    holdout: str | Sequence[str] = "paper",
    K: int = 4,
    method: str = "mle",
    *,
    test_models: Sequence[str] | None = None,
    level: float = 0.95,
    seed: int = 0,
    n_draws: int = 1000,
    progress: bool = True,
    **fit_options,
) -> HoldoutResult:
    """Fit without held-out models and score the predictions of their observed scores.

    Parameters
    ----------
    data : ScalingData
        All models, held-out ones included (their scores are the truth).
    holdout : str or list of str
        A preset name (``"paper"``: the authors' protocol, 41 models removed and the 11
        test models scored, 102 scores) or the model names to hold out.
    K, method
        Passed to :func:`bayes_lsl.fit`; ``method="baseline"`` scores the per-benchmark
        sigmoid regression on log FLOPs instead (no intervals).
    test_models : list of str, optional
        Which held-out models to score (default: the preset's, or all held out).
    level, seed, n_draws
        Passed to :func:`bayes_lsl.predict`.
    **fit_options
        Passed to :func:`bayes_lsl.fit`.

    Returns
    -------
    HoldoutResult
    """
    removed, test = resolve_holdout(data, holdout, test_models)
    new, truth = _held_out_frame(data, test)
    table, fitted = _predict_split(data.drop_models(removed), new, K, method, level, seed, n_draws, progress,
                                   fit_options)  # fmt: skip
    predictions = truth.merge(table.drop(columns=["observed"], errors="ignore"), on=["model", "benchmark"])
    predictions = predictions[predictions["observed"].notna()].reset_index(drop=True)
    return HoldoutResult(predictions, score_predictions(predictions), [fitted])


def cross_validate(
    data: ScalingData,
    n_folds: int = 5,
    K: int = 4,
    method: str = "mle",
    *,
    level: float = 0.95,
    seed: int = 0,
    n_draws: int = 1000,
    progress: bool = True,
    **fit_options,
) -> HoldoutResult:
    """K-fold cross-validation by family: each fold's families are predicted as new families.

    Families are assigned to folds at random (seeded). Predictions of a held-out family
    draw its effect from ``N(0, corr)``: this checks how the scaling law transfers to
    unseen families, a harder task than :func:`evaluate_holdout`'s.

    Returns
    -------
    HoldoutResult
        ``predictions`` has a ``fold`` column; ``fits`` holds one fit per fold.
    """
    families = np.array(data.families)
    if not 2 <= n_folds <= len(families):
        raise ValueError(f"n_folds must be between 2 and the number of families ({len(families)}), got {n_folds}")
    fold_of = np.random.default_rng(seed).permutation(np.arange(len(families)) % n_folds)
    parts, fits = [], []
    from tqdm.auto import tqdm

    for fold in tqdm(range(n_folds), desc="cross-validation", disable=not progress):
        held = data.models[np.isin(data.model_family, families[fold_of == fold])]
        new, truth = _held_out_frame(data, held)
        table, fitted = _predict_split(data.drop_models(held), new, K, method, level, seed + fold, n_draws, False,
                                       fit_options)  # fmt: skip
        part = truth.merge(table.drop(columns=["observed"], errors="ignore"), on=["model", "benchmark"])
        parts.append(part[part["observed"].notna()].assign(fold=fold))
        fits.append(fitted)
    predictions = pd.concat(parts, ignore_index=True)
    return HoldoutResult(predictions, score_predictions(predictions), fits)

