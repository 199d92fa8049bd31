"""Predictive distributions of benchmark scores for models that were not (fully) evaluated.

For each parameter draw (:func:`bayes_lsl.parameters.parameter_draws`) a new model's
family effect is drawn from its conditional posterior given the family's scores in the
fit and the new model's own scores, if any (a family never seen: ``N(0, corr)``); then
``theta = alpha + beta' x``, ``mu = C + (1 - C) sigmoid(lam' theta + b)`` and a Beta
score. With an ``mle`` fit this is the plug-in recipe with the parameters' sampling
uncertainty added; with ``nuts``/``advi`` fits it is the posterior predictive. With family
slopes (``fit(..., family_slopes=...)``) ``theta`` adds the family's slopes times the
model's covariates on those terms: a seen family's posterior draws, a new family's drawn
from ``N(0, slope_sd^2)`` (:func:`bayes_lsl.parameters.family_slope_draws`); predictions
given new scores are refused for such fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayes_lsl.data import DataError, validate_models
from bayes_lsl.design import new_model_kinds
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.result import FitInfo
from bayes_lsl.model.likelihood import draw_scores
from bayes_lsl.parameters import beta_shapes, cell_precision, family_effect_draws, family_slope_draws, parameter_draws
from bayes_lsl.ranges import check_range

KINDS = ("score", "mu", "theta")


@dataclass(frozen=True)
class Prediction:
    """A prediction's table and the draws it summarizes (from :func:`predict_draws`).

    Attributes
    ----------
    table : pandas.DataFrame
        What :func:`predict` returns.
    draws : xarray.Dataset
        ``y``, ``mu`` and ``phi`` (sample, model, benchmark): scores, their means and Beta
        precisions (shapes ``mu phi`` and ``(1 - mu) phi``); ``theta`` and
        ``alpha`` (sample, model, skill): skills and family effects; ``x`` (model,
        covariate): the standardized covariates.
    """

    table: pd.DataFrame
    draws: xr.Dataset

    def _repr_html_(self) -> str:
        return self.table._repr_html_()

    def __repr__(self) -> str:
        sizes = ", ".join(f"{d}: {n}" for d, n in self.draws.sizes.items())
        return f"Prediction(draws ({sizes}),\n{self.table.round(4).to_string(max_rows=20)}\n)"


def _new_models(info: FitInfo, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Validate ``new_models``; returns it and its observed scores (model x benchmark, NaN if none).

    The checks are :meth:`bayes_lsl.ScalingData.from_frame`'s
    (:func:`bayes_lsl.data.validate_models`), so that a mistake gets the same message in
    ``fit`` and ``predict``.
    """
    frame, given = validate_models(frame, known=info.benchmarks, name="new_models")
    dup = frame["model"].astype(str).duplicated()
    if dup.any():
        raise DataError(f"new_models repeats model(s) {sorted(set(frame['model'][dup].astype(str)))}")
    scores = given.reindex(columns=list(info.benchmarks)).to_numpy(float)
    return frame, np.clip(scores, info.eps, 1 - info.eps)


