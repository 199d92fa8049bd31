"""Scores of language models on benchmarks, validated: the ``ScalingData`` container.

Everything downstream (the model, every fit, predictions) reads a ``ScalingData``;
nothing downstream re-validates. Validation therefore happens here, once, and each
problem is reported with the column, row or model at fault.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import xarray as xr

from bayes_lsl.design import PAPER_TERMS, covariate_terms, design_matrix, standardization
from bayes_lsl.errors import DataError
from bayes_lsl.kinds import leaderboard_kinds, normalize_kinds

log = logging.getLogger(__name__)

#: The paper's anchor order: the first K of these anchor a K-skill model.
PAPER_ANCHORS: tuple[str, ...] = (
    "math", "ifeval", "hellaswag", "bbh", "mmlu-pro", "mmlu",
    "arc", "truthfulqa", "gsm8k", "winogrande", "gpqa", "musr",
)  # fmt: skip

#: Chance-level floors C_j (the score of a random guesser), from the data's README.
KNOWN_FLOORS: dict[str, float] = {
    "mmlu": 0.25, "hellaswag": 0.25, "winogrande": 0.5, "gsm8k": 0.0, "arc": 0.25,
    "truthfulqa": 0.31, "ifeval": 0.0, "math": 0.0, "mmlu-pro": 0.1, "gpqa": 0.25,
    "bbh": 0.288504, "musr": 0.343298,
}  # fmt: skip

REQUIRED_COLUMNS: tuple[str, ...] = ("model", "family", "size", "tokens")
#: Columns a frame may carry that are neither required nor benchmarks (``kind``: see :mod:`bayes_lsl.kinds`).
METADATA_COLUMNS: tuple[str, ...] = ("flops", "kind")
#: The paper's covariates (the default design; :mod:`bayes_lsl.design` has the others).
COVARIATES: tuple[str, ...] = PAPER_TERMS
#: Fewer models than this cannot identify intercepts, slopes and a family spread.
MIN_MODELS = 5
#: Values above these are off by orders of magnitude, nearly always raw counts: no model
#: has 10 trillion parameters or saw a quadrillion tokens. ``flops`` (a budget ``6 N D``)
#: is limited by the two together.
UNIT_LIMITS: dict[str, float] = {"size": 1e4, "tokens": 1e3, "flops": 6e21 * 1e4 * 1e3}
_UNITS_HINT = "size is in billions of parameters, tokens in trillions"
_UNIT_HINTS = {"size": _UNITS_HINT, "tokens": _UNITS_HINT,
               "flops": "budgets are FLOPs, F = 6 N D with N parameters and D tokens (e.g. 1e21)"}  # fmt: skip


class BelowFloorWarning(UserWarning):
    """Scores below their benchmark's chance floor (the model's mean cannot go there)."""


def check_units(name: str, values: Sequence[float] | np.ndarray, labels: Sequence[str]) -> None:
    """Raise if a size, tokens or budget is off by orders of magnitude (:data:`UNIT_LIMITS`).

    Parameters
    ----------
    name : {"size", "tokens", "flops"}
        The quantity.
    values : array-like
        Its values.
    labels : sequence of str
        What each value belongs to, for the message (e.g. ``"row 0 (model 'x')"``).

    Raises
    ------
    DataError
        Naming the first value over the limit, with the units the package expects.
    """
    values = np.asarray(values, float)
    over = np.flatnonzero(values > UNIT_LIMITS[name])
    if len(over):
        i = over[0]
        raise DataError(
            f"{name} {values[i]:g} in {labels[i]} is over {UNIT_LIMITS[name]:,g} ({len(over)} such value(s)), "
            f"off by orders of magnitude: {_UNIT_HINTS[name]}"
        )


def raw_covariates(size: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Unstandardized covariates of the paper: log size (B), log tokens (T) and their product."""
    return design_matrix(PAPER_TERMS, size, tokens)


