"""Predictive distributions of benchmark scores for models that were not (fully) evaluated.

For each parameter draw (:func:`bayes_lsl.parameters.parameter_draws`) a new model's
family effect is drawn from its conditional posterior given the family's scores in the
fit and the new model's own scores, if any (a family never seen: ``N(0, corr)``); then
``theta = alpha + beta' x``, ``mu = C + (1 - C) sigmoid(lam' theta + b)`` and a Beta
score. With an ``mle`` fit this is the plug-in recipe with the parameters' sampling
uncertainty added; with ``nuts``/``advi`` fits it is the posterior predictive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayes_lsl.data import COVARIATES, DataError, _check_labels, _positive_column, _score_matrix, raw_covariates
from bayes_lsl.errors import BayesLslError
from bayes_lsl.parameters import beta_shapes, cell_precision, family_effect_draws, parameter_draws
from bayes_lsl.ranges import check_range

REQUIRED = ("model", "family", "size", "tokens")
KINDS = ("score", "mu", "theta")


def _new_models(fit: xr.DataTree, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Validate ``new_models``; returns it and its observed scores (model x benchmark, NaN if none).

    Labels, sizes, tokens and scores go through the checks of
    :meth:`bayes_lsl.ScalingData.from_frame`, so that a mistake gets the same message in
    ``fit`` and ``predict``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"new_models must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"new_models lacks column(s) {missing}; it needs {list(REQUIRED)}")
    if frame.empty:
        raise DataError("new_models has no rows")
    benchmarks = list(fit.attrs["benchmarks"])
    unknown = [c for c in frame.columns if c not in REQUIRED and c not in benchmarks and c != "flops"]
    if unknown:
        raise DataError(f"new_models has unknown column(s) {unknown}; score columns must be one of {benchmarks}")
    frame = frame.reset_index(drop=True)
    _check_labels(frame)
    dup = frame["model"].astype(str).duplicated()
    if dup.any():
        raise DataError(f"new_models repeats model(s) {sorted(set(frame['model'][dup].astype(str)))}")
    frame = frame.assign(size=_positive_column(frame, "size"), tokens=_positive_column(frame, "tokens"))
    given = _score_matrix(frame, [b for b in benchmarks if b in frame.columns])
    eps = float(fit.attrs.get("eps", 1e-3))
    scores = given.reindex(columns=benchmarks).to_numpy(float)
    return frame, np.clip(scores, eps, 1 - eps)


def predict(
    fit: xr.DataTree,
    new_models: pd.DataFrame,
    level: float = 0.95,
    seed: int = 0,
    *,
    n_draws: int = 1000,
    kind: str = "score",
    return_draws: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, xr.Dataset]:
    """Predictive mean, median and interval of new models' scores on every benchmark.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit` (``mle``, ``advi`` or ``nuts``; ``map`` has no
        parameter uncertainty and warns).
    new_models : pandas.DataFrame
        Columns ``model``, ``family``, ``size`` (billions of parameters), ``tokens``
        (trillions), and optionally observed scores in columns named after benchmarks
        (NaN where not observed). A family seen in the fit has its effect conditioned on
        the family's scores in the fit; observed scores of the new models condition it
        further (models of one family share it). The new models' own scores are not
        assumed to be in the fit: do not pass a model's scores twice.
    level : float
        Probability of the central (equal-tailed) interval.
    seed : int
        Seed of every random step.
    n_draws : int
        Draws of the parameters (and of the scores).
    kind : {"score", "mu", "theta"}
        What the table summarizes: the score with its Beta noise, its mean ``mu``
        without it, or the latent skills (then ``benchmark`` is replaced by ``skill``).
    return_draws : bool
        Also return the draws as an ``xarray.Dataset`` (``y``, ``mu``: sample x model x
        benchmark; ``theta``: sample x model x skill; ``alpha``: sample x model x skill).

    Returns
    -------
    pandas.DataFrame
        One row per model and benchmark (or skill): ``model``, ``family``, ``benchmark``,
        ``mean``, ``median``, ``lower``, ``upper``, ``observed`` (the given score, else
        NaN), ``seen_family`` and ``extrapolation``: how far the model's size or tokens lie
        outside the range of the fit's data, as a factor (1 within it; 4 where the size is
        4 times the largest, or a quarter of the smallest, in the data).

    Raises
    ------
    DataError
        On invalid new models, with the messages of :meth:`bayes_lsl.ScalingData.from_frame`;
        a size over 10,000 or tokens over 1,000 are taken for raw counts (the units are
        billions of parameters and trillions of tokens).

    Warns
    -----
    UserWarning
        When a model's size or tokens lie more than :data:`bayes_lsl.ranges.RANGE_MARGIN`
        (3) times outside the data's range, naming the model, the value and the range.
    """
    if kind not in KINDS:
        raise BayesLslError(f"kind must be one of {KINDS}, got {kind!r}")
    if not 0 < level < 1:
        raise BayesLslError(f"level must be in (0, 1), got {level}")
    frame, observed = _new_models(fit, new_models)
    models = frame["model"].astype(str).tolist()
    extrapolation = check_range(
        fit, {"size": frame["size"], "tokens": frame["tokens"]}, [f"model {m!r}" for m in models], stacklevel=2
    )
    draws = predictive_draws(fit, frame, observed, seed=seed, n_draws=n_draws)
    table = summarize(draws, kind, level)
    label = "skill" if kind == "theta" else "benchmark"
    family_of = dict(zip(frame["model"].astype(str), frame["family"].astype(str), strict=True))
    table["family"] = table["model"].map(family_of)
    seen = set(map(str, fit["constant_data"]["family"].values))
    table["seen_family"] = table["family"].isin(seen)
    table["extrapolation"] = table["model"].map(dict(zip(models, extrapolation, strict=True)))
    if kind != "theta":
        obs = xr.DataArray(observed, dims=("model", "benchmark"), coords=draws["y"].isel(sample=0).coords)
        table["observed"] = obs.to_series().reindex(pd.MultiIndex.from_frame(table[["model", "benchmark"]])).values
    cols = ["model", "family", label, "mean", "median", "lower", "upper"]
    table = table[cols + [c for c in table.columns if c not in cols]]
    return (table, draws) if return_draws else table


def summarize(draws: xr.Dataset, kind: str = "score", level: float = 0.95) -> pd.DataFrame:
    """Mean, median and central interval over ``sample`` as a tidy frame."""
    da = draws[{"score": "y", "mu": "mu", "theta": "theta"}[kind]]
    q = da.quantile([(1 - level) / 2, 0.5, (1 + level) / 2], dim="sample").drop_vars("quantile")
    stats = {"mean": da.mean("sample"), "median": q[1], "lower": q[0], "upper": q[2]}
    return xr.Dataset(stats).to_dataframe().reset_index()


def predictive_draws(
    fit: xr.DataTree, frame: pd.DataFrame, observed: np.ndarray, seed: int = 0, n_draws: int = 1000
) -> xr.Dataset:
    """Draws of ``alpha``, ``theta``, ``mu`` and ``y`` for validated new models (see :func:`predict`)."""
    seeds = np.random.SeedSequence(seed).spawn(3)
    params = parameter_draws(fit, n_draws, seed=int(seeds[0].generate_state(1)[0]))
    S = params.sizes["sample"]
    benchmarks = list(fit.attrs["benchmarks"])
    floors = np.asarray(fit.attrs["floors"], float)
    x = (raw_covariates(frame["size"], frame["tokens"]) - fit.attrs["covariate_center"]) / fit.attrs[
        "covariate_scale"
    ]
    alpha = family_effect_draws(fit, params, frame["family"].astype(str).tolist(), x, observed, seeds[1])

    beta, lam, b = (params[n].values for n in ("beta", "lam", "b"))
    theta = alpha + np.einsum("mp,spk->smk", x, beta)
    eta = np.einsum("smk,skj->smj", theta, lam) + b[:, None, :]
    J = len(benchmarks)
    phi = cell_precision(params, np.repeat(x, J, axis=0), np.tile(np.arange(J), len(frame)))  # (S, model*J)
    shape_a, shape_b = beta_shapes(eta.reshape(S, -1), np.tile(floors, len(frame)), phi)
    shape_a, shape_b = shape_a.reshape(eta.shape), shape_b.reshape(eta.shape)
    mu = shape_a / (shape_a + shape_b)
    y = np.random.default_rng(seeds[2]).beta(shape_a, shape_b)
    coords = {
        "sample": np.arange(S),
        "model": frame["model"].astype(str).to_numpy(),
        "benchmark": benchmarks,
        "skill": params["skill"].values,
        "covariate": list(COVARIATES),
    }
    return xr.Dataset(
        {
            "y": (("sample", "model", "benchmark"), y),
            "mu": (("sample", "model", "benchmark"), mu),
            "theta": (("sample", "model", "skill"), theta),
            "alpha": (("sample", "model", "skill"), alpha),
            "x": (("model", "covariate"), x),
        },
        coords=coords,
    )

