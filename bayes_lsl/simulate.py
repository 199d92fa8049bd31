"""Data sets drawn from the model for known parameters (for recovery checks and examples).

Draws go through :func:`bayes_lsl.build_model` itself (``pm.do`` fixes the parameters,
``pm.draw`` samples family effects and scores), so simulation uses the very likelihood
that the fits use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pymc as pm

from bayes_lsl.data import KNOWN_FLOORS, PAPER_ANCHORS, ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.model import build_model
from bayes_lsl.model.likelihood import corr_to_z


def random_parameters(K: int, J: int, seed: int = 0, p: int = 3) -> dict[str, np.ndarray]:
    """Plausible parameters for simulation: positive anchors, moderate slopes and correlations.

    ``p`` is the number of covariates (the design's terms; 3 for the paper's). The slopes
    are drawn last, so that ``p`` changes nothing else.
    """
    rng = np.random.default_rng(seed)
    lam = rng.normal(0.0, 0.5, size=(K, J))
    lam[:, :K] = np.diag(rng.uniform(0.8, 1.5, size=K))
    A = rng.normal(size=(K, K + 2))
    cov = A @ A.T
    d = np.sqrt(np.diag(cov))
    slopes = rng.normal(0.0, 0.6, size=(3, K))  # drawn here, as always, so that the paper's draws do not move
    out = {
        "beta": slopes,
        "lam": lam,
        "b": rng.normal(-0.5, 0.6, size=J),
        "phi": rng.uniform(30.0, 150.0, size=J),
        "corr": cov / np.outer(d, d),
    }
    if p != 3:
        out["beta"] = np.vstack([slopes, rng.normal(0.0, 0.6, size=(max(p - 3, 0), K))])[:p]
    return out


def random_design(n_families: int, models_per_family: int, seed: int = 0, kinds: bool = False) -> pd.DataFrame:
    """Families of models with log-uniform sizes (0.1-100 B) and tokens (0.2-15 T).

    With ``kinds``, a ``kind`` column: each family is base or tuned with probability 1/2
    (drawn after the rest, which does not change).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(n_families):
        tokens = float(np.exp(rng.uniform(np.log(0.2), np.log(15.0))))
        sizes = np.sort(np.exp(rng.uniform(np.log(0.1), np.log(100.0), size=models_per_family)))
        for m, size in enumerate(sizes):
            rows.append({"model": f"fam{f:03d}-m{m}-{size:.2f}b", "family": f"fam{f:03d}", "size": round(size, 3),
                         "tokens": round(tokens * np.exp(rng.normal(0, 0.2)), 3)})  # fmt: skip
    frame = pd.DataFrame(rows)
    if kinds:
        tuned = rng.random(n_families) < 0.5
        tuned[:2] = [False, True]  # both kinds, whatever the draw
        frame["kind"] = np.where(tuned[frame["family"].str.removeprefix("fam").astype(int)], "tuned", "base")
    return frame


