"""Held-out evaluation: fit without some models, predict their scores, score the predictions.

:func:`evaluate_holdout` runs one split (the authors' 41-model protocol is the preset
``"paper"``); :func:`cross_validate` holds out whole families, fold by fold. Both report
the mean absolute error of the predictive mean per benchmark and overall, the empirical
coverage of the central intervals and their mean width, and three proper scores of the
predictive distributions (:mod:`bayes_lsl.scores`): the CRPS, the interval score of the
central intervals and the log predictive density of the observed score. ``method="baseline"``
scores the authors' best baseline (:mod:`bayes_lsl.baseline`) on the same split, with the
Beta predictive distribution about its curve that
:meth:`~bayes_lsl.baseline.SigmoidBaseline.predict_draws` gives it.

Held-out scores are not independent: the paper's 102 cells come from 11 models in 6
groups of families (a base family and its instruction-tuned one), and a model that is
predicted badly is usually predicted badly on most benchmarks. Standard errors and
intervals therefore come from a bootstrap that resamples whole clusters (by default
:func:`family_groups`), and :func:`compare_predictions` compares two methods by their
paired difference on the same resamples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
import xarray as xr

from bayes_lsl.data import DataError, ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.parallel import run_tasks
from bayes_lsl.scores import DEFAULT_EPS, crps, interval_score, log_predictive_density

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
#: Name endings of instruction-tuned families; without them, the name is the base family's.
TUNED_SUFFIXES: tuple[str, ...] = ("-instruct", "-chat", "-it")
#: Bootstrap resamples for the intervals of the scores.
N_BOOT = 2000
#: What is averaged over cells: (name in the summary, column of the scored cells). MAE, coverage
#: and width, then the proper scores (lower is better, but for ``log_density``).
STATISTICS: tuple[tuple[str, str], ...] = (
    ("mae", "abs_error"), ("coverage", "covered"), ("width", "width"), ("crps", "crps"),
    ("interval_score", "interval_score"), ("log_density", "log_density"),
)  # fmt: skip
#: The per-cell scores the paired comparison differences: the MAE's and the proper scores.
PAIRED: tuple[tuple[str, str], ...] = (STATISTICS[0], *STATISTICS[3:])
#: Levels of the central intervals every held-out prediction carries (``lower_50`` ... ``upper_95``),
#: next to ``lower``/``upper`` at the evaluation's own ``level``: calibration plots and
#: recalibration (:mod:`bayes_lsl.recalibration`) read them.
INTERVAL_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)


def level_label(level: float) -> str:
    """The suffix of a level's interval columns: ``0.95`` -> ``"95"``, ``0.975`` -> ``"97.5"``."""
    return f"{round(100 * float(level), 6):g}"


def interval_columns(level: float) -> tuple[str, str]:
    """The names of the ends of the central ``level`` interval in a predictions frame."""
    return f"lower_{level_label(level)}", f"upper_{level_label(level)}"


def with_interval_levels(table: pd.DataFrame, draws: xr.Dataset, levels: Sequence[float] = INTERVAL_LEVELS,
                         variable: str = "y") -> pd.DataFrame:  # fmt: skip
    """``table`` (rows ``model`` x ``benchmark``) with the central intervals of ``draws[variable]`` at ``levels``.

    The quantiles are taken over ``sample`` as :func:`bayes_lsl.predict.summarize` takes
    them, so the columns at the table's own level equal its ``lower``/``upper``.
    """
    probs = sorted({p for level in levels for p in ((1 - level) / 2, (1 + level) / 2)})
    q = draws[variable].quantile(probs, dim="sample")
    frame = pd.DataFrame({"model": np.repeat(q["model"].values.astype(str), q.sizes["benchmark"]),
                          "benchmark": np.tile(q["benchmark"].values.astype(str), q.sizes["model"])})  # fmt: skip
    values = q.transpose("model", "benchmark", "quantile").values.reshape(len(frame), len(probs))
    for level in levels:
        lower, upper = interval_columns(level)
        frame[lower] = values[:, probs.index((1 - level) / 2)]
        frame[upper] = values[:, probs.index((1 + level) / 2)]
    kept = table.drop(columns=[c for c in frame.columns[2:] if c in table.columns])
    return kept.merge(frame, on=["model", "benchmark"], how="left")