def predict(
    fit: xr.DataTree,
    new_models: pd.DataFrame,
    *,
    level: float = 0.95,
    n_draws: int = 1000,
    seed: int = 0,
    kind: str = "score",
    **removed,
) -> pd.DataFrame:
    """Predictive mean, median and interval of new models' scores on every benchmark.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit` (``mle``, ``advi`` or ``nuts``; ``map`` has no
        parameter uncertainty and warns).
    new_models : pandas.DataFrame
        Columns ``model``, ``family``, ``size`` (billions of parameters), ``tokens``
        (trillions), and optionally observed scores in columns named after benchmarks
        (NaN where not observed). For a fit by kind (``bl.fit(..., by_kind=True)``) a
        ``kind`` column (base or tuned) gives the models' kinds; without it the names must
        say (:func:`bayes_lsl.kinds.kind_from_name`). A family seen in the fit has its effect conditioned on
        the family's scores in the fit; observed scores of the new models condition it
        further (models of one family share it). The new models' own scores are not
        assumed to be in the fit: do not pass a model's scores twice.
    level : float
        Probability of the central (equal-tailed) interval.
    n_draws : int
        Draws of the parameters (and of the scores).
    seed : int
        Seed of every random step.
    kind : {"score", "mu", "theta"}
        What the table summarizes: the score with its Beta noise, its mean ``mu``
        without it, or the latent skills (then ``benchmark`` is replaced by ``skill``).

    Returns
    -------
    pandas.DataFrame
        One row per model and benchmark (or skill): ``model``, ``family``, ``benchmark``,
        ``mean``, ``median``, ``lower``, ``upper``, ``observed`` (the given score, else
        NaN), ``seen_family`` and ``extrapolation``: how far the model's size or tokens lie
        outside the range of the fit's data, as a factor (1 within it; 4 where the size is
        4 times the largest, or a quarter of the smallest, in the data). The draws behind
        it: :func:`predict_draws`.

    Raises
    ------
    DataError
        On invalid new models, with the messages of :meth:`bayes_lsl.ScalingData.from_frame`;
        a size over 10,000 or tokens over 1,000 are taken for raw counts (the units are
        billions of parameters and trillions of tokens).
    BayesLslError
        On an invalid ``kind`` or ``level``, or ``return_draws`` (removed: call
        :func:`predict_draws`).

    Warns
    -----
    UserWarning
        When a model's size or tokens lie more than :data:`bayes_lsl.ranges.RANGE_MARGIN`
        times outside the data's range, naming the model, the value and the range.

    Examples
    --------
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> import pandas as pd
    >>> import warnings
    >>> new = pd.DataFrame({"model": ["new-7b"], "family": ["new"], "size": [7.0], "tokens": [2.0]})
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # a map fit has no parameter uncertainty
    ...     table = bl.predict(fit, new, level=0.9, n_draws=200, seed=1)
    >>> table.columns.tolist()[:7]
    ['model', 'family', 'benchmark', 'mean', 'median', 'lower', 'upper']
    >>> len(table) == len(data.benchmarks)
    True
    """
    return _predict(fit, new_models, level=level, n_draws=n_draws, seed=seed, kind=kind, removed=removed).table


def predict_draws(
    fit: xr.DataTree,
    new_models: pd.DataFrame,
    *,
    level: float = 0.95,
    n_draws: int = 1000,
    seed: int = 0,
    kind: str = "score",
) -> Prediction:
    """:func:`predict`'s table together with the draws it summarizes.

    Parameters are :func:`predict`'s; the same ``seed`` gives the same table.

    Returns
    -------
    Prediction
        ``table`` (:func:`predict`'s) and ``draws``: an ``xarray.Dataset`` with ``y``,
        ``mu``, ``phi`` (sample x model x benchmark), ``theta``, ``alpha`` (sample x model x skill).

    Examples
    --------
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> import warnings
    >>> # a bigger sibling of the example's first model, its family seen in the fit
    >>> sibling = data.to_frame().loc[[0], ["model", "family", "size", "tokens"]].assign(model="sibling", size=70.0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # a map fit has no parameter uncertainty
    ...     result = bl.predict_draws(fit, sibling, n_draws=200, seed=1)
    >>> bool(result.table["seen_family"].all())
    True
    >>> result.draws["y"].dims
    ('sample', 'model', 'benchmark')
    >>> result.draws.sizes["sample"]
    200
    """
    return _predict(fit, new_models, level=level, n_draws=n_draws, seed=seed, kind=kind, removed={})


def _predict(fit, new_models, *, level, n_draws, seed, kind, removed) -> Prediction:
    if "return_draws" in removed:
        raise BayesLslError(
            "predict no longer takes return_draws: call bayes_lsl.predict_draws(fit, new_models, ...), which "
            "returns a Prediction with .table and .draws"
        )
    if removed:
        raise TypeError(f"predict() got unexpected keyword argument(s) {sorted(removed)}")
    if kind not in KINDS:
        raise BayesLslError(f"kind must be one of {KINDS}, got {kind!r}")
    if not 0 < level < 1:
        raise BayesLslError(f"level must be in (0, 1), got {level}")
    info = FitInfo.from_tree(fit)
    frame, observed = _new_models(info, new_models)
    models = frame["model"].astype(str).tolist()
    extrapolation = check_range(
        fit, {"size": frame["size"], "tokens": frame["tokens"]}, [f"model {m!r}" for m in models], stacklevel=3
    )
    draws = predictive_draws(fit, frame, observed, n_draws=n_draws, seed=seed)
    table = summarize(draws, kind, level=level)
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
    return Prediction(table[cols + [c for c in table.columns if c not in cols]], draws)


def summarize(draws: xr.Dataset, kind: str = "score", *, level: float = 0.95) -> pd.DataFrame:
    """Mean, median and central interval over ``sample`` as a tidy frame."""
    da = draws[{"score": "y", "mu": "mu", "theta": "theta"}[kind]]
    q = da.quantile([(1 - level) / 2, 0.5, (1 + level) / 2], dim="sample").drop_vars("quantile")
    stats = {"mean": da.mean("sample"), "median": q[1], "lower": q[0], "upper": q[2]}
    return xr.Dataset(stats).to_dataframe().reset_index()