def simulate(
    params: Mapping[str, np.ndarray],
    design: pd.DataFrame,
    benchmarks: Sequence[str] | None = None,
    floors: Mapping[str, float] | None = None,
    missing: float = 0.0,
    seed: int = 0,
    alpha: np.ndarray | None = None,
    eps: float | None = None,
    covariates: str | Sequence[str] | None = None,
    by_kind: bool = False,
    family_effects: str = "normal",
    family_df: float | None = None,
    family_slopes: str | Sequence[str] | None = None,
    scores: str = "beta",
    score_kappa: float | None = None,
) -> tuple[ScalingData, dict[str, np.ndarray]]:
    """Draw scores from the model.

    Parameters
    ----------
    params : dict
        ``beta`` (p, K), ``lam`` (K, J; diagonal non-negative anchor block), ``b`` (J),
        ``phi`` (J) and ``corr`` (K, K), e.g. from :func:`random_parameters`; ``beta`` has
        one row per term of the design (3 for the paper's).
    design : DataFrame
        Columns ``model``, ``family``, ``size``, ``tokens`` and, for a design by kind,
        ``kind`` (e.g. :func:`random_design`).
    benchmarks : list of str, optional
        Names of the J benchmarks, anchors first; default the paper's first J.
    floors : dict, optional
        Floors of benchmarks whose names are not known.
    missing : float
        Probability that a score is missing (each model keeps at least one).
    seed : int
        Seed of the family effects, scores and missingness.
    alpha : ndarray (family, skill), optional
        Family effects to use instead of drawing them, in the order in which families
        first appear in ``design`` (e.g. new models of the families of an earlier draw).
    eps : float, optional
        Scores are clipped into ``[eps, 1 - eps]`` (default: :class:`ScalingData`'s); a
        smaller value keeps more draws exactly as the model made them (for calibration).
    covariates, by_kind
        The design (:meth:`bayes_lsl.ScalingData.with_covariates`; default the paper's).
    family_effects : {"normal", "student-t"}
        The family effects' distribution (:func:`bayes_lsl.build_model`): ``N(0, corr)``
        or the multivariate t with ``family_df`` degrees of freedom and scale ``corr``.
    family_df : float, optional
        Degrees of freedom of ``"student-t"`` (default ``DEFAULT_PRIORS["family_df"]``, 4).
    family_slopes : str or list of str, optional
        Terms with random family slopes (as for :func:`bayes_lsl.build_model`); then
        ``params`` carries ``slope_sd`` (slope_term, skill), and each family's slopes are
        drawn ``N(0, slope_sd^2)`` (after the family effects).
    scores : {"beta", "beta-mixture"}
        The scores' likelihood (:func:`bayes_lsl.build_model`); the mixture needs the true
        weight ``params["score_eps"]`` (in [0, 1)).
    score_kappa : float, optional
        The mixture's precision factor (default ``DEFAULT_PRIORS["score_kappa"]``, 0.1).

    Returns
    -------
    data : ScalingData
        With the design it was drawn from (``data.terms``), standardized over its models.
    truth : dict
        The parameters and the drawn ``alpha`` (family, skill) (and ``family_slope``
        (family, slope_term, skill) with family slopes).
    """
    lam = np.asarray(params["lam"], float)
    K, J = lam.shape
    data, benchmarks, floors = _template(design, J, benchmarks, floors, eps, covariates, by_kind)
    if np.shape(params["beta"]) != (len(data.terms), K):
        raise BayesLslError(
            f"params['beta'] has shape {np.shape(params['beta'])}; the design {list(data.terms)} needs "
            f"({len(data.terms)}, {K})"
        )
    if family_df is not None and family_effects != "student-t":
        raise BayesLslError(f"family_df={family_df!r} is for family_effects='student-t', not {family_effects!r}")
    if score_kappa is not None and scores != "beta-mixture":
        raise BayesLslError(f"score_kappa={score_kappa!r} is for scores='beta-mixture', not {scores!r}")
    if scores == "beta-mixture" and "score_eps" not in params:
        raise BayesLslError("simulate(scores='beta-mixture') needs the true weight params['score_eps']")
    if "score_eps" in params and scores != "beta-mixture":
        raise BayesLslError("params has 'score_eps': say that the scores are the mixture (scores='beta-mixture')")
    if "score_eps" in params and not 0 <= float(params["score_eps"]) < 1:
        raise BayesLslError(f"params['score_eps'] must be in [0, 1), got {params['score_eps']!r}")
    rng = np.random.default_rng(seed)
    priors = ({} if family_df is None else {"family_df": family_df}) | (
        {} if score_kappa is None else {"score_kappa": score_kappa})
    model = build_model(data, K=K, family_effects=family_effects, family_slopes=family_slopes, scores=scores,
                        priors=priors or None)  # fmt: skip
    fixed = pm.do(model, free_values(params) | ({} if alpha is None else {"alpha": np.asarray(alpha, float)}))
    names = ["alpha", "y"]
    if family_slopes is not None:
        fixed = pm.do(fixed, {"slope_sd": _slope_sd(params, fixed)})
        names.insert(1, "family_slope")
    elif "slope_sd" in params:
        raise BayesLslError("params has 'slope_sd': say which terms have family slopes (family_slopes=...)")
    drawn = dict(zip(names, pm.draw([fixed[n] for n in names], random_seed=rng), strict=True))
    alpha, y = drawn.pop("alpha"), drawn.pop("y")
    scores = np.clip(y.reshape(data.n_models, J), data.eps, 1 - data.eps)
    drop = rng.random(scores.shape) < missing
    drop[np.arange(data.n_models), rng.integers(J, size=data.n_models)] = False
    scores[drop] = np.nan
    frame = data.to_frame()
    frame[benchmarks] = scores
    out = ScalingData.from_frame(frame, floors=floors, anchors=benchmarks, eps=data.eps).with_covariates(data.terms)
    truth = {k: np.asarray(v, float) for k, v in params.items()} | {"alpha": alpha} | drawn
    return out, truth