@dataclass(frozen=True, eq=False)
class ScalingData:
    """Validated scores of ``n`` models on ``J`` benchmarks, with sizes, tokens and families.

    Build it with :meth:`from_frame` (or :func:`bayes_lsl.load_leaderboard`), not directly.

    Attributes
    ----------
    models : ndarray of str, shape (n,)
        Model names, unique.
    model_family : ndarray of str, shape (n,)
        The family label of each model.
    size, tokens : ndarray, shape (n,)
        Parameters (billions) and pre-training tokens (trillions).
    scores : ndarray, shape (n, J)
        Scores in ``[eps, 1 - eps]``; NaN marks a missing score.
    benchmarks : tuple of str
        Benchmark names, anchors first: the first K anchor a K-skill model.
    floors : ndarray, shape (J,)
        Chance-level floors ``C_j``.
    anchors : tuple of str
        The benchmarks allowed to anchor a skill, in order.
    covariate_center, covariate_scale : ndarray, shape (p,)
        The standardization of the design's terms, reused for new models.
    eps : float
        Scores were clipped into ``[eps, 1 - eps]``.
    kind : ndarray of str, shape (n,), or None
        ``"base"`` or ``"tuned"`` per model (:mod:`bayes_lsl.kinds`), when the data says.
    terms : tuple of str
        The design's covariates (:mod:`bayes_lsl.design`), the paper's
        :data:`COVARIATES` unless chosen by :meth:`with_covariates`; ``x`` has one column each.
    """

    models: np.ndarray
    model_family: np.ndarray
    size: np.ndarray
    tokens: np.ndarray
    scores: np.ndarray
    benchmarks: tuple[str, ...]
    floors: np.ndarray
    anchors: tuple[str, ...]
    covariate_center: np.ndarray
    covariate_scale: np.ndarray
    eps: float = 1e-3
    kind: np.ndarray | None = None
    terms: tuple[str, ...] = PAPER_TERMS
    families: tuple[str, ...] = field(init=False)
    family_index: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # Families in order of first appearance, so that indices follow the rows.
        families, first = np.unique(self.model_family, return_index=True)
        ordered = tuple(str(f) for f in families[np.argsort(first)])
        lookup = {f: i for i, f in enumerate(ordered)}
        object.__setattr__(self, "families", ordered)
        object.__setattr__(self, "family_index", np.array([lookup[f] for f in self.model_family]))

    # ------------------------------------------------------------------ sizes
    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n_benchmarks(self) -> int:
        return len(self.benchmarks)

    @property
    def observed(self) -> np.ndarray:
        """Boolean mask (model x benchmark) of observed scores."""
        return ~np.isnan(self.scores)

    @property
    def x(self) -> np.ndarray:
        """Standardized covariates (model x covariate), one column per term of :attr:`terms`."""
        return self.covariates(self.size, self.tokens, self.kind, models=self.models)

    def covariates(
        self,
        size: Sequence[float],
        tokens: Sequence[float],
        kind: Sequence[str] | None = None,
        *,
        models: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Standardize new models' sizes and tokens (and kinds, for a design by kind) with
        this data's terms, center and scale."""
        raw = design_matrix(self.terms, size, tokens, kind, models)
        return (raw - self.covariate_center) / self.covariate_scale

    def with_covariates(self, covariates: str | Sequence[str] | None = None, by_kind: bool = False) -> ScalingData:
        """This data with another design: its ``x``, standardization and :attr:`terms` follow the terms.

        Parameters
        ----------
        covariates : str or sequence of str, optional
            A covariate set (``"paper"``, ``"no-interaction"``, ``"compute"``) or a list of
            terms (:func:`bayes_lsl.design.covariate_terms`); default the data's own terms.
        by_kind : bool
            Add the indicator ``tuned`` and its products with the other terms (the data
            need each model's kind).

        Returns
        -------
        ScalingData
            ``self`` when the terms do not change (so the default design is untouched);
            otherwise a copy standardized over these models.

        Raises
        ------
        BayesLslError
            Unknown terms (:func:`bayes_lsl.design.covariate_terms`); a ``DataError`` for a
            design by kind on data without kinds, or a constant term.

        Examples
        --------
        >>> bl.load_example().with_covariates("compute").terms
        ('log_compute',)
        """
        if covariates is None and not by_kind:
            return self
        terms = covariate_terms(self.terms if covariates is None else covariates, by_kind)
        if terms == self.terms:
            return self
        center, scale = standardization(terms, self.size, self.tokens, self.kind, self.models)
        return replace(self, terms=terms, covariate_center=center, covariate_scale=scale)

    def drop_models(self, names: Sequence[str]) -> ScalingData:
        """The data without the models ``names`` (e.g. to hold them out), re-validated.

        Floors, anchors, ``eps`` and the design's terms are kept; the covariate
        standardization is recomputed on the remaining models (fits store it, so predictions use the fit's own).
        """
        names = [str(n) for n in names]
        unknown = sorted(set(names) - set(self.models))
        if unknown:
            raise DataError(f"unknown model(s) {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
        frame = self.to_frame()
        frame = frame[~frame["model"].isin(names)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the full data already warned about floors
            rest = ScalingData.from_frame(
                frame, floors=dict(zip(self.benchmarks, self.floors, strict=True)), anchors=self.anchors, eps=self.eps
            )
        return rest.with_covariates(self.terms)

    # ------------------------------------------------------------ conversions
    def to_frame(self) -> pd.DataFrame:
        """The wide layout accepted by :meth:`from_frame` (a round trip)."""
        frame = pd.DataFrame(
            {"model": self.models, "family": self.model_family, "size": self.size, "tokens": self.tokens}
        )
        if self.kind is not None:
            frame["kind"] = self.kind
        scores = pd.DataFrame(self.scores, columns=list(self.benchmarks))
        return pd.concat([frame, scores], axis=1)

    def to_xarray(self) -> xr.Dataset:
        """Scores and covariates as an ``xarray.Dataset`` with dims ``model``, ``benchmark``."""
        ds = xr.Dataset(
            {
                "scores": (("model", "benchmark"), self.scores),
                "family": ("model", self.model_family),
                "size": ("model", self.size),
                "tokens": ("model", self.tokens),
                "x": (("model", "covariate"), self.x),
                "floor": ("benchmark", self.floors),
            },
            coords={"model": self.models, "benchmark": list(self.benchmarks), "covariate": list(self.terms)},
            attrs={"anchors": list(self.anchors), "eps": self.eps},
        )
        if self.kind is not None:
            ds["kind"] = ("model", self.kind.astype(str))
        return ds

    def __repr__(self) -> str:
        n_obs = int(self.observed.sum())
        complete = int(self.observed.all(axis=1).sum())
        return (
            f"ScalingData: {self.n_models} models, {len(self.families)} families, "
            f"{self.n_benchmarks} benchmarks\n"
            f"  observed scores: {n_obs} of {self.scores.size} ({complete} models scored on all)\n"
            f"  benchmarks (anchors first): {', '.join(self.benchmarks)}\n"
            f"  size {self.size.min():g}-{self.size.max():g} B params, "
            f"tokens {self.tokens.min():g}-{self.tokens.max():g} T"
            + ("" if self.kind is None else
               f"\n  kinds: {int((self.kind == 'base').sum())} base, {int((self.kind == 'tuned').sum())} tuned")
            + ("" if self.terms == PAPER_TERMS else f"\n  covariates: {', '.join(self.terms)}")
        )

    # ------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        benchmarks: Sequence[str] | None = None,
        floors: Mapping[str, float] | None = None,
        anchors: Sequence[str] | None = None,
        eps: float = 1e-3,
    ) -> ScalingData:
        """Validate a wide frame of scores and build a ``ScalingData``.

        Parameters
        ----------
        df : DataFrame
            One row per model with columns ``model``, ``family``, ``size`` (billions of
            parameters), ``tokens`` (trillions of pre-training tokens) and one column per
            benchmark with scores in [0, 1] (NaN where a model was not evaluated).
            An optional ``kind`` column says which models are pretrained base models and
            which are tuned (``"base"``/``"tuned"``; see :mod:`bayes_lsl.kinds`).
        benchmarks : list of str, optional
            Benchmark columns to use; default every column but the required ones and ``flops``.
        floors : dict, optional
            Chance-level floor per benchmark; known benchmark names default to
            :data:`KNOWN_FLOORS`, any other benchmark must be given one.
        anchors : list of str, optional
            Benchmarks that anchor the skills, in order (the first K anchor a K-skill model).
            Default: the paper's order for known benchmarks, then the others in column order.
        eps : float
            Scores are clipped into ``[eps, 1 - eps]`` (the Beta density is infinite at 0 and 1).

        Raises
        ------
        DataError
            On any invalid input, naming the column, row or model at fault.
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
        if not 0 < eps < 0.5:
            raise DataError(f"eps must be in (0, 0.5), got {eps}")
        df, scores = validate_models(df, benchmarks)
        benchmarks = list(scores.columns)
        kept = list(REQUIRED_COLUMNS) + (["kind"] if "kind" in df.columns else [])
        df = pd.concat([df[kept], scores], axis=1)
        df = _drop_duplicate_models(df, benchmarks)
        floor_values = _floors(benchmarks, floors)
        ordered = _anchor_order(benchmarks, anchors)

        scores = df[ordered].to_numpy(float)
        models = df["model"].astype(str).to_numpy()
        _check_coverage(scores, models, ordered)
        if len(models) < MIN_MODELS:
            raise DataError(f"only {len(models)} models; at least {MIN_MODELS} are needed to fit the model")

        floors_arr = np.array([floor_values[b] for b in ordered])
        _warn_below_floor(scores, floors_arr, ordered)
        scores = _clip(scores, eps)

        center, scale = standardization(PAPER_TERMS, df["size"], df["tokens"])
        return cls(
            models=models,
            model_family=df["family"].astype(str).to_numpy(),
            size=df["size"].to_numpy(float),
            tokens=df["tokens"].to_numpy(float),
            scores=scores,
            benchmarks=tuple(ordered),
            floors=floors_arr,
            anchors=tuple(anchors) if anchors is not None else tuple(ordered),
            covariate_center=center,
            covariate_scale=scale,
            eps=eps,
            kind=normalize_kinds(df["kind"], [_row(df, i) for i in df.index]) if "kind" in df.columns else None,
        )


# ---------------------------------------------------------------- validation
def validate_models(
    df: pd.DataFrame,
    benchmarks: Sequence[str] | None = None,
    *,
    known: Sequence[str] | None = None,
    name: str = "the frame",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The checks every table of models goes through: data to fit, and new models to predict.

    Required columns, labels, positive sizes and tokens in the package's units, scores in
    [0, 1]; each error names the row (and model) and column at fault.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per model: ``model``, ``family``, ``size``, ``tokens`` and score columns.
    benchmarks : sequence of str, optional
        The score columns; default every column but the required ones and ``flops``.
    known : sequence of str, optional
        The benchmarks a score column may name (those of a fit): any other column is an
        error, and the frame may have no score column at all.
    name : str
        What the frame is, in messages (e.g. ``"new_models"``).

    Returns
    -------
    frame : pandas.DataFrame
        ``df`` with a fresh index and ``size``, ``tokens`` as floats.
    scores : pandas.DataFrame
        The score columns as floats (NaN where missing), same index.

    Raises
    ------
    DataError
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        if known is None:
            raise DataError(
                f"missing required column(s) {missing}; {name} needs {list(REQUIRED_COLUMNS)} "
                "and one column per benchmark"
            )
        raise DataError(f"{name} lacks column(s) {missing}; it needs {list(REQUIRED_COLUMNS)}")
    if df.empty:
        raise DataError(f"{name} has no rows")
    df = df.reset_index(drop=True)
    if known is None:
        benchmarks = _benchmark_columns(df, benchmarks)
    else:
        skip = set(REQUIRED_COLUMNS) | set(METADATA_COLUMNS)
        unknown = [c for c in df.columns if c not in skip and c not in known]
        if unknown:
            raise DataError(f"{name} has unknown column(s) {unknown}; score columns must be one of {list(known)}")
        benchmarks = [b for b in known if b in df.columns]
    _check_labels(df)
    df = df.assign(size=_positive_column(df, "size"), tokens=_positive_column(df, "tokens"))
    return df, _score_matrix(df, list(benchmarks))


def _row(df: pd.DataFrame, i: int) -> str:
    name = df.at[i, "model"]
    return f"row {i} (model {name!r})" if pd.notna(name) else f"row {i}"


def _benchmark_columns(df: pd.DataFrame, benchmarks: Sequence[str] | None) -> list[str]:
    if benchmarks is None:
        skip = set(REQUIRED_COLUMNS) | set(METADATA_COLUMNS)
        cols = [c for c in df.columns if c not in skip and not str(c).startswith("Unnamed")]
    else:
        cols = list(benchmarks)
        unknown = [b for b in cols if b not in df.columns]
        if unknown:
            raise DataError(f"unknown benchmark(s) {unknown}: not columns of the frame")
    if not cols:
        raise DataError("no benchmark columns: add one column of scores per benchmark")
    dup = sorted({b for b in cols if cols.count(b) > 1})
    if dup:
        raise DataError(f"benchmark(s) {dup} listed more than once")
    return cols


def _check_labels(df: pd.DataFrame) -> None:
    for col in ("model", "family"):
        bad = df.index[df[col].isna() | (df[col].astype(str).str.strip() == "")]
        if len(bad):
            raise DataError(f"missing {col} label in {_row(df, bad[0])} ({len(bad)} row(s) in all)")


def _positive_column(df: pd.DataFrame, col: str) -> pd.Series:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = df.index[values.isna()]
    if len(bad):
        raise DataError(f"column {col!r}: non-numeric or missing value {df.at[bad[0], col]!r} in {_row(df, bad[0])}")
    bad = df.index[~(values > 0) | ~np.isfinite(values)]
    if len(bad):
        raise DataError(f"column {col!r}: {values[bad[0]]} in {_row(df, bad[0])}; sizes and tokens must be positive")
    check_units(col, values, [_row(df, i) for i in df.index])
    return values.astype(float)


def _score_matrix(df: pd.DataFrame, benchmarks: list[str]) -> pd.DataFrame:
    out = {}
    for b in benchmarks:
        values = pd.to_numeric(df[b], errors="coerce")
        bad = df.index[values.isna() & df[b].notna()]
        if len(bad):
            raise DataError(f"benchmark {b!r}: non-numeric score {df.at[bad[0], b]!r} in {_row(df, bad[0])}")
        outside = df.index[(values < 0) | (values > 1) | np.isinf(values)]
        if len(outside):
            hint = " (they look like percentages: divide by 100)" if values.max() <= 100 else ""
            raise DataError(
                f"benchmark {b!r}: score {values[outside[0]]} in {_row(df, outside[0])} is outside [0, 1]; "
                f"{len(outside)} such score(s){hint}"
            )
        out[b] = values.astype(float)
    return pd.DataFrame(out, index=df.index)


def _drop_duplicate_models(df: pd.DataFrame, benchmarks: list[str]) -> pd.DataFrame:
    dup = df["model"].duplicated(keep=False)
    if not dup.any():
        return df
    exact = df.duplicated(keep="first")
    conflicting = df.loc[dup & ~df.duplicated(keep=False), "model"].unique()
    if len(conflicting):
        raise DataError(
            f"model {conflicting[0]!r} appears more than once with different data "
            f"({len(conflicting)} such model(s)); rename or remove the duplicates"
        )
    warnings.warn(f"dropped {int(exact.sum())} exact duplicate row(s): {sorted(df.loc[exact, 'model'])}", stacklevel=3)
    return df.loc[~exact].reset_index(drop=True)


def _floors(benchmarks: list[str], floors: Mapping[str, float] | None) -> dict[str, float]:
    given = dict(floors or {})
    unknown = [b for b in given if b not in benchmarks]
    if unknown:
        raise DataError(f"floors given for unknown benchmark(s) {unknown}")
    out = {}
    for b in benchmarks:
        if b in given:
            out[b] = float(given[b])
        elif b in KNOWN_FLOORS:
            out[b] = KNOWN_FLOORS[b]
        else:
            raise DataError(f"benchmark {b!r} has no chance-level floor; pass floors={{{b!r}: ...}}")
        if not 0 <= out[b] < 1:
            raise DataError(f"floor of benchmark {b!r} is {out[b]}; it must be in [0, 1)")
    return out


def _anchor_order(benchmarks: list[str], anchors: Sequence[str] | None) -> list[str]:
    if anchors is None:
        known = [b for b in PAPER_ANCHORS if b in benchmarks]
        return known + [b for b in benchmarks if b not in known]
    anchors = list(anchors)
    unknown = [a for a in anchors if a not in benchmarks]
    if unknown:
        raise DataError(f"anchor(s) {unknown} are not among the benchmarks {benchmarks}")
    if len(set(anchors)) != len(anchors):
        raise DataError(f"anchors {anchors} repeat a benchmark")
    return anchors + [b for b in benchmarks if b not in anchors]


def _check_coverage(scores: np.ndarray, models: np.ndarray, benchmarks: list[str]) -> None:
    observed = ~np.isnan(scores)
    empty = np.flatnonzero(~observed.any(axis=1))
    if len(empty):
        raise DataError(
            f"model {models[empty[0]]!r} has no scores at all ({len(empty)} such model(s)); remove it"
        )
    unscored = [b for b, any_ in zip(benchmarks, observed.any(axis=0), strict=True) if not any_]
    if unscored:
        raise DataError(f"benchmark(s) {unscored} have no scores at all")


def _warn_below_floor(
    scores: np.ndarray, floors: np.ndarray, benchmarks: Sequence[str], note: str = "", stacklevel: int = 4
) -> None:
    """One warning with the count of scores below the floor per benchmark; ``note`` says why, where known."""
    below = np.nan_to_num(scores, nan=np.inf) < floors
    counts = {b: int(c) for b, c in zip(benchmarks, below.sum(axis=0), strict=True) if c}
    if counts:
        warnings.warn(
            f"scores below their benchmark's chance floor: {counts}. The model's mean cannot go below the "
            f"floor, so these scores sit in the Beta tail{f' ({note})' if note else ''}.",
            BelowFloorWarning,
            stacklevel=stacklevel,
        )


#: What the leaderboard's below-floor scores are, per variant.
_LEADERBOARD_FLOOR_NOTES = {
    "paper": "in the leaderboard data, mostly the normalized v2 scores of fine-tunes: variant='raw' replaces them "
    "by raw accuracies",
    "raw": "in the leaderboard's raw variant, genuine raw accuracies below chance",
}


def _clip(scores: np.ndarray, eps: float) -> np.ndarray:
    clipped = np.clip(scores, eps, 1 - eps)
    n = int(np.sum(clipped != scores) - np.isnan(scores).sum())
    if n:
        log.info("moved %d score(s) inside [%g, %g]", n, eps, 1 - eps)
    return clipped


# ----------------------------------------------------------------- leaderboard
def load_leaderboard(
    variant: str = "paper",
    data_dir: str | os.PathLike | None = None,
    eps: float = 1e-3,
    download: bool = True,
    kinds: bool = True,
) -> ScalingData:
    """Load the paper's Open LLM Leaderboard v1/v2 data.

    The outer join of ``df_full_v1.csv`` and ``df_full_v2.csv`` on model, family, size,
    tokens and flops: 286 models in 170 families, 12 benchmarks.

    Parameters
    ----------
    variant : {"paper", "raw"}
        ``"paper"`` keeps the files as published. ``"raw"`` replaces the leaderboard's
        *normalized* v2 scores of fine-tuned models by their raw accuracies (from the
        leaderboard v2 dump), so that every score is on one scale; see
        :func:`bayes_lsl.raw.raw_v2_scores`.
    data_dir : path, optional
        Directory holding the files. Otherwise ``$BAYES_LSL_DATA``, the user cache, or a
        download checked against the published sha256.
    eps : float
        Scores are clipped into ``[eps, 1 - eps]`` (the paper's 1e-3).
    download : bool
        Allow downloading files that are not found locally.
    kinds : bool
        Attach each model's kind, base or tuned (``data.kind``), derived from the
        leaderboard dumps' ``Type`` column and the model names by
        :func:`bayes_lsl.kinds.leaderboard_kinds` (needs the two dumps, found or downloaded
        like the other files). ``False`` skips it.

    Notes
    -----
    The v2 file lists ``l3-pneuma-8b`` twice, with slightly different scores (two
    leaderboard submissions). Both rows are kept, as in the paper (286 rows), the second
    renamed ``l3-pneuma-8b (2)``.
    """
    from bayes_lsl.raw import raw_v2_scores
    from bayes_lsl.sources import DataNotFoundError, locate

    if variant not in ("paper", "raw"):
        raise DataError(f"unknown variant {variant!r}; choose 'paper' or 'raw'")
    v1 = pd.read_csv(locate("v1", data_dir, download), index_col=0)
    v2 = pd.read_csv(locate("v2", data_dir, download), index_col=0)
    dumps = {}
    for key in (["dump_v1"] if kinds else []) + (["dump_v2"] if kinds or variant == "raw" else []):
        try:
            path = locate(key, data_dir, download)
        except DataNotFoundError as err:
            if variant == "raw" and key == "dump_v2":
                raise
            raise DataNotFoundError(err.file_name, err.reason + " (needed for the models' kinds: kinds=False skips it)",
                                    err.option) from None  # fmt: skip
        dumps[key] = pd.read_csv(path, index_col=0 if key == "dump_v2" else None, low_memory=False)
    if variant == "raw":
        v2, changes = raw_v2_scores(v2, dumps["dump_v2"])
        log.info("raw variant: %d normalized scores replaced by raw accuracies", len(changes))
    keys = ["model", "family", "size", "tokens", "flops"]
    frame = v1.merge(v2, on=keys, how="outer")
    frame["model"] = _number_repeats(frame["model"])
    if kinds:
        frame["kind"] = leaderboard_kinds(frame["model"], list(dumps.values()))["kind"].to_numpy()
    with warnings.catch_warnings():
        # Warned below with what causes these scores in the leaderboard.
        warnings.simplefilter("ignore", BelowFloorWarning)
        data = ScalingData.from_frame(frame, floors=KNOWN_FLOORS, eps=eps)
    # Clipping into [eps, 1 - eps] moves no score across a floor (the floors are 0 or at least 0.1).
    _warn_below_floor(data.scores, data.floors, data.benchmarks, _LEADERBOARD_FLOOR_NOTES[variant], stacklevel=2)
    return data


def _number_repeats(names: pd.Series) -> pd.Series:
    """Rename the 2nd, 3rd, ... occurrence of a name to ``name (2)``, ``name (3)``, ..."""
    nth = names.groupby(names).cumcount() + 1
    return names.where(nth == 1, names + " (" + nth.astype(str) + ")")


def load_example() -> ScalingData:
    """The shipped simulated example: 160 models in 40 families, 8 benchmarks, K=2 truth.

    Made by ``data/make_example.py`` from known parameters (in ``example_truth.json``
    beside the CSV; see :func:`example_truth`); works offline.

    Examples
    --------
    >>> data = bl.load_example()
    >>> print(data)
    ScalingData: 160 models, 40 families, 8 benchmarks
      observed scores: 1079 of 1280 (34 models scored on all)
      benchmarks (anchors first): math, ifeval, hellaswag, bbh, mmlu-pro, mmlu, arc, truthfulqa
      size 0.101-95.713 B params, tokens 0.138-17.015 T
    >>> data.scores.shape  # models x benchmarks, NaN where not evaluated
    (160, 8)
    """
    from importlib.resources import files

    with files("bayes_lsl.example").joinpath("example_scores.csv").open() as fh:
        frame = pd.read_csv(fh)
    with warnings.catch_warnings():
        # Simulated from the model itself, whose Beta noise reaches below the floors by design.
        warnings.simplefilter("ignore", BelowFloorWarning)
        return ScalingData.from_frame(frame, anchors=[c for c in frame.columns if c not in REQUIRED_COLUMNS])


def example_truth() -> dict:
    """The parameters (``beta``, ``lam``, ``b``, ``phi``, ``corr``, ``alpha``) behind :func:`load_example`."""
    import json
    from importlib.resources import files

    meta = json.loads(files("bayes_lsl.example").joinpath("example_truth.json").read_text())
    return {k: (np.asarray(v) if isinstance(v, list) and k != "benchmarks" else v) for k, v in meta.items()}