def predictive_draws(
    fit: xr.DataTree, frame: pd.DataFrame, observed: np.ndarray, *, n_draws: int = 1000, seed: int = 0
) -> xr.Dataset:
    """Draws of ``alpha``, ``theta``, ``mu``, ``phi`` and ``y`` for validated new models (see :func:`predict`)."""
    draws, rng = score_distribution(fit, frame, observed, n_draws=n_draws, seed=seed)
    shape_a, shape_b = draws["shape_a"].values, draws["shape_b"].values
    draws["phi"] = draws["shape_a"] + draws["shape_b"]
    draws["mu"] = draws["shape_a"] / draws["phi"]
    eps, kappa = score_mixture(draws)
    draws["y"] = (draws["mu"].dims, draw_scores(shape_a, shape_b, rng, eps, kappa))
    return draws[["y", "mu", "phi", "theta", "alpha", "x", *(["score_eps"] if "score_eps" in draws else [])]]


def score_mixture(draws: xr.Dataset) -> tuple[np.ndarray | None, float | None]:
    """``(eps, kappa)`` of :func:`score_distribution`'s draws: the mixture's weight per sample,
    shaped (sample, 1, 1) to broadcast against the shapes, and its precision factor; ``(None,
    None)`` for the paper's Beta scores."""
    if "score_eps" not in draws:
        return None, None
    return draws["score_eps"].values[:, None, None], float(draws.attrs["score_kappa"])


def score_distribution(
    fit: xr.DataTree, frame: pd.DataFrame, observed: np.ndarray, *, n_draws: int = 1000, seed: int = 0
) -> tuple[xr.Dataset, np.random.Generator]:
    """Per draw, the Beta distribution of validated new models' scores, before any score is drawn.

    Returns
    -------
    draws : xarray.Dataset
        ``shape_a``, ``shape_b`` (sample, model, benchmark): the scores' Beta shapes
        (the main component's with ``scores="beta-mixture"``, then with ``score_eps``
        (sample) and ``attrs["score_kappa"]``: see :func:`score_mixture`);
        ``theta``, ``alpha`` (sample, model, skill); ``x`` (model, covariate).
    rng : numpy.random.Generator
        The generator :func:`predictive_draws` draws the scores with (so that a seed
        gives the same scores whoever draws them).
    """
    info = FitInfo.from_tree(fit)
    seeds = np.random.SeedSequence(seed).spawn(4)  # the 4th (family slopes) leaves the first three as they were
    params = parameter_draws(fit, n_draws=n_draws, seed=int(seeds[0].generate_state(1)[0]))
    S = params.sizes["sample"]
    models = frame["model"].astype(str).tolist()
    x = info.standardize(frame["size"], frame["tokens"], new_model_kinds(frame, info.covariates), models)
    families = frame["family"].astype(str).tolist()
    # Family slopes (None without them) first: they refuse new scores before any Laplace work.
    slopes = family_slope_draws(fit, params, families, x, observed, seed=seeds[3])
    alpha = family_effect_draws(fit, params, families, x, observed, seed=seeds[1])

    beta, lam, b = (params[n].values for n in ("beta", "lam", "b"))
    theta = alpha + np.einsum("mp,spk->smk", x, beta)
    if slopes is not None:
        theta = theta + slopes
    eta = np.einsum("smk,skj->smj", theta, lam) + b[:, None, :]
    J = len(info.benchmarks)
    phi = cell_precision(params, np.repeat(x, J, axis=0), np.tile(np.arange(J), len(frame)))  # (S, model*J)
    shape_a, shape_b = beta_shapes(eta.reshape(S, -1), np.tile(info.floors, len(frame)), phi)
    coords = {
        "sample": np.arange(S),
        "model": frame["model"].astype(str).to_numpy(),
        "benchmark": list(info.benchmarks),
        "skill": params["skill"].values,
        "covariate": list(info.covariates),
    }
    cell_dims = ("sample", "model", "benchmark")
    draws = xr.Dataset(
        {
            "shape_a": (cell_dims, shape_a.reshape(eta.shape)),
            "shape_b": (cell_dims, shape_b.reshape(eta.shape)),
            "theta": (("sample", "model", "skill"), theta),
            "alpha": (("sample", "model", "skill"), alpha),
            "x": (("model", "covariate"), x),
        },
        coords=coords,
    )
    if info.score_kappa is not None:
        draws["score_eps"] = ("sample", params["score_eps"].values)
        draws.attrs["score_kappa"] = info.score_kappa
    return draws, np.random.default_rng(seeds[2])