def _slope_sd(params: Mapping[str, np.ndarray], model: pm.Model) -> np.ndarray:
    """``params['slope_sd']``, validated against ``model``'s slope terms and skills."""
    if "slope_sd" not in params:
        raise BayesLslError("simulate(family_slopes=...) needs params['slope_sd'] (slope_term, skill)")
    sd = np.asarray(params["slope_sd"], float)
    terms = list(model.coords["slope_term"])
    expected = (len(terms), len(model.coords["skill"]))
    if sd.shape != expected or np.any(sd < 0):
        raise BayesLslError(
            f"params['slope_sd'] must be non-negative with shape {expected} (slope_term {terms} x skill), "
            f"got shape {sd.shape}"
        )
    return sd


def _template(
    design: pd.DataFrame,
    J: int,
    benchmarks: Sequence[str] | None,
    floors: Mapping[str, float] | None,
    eps: float | None = None,
    covariates: str | Sequence[str] | None = None,
    by_kind: bool = False,
) -> tuple[ScalingData, list[str], dict[str, float]]:
    """The design as data with placeholder scores (what ``build_model`` needs to draw from)."""
    benchmarks = list(benchmarks or PAPER_ANCHORS[:J])
    floors = {b: (floors or {}).get(b, KNOWN_FLOORS.get(b)) for b in benchmarks}
    template = design[[c for c in ("model", "family", "size", "tokens", "kind") if c in design.columns]].copy()
    for b in benchmarks:
        template[b] = 0.5
    extra = {} if eps is None else {"eps": eps}
    data = ScalingData.from_frame(template, floors=floors, anchors=benchmarks, **extra)
    return data.with_covariates(covariates, by_kind), benchmarks, floors


def free_values(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The free variables of ``build_model`` (non-centered) that the natural parameters
    ``beta``, ``lam``, ``b``, ``phi``, ``corr`` (and ``score_eps``) give (what ``pm.do`` fixes)."""
    lam = np.asarray(params["lam"], float)
    K = lam.shape[0]
    mixture = {"score_eps": np.asarray(params["score_eps"], float)} if "score_eps" in params else {}
    return mixture | {
        "beta": np.asarray(params["beta"], float),
        "lam_anchor": np.diag(lam[:, :K]),
        "lam_free": lam[:, K:],
        "b": np.asarray(params["b"], float),
        "phi": np.asarray(params["phi"], float),
        "corr_z": corr_to_z(params["corr"]),
    }


def prior_parameters(
    design: pd.DataFrame,
    K: int,
    J: int,
    benchmarks: Sequence[str] | None = None,
    floors: Mapping[str, float] | None = None,
    priors: Mapping[str, float] | None = None,
    seed: int = 0,
    covariates: str | Sequence[str] | None = None,
    by_kind: bool = False,
) -> dict[str, np.ndarray]:
    """Parameters drawn from the model's prior (for simulation-based calibration).

    The draws come from :func:`bayes_lsl.build_model` itself, built on ``design`` with
    ``priors`` (defaults merged with overrides), so they follow whatever the model's
    priors are.

    Parameters
    ----------
    design : DataFrame
        Columns ``model``, ``family``, ``size``, ``tokens`` (e.g. :func:`random_design`).
    K, J : int
        Numbers of skills and benchmarks.
    benchmarks, floors
        As for :func:`simulate`.
    priors : dict, optional
        Overrides of the default priors, as for :func:`bayes_lsl.build_model`.
    seed : int
        Seed of the draw.
    covariates, by_kind
        The design, as for :func:`simulate`.

    Returns
    -------
    dict
        ``beta`` (p, K), ``lam`` (K, J), ``b`` (J), ``phi`` (J), ``corr`` (K, K): what
        :func:`simulate` takes.
    """
    data, _, _ = _template(design, J, benchmarks, floors, None, covariates, by_kind)
    model = build_model(data, K=K, priors=priors)
    names = ("beta", "lam", "b", "phi", "corr")
    out = dict(zip(names, pm.draw([model[n] for n in names], random_seed=np.random.default_rng(seed)), strict=True))
    return {k: np.asarray(v, float) for k, v in out.items()}