@dataclass(frozen=True)
class HoldoutResult:
    """Predictions for held-out scores and their scores.

    Attributes
    ----------
    predictions : DataFrame
        One row per held-out observed score: ``model``, ``family``, ``group`` (see
        :func:`family_groups`), ``benchmark``, ``observed``, ``mean``, ``median``,
        ``lower``, ``upper``, the cell's proper scores ``crps``, ``interval_score`` and
        ``log_density`` (:func:`cell_scores`), and ``fold`` in cross-validation. Also the
        central intervals at :data:`INTERVAL_LEVELS` from the same predictive draws
        (``lower_50``, ``upper_50``, ..., ``lower_95``, ``upper_95``), and, when
        :func:`evaluate_holdout` was given a ``recalibration``, ``recalibrated`` (True:
        the intervals are the model's scaled by :mod:`bayes_lsl.recalibration`).
    summary : DataFrame
        :func:`score_predictions` of ``predictions``: per benchmark plus an ``overall``
        row, the MAE, coverage, width and proper scores with their cluster-bootstrap
        intervals.
    fits : list
        The fits (one per fold), or the baseline objects.
    scoring : dict
        The options of :func:`score_predictions` that gave ``summary`` (``cluster``,
        ``n_boot``, ``level``, ``seed``); :meth:`compare` uses the same.
    """

    predictions: pd.DataFrame
    summary: pd.DataFrame
    fits: list
    scoring: dict = field(default_factory=dict)

    def compare(self, reference: HoldoutResult, **options) -> pd.DataFrame:
        """MAE and proper scores of these predictions minus those of ``reference`` on the same cells, with intervals.

        See :func:`compare_predictions`; ``options`` override :attr:`scoring`.
        """
        return compare_predictions(self.predictions, reference.predictions, **{**self.scoring, **options})

    def _repr_html_(self) -> str:
        return self.summary._repr_html_()

    def __repr__(self) -> str:
        return f"HoldoutResult(\n{self.summary.round(4).to_string()}\n)"


def family_groups(families: Iterable[str]) -> dict[str, str]:
    """Each family's group: an instruction-tuned family joins its base family.

    A family whose name is another family's plus one of :data:`TUNED_SUFFIXES`
    (``qwen2-instruct``, ``yi-1.5-chat``, ``gemma-2-it``) belongs to that family's group;
    every other family is a group of its own. A base model and its tuned version share
    their pretraining, so their prediction errors are not independent.

    Parameters
    ----------
    families : iterable of str
        Family names (all of the data's, so that a base family is found even when only
        its tuned family is scored).

    Returns
    -------
    dict
        Family name to group name (the base family's name).
    """
    names = set(map(str, families))
    groups = {}
    for name in names:
        bases = [name[: -len(s)] for s in TUNED_SUFFIXES if name.endswith(s) and name[: -len(s)] in names]
        groups[name] = bases[0] if bases else name
    return groups


def _cluster_codes(df: pd.DataFrame, cluster: str | None) -> np.ndarray:
    """Integer cluster of each row: the ``cluster`` column, groups from ``family``, or every row alone."""
    if cluster is None:
        return np.arange(len(df))
    if cluster in df.columns:
        codes = pd.factorize(df[cluster])[0]
        if (codes < 0).any():  # factorize codes a missing label as -1
            raise DataError(f"column {cluster!r} has missing labels in rows {np.flatnonzero(codes < 0)[:5].tolist()}: "
                            "every prediction needs a cluster to resample")
        return codes
    if cluster == "group" and "family" in df.columns:
        return pd.factorize(df["family"].map(family_groups(df["family"])))[0]
    raise BayesLslError(
        f"predictions have no column {cluster!r} to cluster by"
        + (" (nor 'family' to derive it from)" if cluster == "group" else "")
        + "; pass cluster=None to treat every score as independent"
    )


def _resample_counts(n_clusters: int, n_boot: int, seed: int) -> np.ndarray:
    """How often each cluster is drawn in each resample, shape (n_boot, n_clusters)."""
    return np.random.default_rng(seed).multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot)


def _resampled_means(values: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (NaN skipped) in each resample, shape (n_boot,).

    A resample's mean is its clusters' summed values over their summed sizes, so each
    cluster counts with its number of cells; NaN where a resample holds no cell.
    """
    ok = ~np.isnan(values)
    n_clusters = counts.shape[1]
    total = counts @ np.bincount(codes[ok], weights=values[ok], minlength=n_clusters)
    size = counts @ np.bincount(codes[ok], minlength=n_clusters).astype(float)
    out = np.full(len(counts), np.nan)
    np.divide(total, size, out=out, where=size > 0)
    return out


def _interval(replicates: np.ndarray, level: float) -> tuple[float, float, float]:
    """Standard deviation and central percentile interval of the bootstrap replicates."""
    kept = replicates[~np.isnan(replicates)]
    if len(kept) < 2:  # nothing to resample: no intervals to score
        return np.nan, np.nan, np.nan
    lower, upper = np.quantile(kept, [(1 - level) / 2, (1 + level) / 2])
    return float(kept.std(ddof=1)), float(lower), float(upper)


def _scored_cells(predictions: pd.DataFrame) -> pd.DataFrame:
    """Observed cells with their absolute error, whether the interval covers, and its width."""
    df = predictions[predictions["observed"].notna()].copy()
    if df.empty:
        raise DataError("no held-out model has an observed score to compare with")
    df["abs_error"] = (df["observed"] - df["mean"]).abs()
    has_interval = {"lower", "upper"} <= set(df.columns) and df["lower"].notna().all()
    df["covered"] = ((df["observed"] >= df["lower"]) & (df["observed"] <= df["upper"])).astype(float) \
        if has_interval else np.nan  # fmt: skip
    df["width"] = df["upper"] - df["lower"] if has_interval else np.nan
    for column in ("crps", "interval_score", "log_density"):
        if column not in df.columns:  # predictions without a distribution (a point method, an old file)
            df[column] = np.nan
    return df


def cell_scores(
    table: pd.DataFrame, draws: xr.Dataset, *, level: float = 0.95, eps: float = DEFAULT_EPS
) -> pd.DataFrame:
    """The proper scores of each row's observed score against its predictive draws.

    Parameters
    ----------
    table : DataFrame
        Rows with ``model``, ``benchmark``, ``observed`` (NaN: not scored), ``lower`` and
        ``upper`` (the central ``level`` interval).
    draws : xarray.Dataset
        ``y``, ``mu`` and ``phi`` (sample, model, benchmark), as from
        :func:`bayes_lsl.predict_draws` or
        :meth:`bayes_lsl.baseline.SigmoidBaseline.predict_draws`.
    level : float
        The intervals' level: the interval score's ``alpha`` is ``1 - level``.
    eps : float
        Observed scores are clipped into ``[eps, 1 - eps]`` for the log density, as the
        fit's likelihood clipped its scores (``FitInfo.eps``).

    Returns
    -------
    DataFrame
        ``table`` with ``crps`` (from the draws of ``y``), ``interval_score`` (of
        ``[lower, upper]``) and ``log_density`` (log of the mean over draws of the Beta
        density with shapes ``mu phi`` and ``(1 - mu) phi``, or of the mixture where the draws
        carry ``score_eps``, see :func:`bayes_lsl.scores.log_predictive_density`).
    """
    model = pd.Index(draws["model"].values.astype(str)).get_indexer(table["model"].astype(str))
    bench = pd.Index(draws["benchmark"].values.astype(str)).get_indexer(table["benchmark"].astype(str))
    if (model < 0).any() or (bench < 0).any():
        raise BayesLslError("draws: some rows of the table have no draws (model or benchmark missing)")
    y = table["observed"].to_numpy(float)
    order = ("sample", "model", "benchmark")
    pick = {v: draws[v].transpose(*order).values[:, model, bench] for v in ("y", "mu", "phi")}  # (sample, row)
    a = pick["mu"] * pick["phi"]
    # A scores="beta-mixture" fit's draws carry the mixture's weight (per sample) and factor.
    mixture = {}
    if "score_eps" in draws:
        mixture = {"score_eps": draws["score_eps"].values[:, None], "score_kappa": draws.attrs["score_kappa"]}
    return table.assign(
        crps=crps(pick["y"], y),
        interval_score=interval_score(table["lower"], table["upper"], y, alpha=1 - level),
        log_density=log_predictive_density(a, pick["phi"] - a, y, eps=eps, **mixture),
    )


def score_predictions(
    predictions: pd.DataFrame,
    *,
    cluster: str | None = "group",
    n_boot: int = N_BOOT,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """MAE, coverage, width and proper scores per benchmark and overall, with cluster-bootstrap intervals.

    Parameters
    ----------
    predictions : DataFrame
        Needs ``benchmark``, ``observed`` and ``mean``; ``lower`` and ``upper`` (when
        present) give coverage and width, and ``crps``, ``interval_score`` and
        ``log_density`` (when present: :func:`cell_scores`) the proper scores. Rows without
        an observed score are ignored.
    cluster : str or None
        Column whose values are resampled as units. ``"group"`` (the default) is derived
        from ``family`` with :func:`family_groups` when there is no such column; ``None``
        treats every score as independent (the naive bootstrap).
    n_boot : int
        Bootstrap resamples; the same resamples serve every benchmark and the overall row.
    level : float
        Level of the percentile intervals.
    seed : int
        Seeds the resampling.

    Returns
    -------
    DataFrame
        Indexed by benchmark plus ``overall``: ``n`` (scores), ``clusters``, ``mae``,
        ``mae_se`` (the bootstrap standard deviation), ``mae_lower``, ``mae_upper``,
        ``mae_se_iid`` (the standard error that treats the scores as independent, for
        comparison), ``coverage`` and ``width`` with their ``_lower``/``_upper`` (NaN
        without intervals), and the mean ``crps``, ``interval_score`` and ``log_density``
        with their ``_lower``/``_upper`` (NaN without them).

    Notes
    -----
    Each resample draws as many clusters as there are, with replacement, and computes a
    statistic over all cells of the drawn clusters. A benchmark's replicates skip the
    resamples that hold none of its cells. With few clusters (6 in the paper's protocol)
    the bootstrap is rough: its standard error is the plug-in one, smaller than the
    usual between-cluster standard error by sqrt((G - 1) / G), and its intervals rest
    on the spread of only G cluster values.
    """
    df = _scored_cells(predictions)
    codes = _cluster_codes(df, cluster)
    counts = _resample_counts(codes.max() + 1, n_boot, seed)

    def stats(rows: np.ndarray) -> pd.Series:
        g = df[rows]
        n = len(g)
        out = {"n": n, "clusters": len(np.unique(codes[rows]))}
        for name, col in STATISTICS:
            values = np.where(rows, df[col].to_numpy(float), np.nan)
            se, lower, upper = _interval(_resampled_means(values, codes, counts), level)
            out |= {name: g[col].mean(), f"{name}_lower": lower, f"{name}_upper": upper}
            if name == "mae":
                out |= {"mae_se": se, "mae_se_iid": g[col].std(ddof=1) / np.sqrt(n) if n > 1 else np.nan}
        return pd.Series(out)

    bench = df["benchmark"].to_numpy()
    order = list(dict.fromkeys(bench))
    per = pd.DataFrame({b: stats(bench == b) for b in order}).T
    per.loc["overall"] = stats(np.ones(len(df), bool))
    per[["n", "clusters"]] = per[["n", "clusters"]].astype(int)
    per.index.name = "benchmark"
    columns = ["n", "clusters", "mae", "mae_se", "mae_lower", "mae_upper", "mae_se_iid"]
    columns += [f"{name}{end}" for name, _ in STATISTICS[1:] for end in ("", "_lower", "_upper")]
    return per[columns]


def compare_predictions(
    predictions: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    cluster: str | None = "group",
    n_boot: int = N_BOOT,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """MAE and proper scores of ``predictions`` minus those of ``reference``, paired by cell, with intervals.

    Both tables must predict the same observed cells (``model`` and ``benchmark``). The
    difference is computed on each resample of clusters, from the same cells for both
    methods, so what the two methods share (a model that is hard for both) cancels.

    Parameters
    ----------
    predictions, reference : DataFrame
        Predictions of two methods, as in :attr:`HoldoutResult.predictions`.
    cluster, n_boot, level, seed
        As in :func:`score_predictions` (the clusters are taken from ``predictions``).

    Returns
    -------
    DataFrame
        Indexed by benchmark plus ``overall``: ``n``, ``clusters``, ``mae``,
        ``mae_reference``, ``difference`` (of the MAEs; negative: ``predictions`` is
        better), ``difference_se``, ``difference_lower``, ``difference_upper``; and for
        each proper score ``s`` in ``crps``, ``interval_score``, ``log_density``: ``s``,
        ``s_reference``, ``s_difference``, ``s_difference_se``, ``s_difference_lower``,
        ``s_difference_upper`` (NaN where either table lacks the score). A negative
        difference means ``predictions`` is better, but for ``log_density`` (higher is
        better), where a positive one does.

    Raises
    ------
    DataError
        If the two tables do not hold the same observed cells.
    """
    keys = ["model", "benchmark"]
    ours, ref = _scored_cells(predictions), _scored_cells(reference)
    scored = [col for _, col in PAIRED]
    merged = ours.merge(ref[[*keys, "observed", *scored]], on=keys, how="outer", suffixes=("", "_reference"),
                        indicator=True)  # fmt: skip
    unpaired = merged[merged["_merge"] != "both"]
    if len(unpaired) or not np.allclose(merged["observed"], merged["observed_reference"]):
        raise DataError(f"the two predictions do not score the same cells ({len(unpaired)} unpaired)")
    codes = _cluster_codes(merged, cluster)
    counts = _resample_counts(codes.max() + 1, n_boot, seed)
    diffs = {name: (merged[col] - merged[f"{col}_reference"]).to_numpy(float) for name, col in PAIRED}

    def stats(rows: np.ndarray) -> pd.Series:
        # The mean of the paired differences over a resample is the difference of the two
        # means over that same resample.
        out = {"n": rows.sum(), "clusters": len(np.unique(codes[rows]))}
        for name, col in PAIRED:
            diff = diffs[name]
            se, lower, upper = _interval(_resampled_means(np.where(rows, diff, np.nan), codes, counts), level)
            prefix = "" if name == "mae" else f"{name}_"  # the MAE's keep their first names
            out |= {name: merged.loc[rows, col].mean(),
                    f"{name}_reference": merged.loc[rows, f"{col}_reference"].mean(),
                    f"{prefix}difference": diff[rows].mean(), f"{prefix}difference_se": se,
                    f"{prefix}difference_lower": lower, f"{prefix}difference_upper": upper}  # fmt: skip
        return pd.Series(out)

    bench = merged["benchmark"].to_numpy()
    order = list(dict.fromkeys(ours["benchmark"]))
    out = pd.DataFrame({b: stats(bench == b) for b in order}).T
    out.loc["overall"] = stats(np.ones(len(merged), bool))
    out[["n", "clusters"]] = out[["n", "clusters"]].astype(int)
    out.index.name = "benchmark"
    return out


def resolve_holdout(data: ScalingData, holdout: str | Sequence[str], test_models: Sequence[str] | None = None):
    """The models to remove and the models to score, checked against ``data``."""
    if isinstance(holdout, str):
        if holdout not in PRESETS:
            raise BayesLslError(
                f"unknown holdout preset {holdout!r}; presets are {sorted(PRESETS)}, or pass model names"
            )
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
        raise BayesLslError(f"test models must be held out: {sorted(set(test) - set(removed))}")
    return list(removed), list(test)


def _held_out_frame(data: ScalingData, models: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """New-model frame (no scores: predictions use only size, tokens and family) and the truth."""
    frame = data.to_frame().set_index("model").loc[list(models)].reset_index()
    truth = frame.melt(id_vars=["model"], value_vars=list(data.benchmarks), var_name="benchmark",
                       value_name="observed")  # fmt: skip
    # The kind too, where the data has it: a fit by kind (by_kind=True) needs the held-out models' kinds.
    columns = ["model", "family", "size", "tokens", *(["kind"] if data.kind is not None else [])]
    return frame[columns], truth[["model", "benchmark", "observed"]]


def _predict_split(
    train: ScalingData, new: pd.DataFrame, truth: pd.DataFrame, K: int, method: str, level: float, seed: int,
    n_draws: int, progress: bool, fit_options: dict,
) -> tuple[pd.DataFrame, object]:  # fmt: skip
    """Fit on ``train``; the predictions of ``truth``'s observed cells, with their proper scores."""
    from bayes_lsl.predict import summarize

    if method == "baseline":
        from bayes_lsl.baseline import fit_baseline

        fitted = fit_baseline(train, **fit_options)
        draws = fitted.predict_draws(new, n_draws=n_draws, seed=seed)
        # The interval from the predictive draws; the mean stays the authors' point prediction.
        table = summarize(draws, level=level).drop(columns="mean").merge(fitted.predict(new), on=["model", "benchmark"])
        eps = fitted.eps
    else:
        from bayes_lsl.fitting import FitInfo, fit
        from bayes_lsl.predict import predict_draws

        if method == "mle":
            # Predictions need the optimum, not its log-likelihood: skip the importance sampler.
            fit_options = {"check_draws": 0, **fit_options}
        fitted = fit(train, K=K, method=method, seed=seed, progress=progress, **fit_options)
        prediction = predict_draws(fitted, new, level=level, seed=seed, n_draws=n_draws)
        table, draws, eps = prediction.table, prediction.draws, FitInfo.from_tree(fitted).eps
    cells = truth.merge(table.drop(columns=["observed"], errors="ignore"), on=["model", "benchmark"])
    cells = cells[cells["observed"].notna()].reset_index(drop=True)
    return with_interval_levels(cell_scores(cells, draws, level=level, eps=eps), draws), fitted


def _scored_result(data: ScalingData, predictions: pd.DataFrame, fits: list, scoring: dict) -> HoldoutResult:
    """Tag each prediction with its family's group (from all of the data's families) and score them."""
    predictions = predictions.assign(group=predictions["family"].map(family_groups(data.families)))
    return HoldoutResult(predictions, score_predictions(predictions, **scoring), fits, scoring)


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
    cluster: str | None = "group",
    n_boot: int = N_BOOT,
    recalibration=None,
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
        sigmoid regression on log FLOPs instead (its mean is the sigmoid's point; its
        intervals and proper scores come from
        :meth:`~bayes_lsl.baseline.SigmoidBaseline.predict_draws`).
    test_models : list of str, optional
        Which held-out models to score (default: the preset's, or all held out).
    level, seed, n_draws
        Passed to :func:`bayes_lsl.predict_draws` (or the baseline's); ``level`` is also
        that of the interval score and of the bootstrap intervals of
        :func:`score_predictions`, and ``seed`` seeds its resampling.
    cluster, n_boot
        Passed to :func:`score_predictions`: by default the bootstrap resamples groups of
        families (:func:`family_groups`).
    recalibration : bayes_lsl.recalibration.Recalibration, optional
        Interval-width factors learned beforehand (:func:`bayes_lsl.recalibrate`, from a
        largest-in-family cross-validation of the *training* models): the predictions'
        intervals are scaled by them before scoring, and marked ``recalibrated``. Off by
        default: the intervals are then the model's own. The CRPS and log density still
        score the model's predictive draws; the interval score, coverage and width are
        those of the recalibrated intervals.
    **fit_options
        Passed to :func:`bayes_lsl.fit`, or to :func:`bayes_lsl.baseline.fit_baseline`
        for the baseline (e.g. ``loss="least_squares"``).

    Returns
    -------
    HoldoutResult
    """
    removed, test = resolve_holdout(data, holdout, test_models)
    new, truth = _held_out_frame(data, test)
    predictions, fitted = _predict_split(data.drop_models(removed), new, truth, K, method, level, seed, n_draws,
                                         progress, fit_options)  # fmt: skip
    if recalibration is not None:
        predictions = recalibration.apply(predictions, level=level)
    return _scored_result(data, predictions, [fitted], {"cluster": cluster, "n_boot": n_boot, "level": level,
                                                        "seed": seed})  # fmt: skip


def cross_validate(
    data: ScalingData,
    n_folds: int = 5,
    K: int = 4,
    method: str = "mle",
    *,
    scheme: str = "family",
    level: float = 0.95,
    seed: int = 0,
    n_draws: int = 1000,
    progress: bool = True,
    cluster: str | None = "group",
    n_boot: int = N_BOOT,
    n_jobs: int = 1,
    **fit_options,
) -> HoldoutResult:
    """Cross-validation over families: whole families, or each family's largest model.

    Families are assigned to ``n_folds`` folds at random (seeded); each fold is fitted
    without its held-out models and predicts their observed scores. Options are those
    of :func:`evaluate_holdout`; the bootstrap resamples groups of families across folds.

    Parameters
    ----------
    scheme : {"family", "largest-in-family"}
        ``"family"``: a fold's families are held out whole and predicted as new families
        (their effect drawn from ``N(0, corr)``): how the scaling law transfers to unseen
        families. ``"largest-in-family"``: only families with at least two distinct sizes
        take part, and a fold holds out the largest model(s) of each of its families; the
        rest of the family stays in the fit, so the prediction conditions on it. This is
        the question users bring most ("my family has 7B and 13B; what will the 70B
        score?"), on the training data alone.
    n_jobs : int
        Folds fitted side by side (:func:`bayes_lsl.parallel.run_tasks`): ``1`` (the
        default) one after another in this process, ``2`` two loky processes, ``-1``
        every worker of the active joblib backend (a Dask cluster inside
        ``joblib.parallel_backend("dask")``). Fold ``i`` is fitted with seed
        ``seed + i`` wherever it runs, so the result does not depend on ``n_jobs``.

    Returns
    -------
    HoldoutResult
        ``predictions`` has a ``fold`` column; ``fits`` holds one fit per fold.
    """
    held_out = _held_out_by_family(data, scheme)
    families = np.array(list(held_out))
    if not 2 <= n_folds <= len(families):
        raise BayesLslError(
            f"n_folds must be between 2 and the number of families that scheme {scheme!r} can hold out "
            f"({len(families)}), got {n_folds}"
        )
    fold_of = np.random.default_rng(seed).permutation(np.arange(len(families)) % n_folds)
    # Each fold's seed is seed + fold, whichever worker fits it and whenever.
    folds = [(fold, np.concatenate([held_out[f] for f in families[fold_of == fold]])) for fold in range(n_folds)]
    task = partial(_fold_predictions, data, K=K, method=method, level=level, seed=seed, n_draws=n_draws,
                   fit_options=fit_options)  # fmt: skip
    done = run_tasks(task, folds, n_jobs, progress=progress, desc="cross-validation")
    predictions = pd.concat([part for part, _ in done], ignore_index=True)
    return _scored_result(data, predictions, [fitted for _, fitted in done],
                          {"cluster": cluster, "n_boot": n_boot, "level": level, "seed": seed})  # fmt: skip


SCHEMES = ("family", "largest-in-family")


def _held_out_by_family(data: ScalingData, scheme: str) -> dict[str, np.ndarray]:
    """The models each family contributes to a fold under ``scheme``, for the families that take part."""
    if scheme not in SCHEMES:
        raise BayesLslError(f"unknown cross-validation scheme {scheme!r}; choose one of {list(SCHEMES)}")
    out = {}
    for family in data.families:
        members = data.model_family == family
        if scheme == "family":
            out[family] = data.models[members]
        elif len(np.unique(data.size[members])) >= 2:
            out[family] = data.models[members & (data.size == data.size[members].max())]
    return out


def _fold_predictions(
    data: ScalingData, fold_models: tuple[int, np.ndarray], *, K: int, method: str, level: float, seed: int,
    n_draws: int, fit_options: dict,
) -> tuple[pd.DataFrame, object]:  # fmt: skip
    """One fold of :func:`cross_validate`: fit without its models, predict their observed scores."""
    fold, held = fold_models
    new, truth = _held_out_frame(data, held)
    part, fitted = _predict_split(data.drop_models(held), new, truth, K, method, level, seed + fold, n_draws, False,
                                  fit_options)  # fmt: skip
    return part.assign(fold=fold), fitted
