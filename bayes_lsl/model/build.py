"""The PyMC model of the latent-skill scaling law, assembled from :mod:`bayes_lsl.model.likelihood`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_lsl.data import COVARIATES, ScalingData
from bayes_lsl.errors import BayesLslError, DataError
from bayes_lsl.model.likelihood import (
    beta_parameters,
    corr_cholesky,
    family_effects_df,
    family_slope_effect,
    lkj_corr_z,
    loadings,
    score_mixture_dist,
    score_mixture_kappa,
)
from bayes_lsl.model.parameterization import (
    FamilyLayout,
    parameterization,
    partially_centered_family_effects,
    record_parameterization,
    skill_scaled_coefficients,
)
from bayes_lsl.model.priors import merge_priors


def n_params(K: int, J: int, p: int = len(COVARIATES), dispersion: str = "benchmark", scores: str = "beta") -> int:
    """Number of free parameters, counted as in the paper (78 at K=4, J=12, p=3 covariates);
    ``scores="beta-mixture"`` adds its mixing weight ``score_eps``."""
    extra = (p * J if dispersion == "covariates" else 0) + (scores == "beta-mixture")
    return p * K + K + K * (J - K) + 2 * J + K * (K - 1) // 2 + extra




def check_K(data: ScalingData, K: int) -> int:
    """Validate the number of skills against the anchors and the data size."""
    if not isinstance(K, (int, np.integer)) or K < 1:
        raise DataError(f"K must be a positive integer, got {K!r}")
    if K > len(data.anchors):
        raise DataError(
            f"K={K} needs {K} anchor benchmarks, but only {len(data.anchors)} are available "
            f"({', '.join(data.anchors)})"
        )
    k_params = n_params(K, data.n_benchmarks, p=len(data.terms))
    if data.observed.sum() <= k_params:
        raise DataError(f"{int(data.observed.sum())} observed scores cannot identify {k_params} parameters (K={K})")
    return int(K)



#: Attribute of a model from :func:`build_model` holding ``(family_effects, df)``.
_FAMILY_EFFECTS_ATTRIBUTE = "bayes_lsl_family_effects"


def model_family_effects(model: pm.Model) -> tuple[str, float | None]:
    """``(family_effects, df)`` that :func:`build_model` recorded on ``model`` (``df`` None for ``"normal"``)."""
    value = getattr(model, _FAMILY_EFFECTS_ATTRIBUTE, None)
    if value is None:
        raise BayesLslError("the model was not built by bayes_lsl.build_model (or was copied): the distribution "
                            "of its family effects is unknown")  # fmt: skip
    return value


#: Attribute of a model from :func:`build_model` holding ``(scores, kappa)``.
_SCORES_ATTRIBUTE = "bayes_lsl_scores"


def model_scores(model: pm.Model) -> tuple[str, float | None]:
    """``(scores, kappa)`` that :func:`build_model` recorded on ``model`` (``kappa`` None for ``"beta"``)."""
    return getattr(model, _SCORES_ATTRIBUTE, ("beta", None))


def _student_t_family_effects(chol: pt.TensorVariable, K: int, df: float, mode: str) -> pt.TensorVariable:
    """Multivariate t family effects, scale matrix ``chol chol'``, ``df`` degrees of freedom.

    Non-centered as a scale mixture of normals: ``alpha_l = z_l L' / sqrt(w_l)``,
    ``z_l ~ N(0, I)`` (``alpha_z``), ``w_l ~ Gamma(df/2, rate df/2)`` (``alpha_w``), whose
    marginal is the t; centered, ``pm.MvStudentT`` directly.
    """
    if mode == "centered":
        return pm.MvStudentT("alpha", nu=df, mu=np.zeros(K), chol=chol, dims=("family", "skill"))
    alpha_z = pm.Normal("alpha_z", 0.0, 1.0, dims=("family", "skill"))
    alpha_w = pm.Gamma("alpha_w", alpha=df / 2, beta=df / 2, dims="family")
    return pm.Deterministic("alpha", (alpha_z @ chol.T) / pt.sqrt(alpha_w)[:, None], dims=("family", "skill"))
def slope_terms(terms: Sequence[str], family_slopes: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The validated terms with family slopes (``build_model(family_slopes=...)``), in the design's order.

    ``None`` (no family slopes) stays ``None``; a term not among ``terms`` (the design's,
    ``data.terms``) is an error naming it and the available ones.
    """
    if family_slopes is None:
        return None
    chosen = [family_slopes] if isinstance(family_slopes, str) else list(family_slopes)
    if not chosen or not all(isinstance(t, str) for t in chosen):
        raise BayesLslError(f"family_slopes must be a term name or a list of them, got {family_slopes!r}")
    unknown = [t for t in chosen if t not in terms]
    if unknown:
        raise BayesLslError(
            f"family_slopes: term(s) {unknown} are not in the fit's design; its terms are {list(terms)}"
        )
    return tuple(t for t in terms if t in chosen)


# --------------------------------------------------------------------- the model
def build_model(
    data: ScalingData,
    K: int = 4,
    priors: Mapping[str, float] | None = None,
    dispersion: str = "benchmark",
    centered: bool | str = False,
    *,
    covariates: str | Sequence[str] | None = None,
    by_kind: bool = False,
    family_effects: str = "normal",
    family_slopes: str | Sequence[str] | None = None,
    scores: str = "beta",
) -> pm.Model:
    """Build the PyMC model of the latent-skill scaling law.

    Parameters
    ----------
    data : ScalingData
        Validated scores; its first ``K`` benchmarks anchor the skills; its design
        (``data.terms``, the paper's covariates unless chosen) gives ``x``.
    K : int
        Number of latent skills.
    priors : dict, optional
        Overrides of :data:`DEFAULT_PRIORS`.
    dispersion : {"benchmark", "covariates"}
        ``"benchmark"``: one precision ``phi_j`` per benchmark (the paper's main model).
        ``"covariates"``: ``log phi_ij = a_j + x_i' s_j``, the authors' variant for
        prediction intervals.
    centered : bool or "partial"
        How the family effects are sampled (the model is the same for every choice; see
        :data:`PARAMETERIZATIONS`): ``False`` (the default), as ``L z`` with standard-normal
        ``z``; ``True``, directly; ``"partial"``, centered where a family has scores on the
        skill's anchor and non-centered given those where it has none, their mean over
        families absorbed into shifted intercepts, each skill measured in units of its
        anchor loading (see :func:`partially_centered_family_effects`): the
        parameterization that mixes best under NUTS. The marginal likelihood (``mle``)
        needs ``False`` or ``True``.
    covariates, by_kind
        The design, as for :meth:`bayes_lsl.ScalingData.with_covariates`: a covariate set
        (``"paper"``, ``"no-interaction"``, ``"compute"``) or a list of terms, and whether
        base and tuned models get their own intercepts and slopes. Default: the data's
        terms (the paper's [log N, log D, log N log D]).
    family_effects : {"normal", "student-t"}
        The family effects' distribution (:data:`~bayes_lsl.model.likelihood.FAMILY_EFFECTS`):
        ``"normal"``, ``alpha_l ~ N(0, corr)`` (the paper's model, the default);
        ``"student-t"``, a multivariate t with ``priors["family_df"]`` degrees of freedom
        (fixed, default 4), location 0 and scale matrix ``corr``, for
        heavier-tailed families. Non-centered it adds ``alpha_w`` (family), the scale
        mixture's weights; ``centered="partial"`` is built for the normal prior only.
    family_slopes : str or list of str, optional
        Random family slopes on these terms of the design (e.g. ``"log_size"``): each
        family's slope of each skill on a chosen term is the common ``beta`` plus
        ``u = slope_sd * z``, ``z ~ N(0, 1)`` (non-centered), ``slope_sd ~
        HalfNormal(slope_sd_sigma)`` per term and skill. Default ``None``: the paper's model.
    scores : {"beta", "beta-mixture"}
        The scores' likelihood (:data:`~bayes_lsl.model.likelihood.SCORE_LIKELIHOODS`):
        ``"beta"``, the paper's Beta (the default); ``"beta-mixture"``, heavier tails: a
        scale mixture of two Betas with the same mean, the second with ``kappa =
        priors["score_kappa"]`` (fixed, default 0.1) times the precision, weight
        ``score_eps ~ Beta(score_eps_alpha, score_eps_beta)`` (default Beta(1, 9)), one
        for all benchmarks.

    Returns
    -------
    pm.Model
        Coordinates ``model``, ``family``, ``benchmark``, ``skill``, ``covariate`` and
        ``cell`` (the observed scores, flattened). Variables ``beta`` (covariate, skill),
        ``lam`` (skill, benchmark), ``b`` (benchmark), ``phi`` (benchmark, or model x
        benchmark), ``corr`` (skill, skill), ``alpha`` (family, skill) and the observed
        ``y`` (cell). Missing scores are left out of the likelihood, not imputed. With
        ``family_slopes``, a coordinate ``slope_term`` and variables ``slope_sd``
        (slope_term, skill), ``slope_z`` and the deterministic ``family_slope`` (family,
        slope_term, skill). With ``scores="beta-mixture"``, the scalar ``score_eps``.
    """
    data = data.with_covariates(covariates, by_kind)
    chosen = slope_terms(data.terms, family_slopes)
    K = check_K(data, K)
    if dispersion not in ("benchmark", "covariates"):
        raise BayesLslError(f"dispersion must be 'benchmark' or 'covariates', got {dispersion!r}")
    mode = parameterization(centered)
    pr = merge_priors(priors)
    df = family_effects_df(family_effects, pr)
    kappa = score_mixture_kappa(scores, pr)
    if df is not None and mode == "partial":
        raise BayesLslError("centered='partial' is built for normal family effects: with "
                            "family_effects='student-t' use centered=False (or True)")  # fmt: skip
    skills = [f"skill_{k + 1}" for k in range(K)]
    rows, cols = np.nonzero(data.observed)
    coords = {
        "model": list(data.models),
        "family": list(data.families),
        "benchmark": list(data.benchmarks),
        "skill": skills,
        "anchor": list(data.benchmarks[:K]),
        "free_benchmark": list(data.benchmarks[K:]),
        "covariate": list(data.terms),
        "corr_entry": [f"{a},{b}" for i, a in enumerate(skills) for b in skills[:i]],
        "cell": [f"{data.models[r]}|{data.benchmarks[c]}" for r, c in zip(rows, cols, strict=True)],
        "skill_other": skills,
    }
    if chosen:
        coords["slope_term"] = list(chosen)
    with pm.Model(coords=coords) as model:
        x = pm.Data("x", data.x, dims=("model", "covariate"))
        family = pm.Data("family_index", data.family_index, dims="model")
        floor = pm.Data("floor", data.floors, dims="benchmark")
        cell_model = pm.Data("cell_model", rows, dims="cell")
        cell_benchmark = pm.Data("cell_benchmark", cols, dims="cell")

        lam_anchor = pm.HalfNormal("lam_anchor", pr["lam_sigma"], dims="anchor")
        if mode == "partial":
            beta, lam_free = skill_scaled_coefficients(lam_anchor, pr, J=data.n_benchmarks, p=len(data.terms))
        else:
            beta = pm.Normal("beta", 0.0, pr["beta_sigma"], dims=("covariate", "skill"))
            lam_free = pm.Normal("lam_free", 0.0, pr["lam_sigma"], dims=("skill", "free_benchmark"))
        lam = pm.Deterministic("lam", loadings(lam_anchor, lam_free), dims=("skill", "benchmark"))
        if mode != "partial":
            b = pm.Normal("b", 0.0, pr["b_sigma"], dims="benchmark")

        # Correlation matrix through its Cholesky factor: corr_z carries the LKJ prior and
        # the transform's Jacobian, and draws exactly (see lkj_corr_z).
        corr_z = lkj_corr_z("corr_z", K, pr["lkj_eta"], dims="corr_entry")
        chol, _ = corr_cholesky(corr_z, K)
        pm.Deterministic("corr", chol @ chol.T, dims=("skill", "skill_other"))

        if df is not None:
            alpha = _student_t_family_effects(chol, K, df, mode)
        elif mode == "partial":
            layout = FamilyLayout.from_data(data, K)
            alpha, b = partially_centered_family_effects(chol, lam, lam_anchor, beta, layout, pr["b_sigma"])
        elif mode == "centered":
            alpha = pm.MvNormal("alpha", mu=np.zeros(K), chol=chol, dims=("family", "skill"))
        else:
            alpha_z = pm.Normal("alpha_z", 0.0, 1.0, dims=("family", "skill"))
            alpha = pm.Deterministic("alpha", alpha_z @ chol.T, dims=("family", "skill"))

        if dispersion == "benchmark":
            phi = pm.LogNormal("phi", pr["log_phi_mu"], pr["log_phi_sigma"], dims="benchmark")
            phi_cell = phi[cell_benchmark]
        else:
            phi_a = pm.Normal("phi_a", pr["log_phi_mu"], pr["log_phi_sigma"], dims="benchmark")
            phi_s = pm.Normal("phi_s", 0.0, pr["phi_slope_sigma"], dims=("covariate", "benchmark"))
            phi = pm.Deterministic("phi", pt.exp(phi_a + x @ phi_s), dims=("model", "benchmark"))
            phi_cell = phi[cell_model, cell_benchmark]

        theta = alpha[family] + x @ beta
        if chosen:
            slope_sd = pm.HalfNormal("slope_sd", pr["slope_sd_sigma"], dims=("slope_term", "skill"))
            slope_z = pm.Normal("slope_z", 0.0, 1.0, dims=("family", "slope_term", "skill"))
            slope = pm.Deterministic("family_slope", slope_sd * slope_z, dims=("family", "slope_term", "skill"))
            x_terms = x[:, [data.terms.index(t) for t in chosen]]
            theta = theta + family_slope_effect(x_terms, slope[family])
        theta = pm.Deterministic("theta", theta, dims=("model", "skill"))
        eta = (theta[cell_model] * lam.T[cell_benchmark]).sum(axis=-1) + b[cell_benchmark]
        a_shape, b_shape = beta_parameters(eta, floor[cell_benchmark], phi_cell)
        if kappa is None:
            pm.Beta("y", alpha=a_shape, beta=b_shape, observed=data.scores[rows, cols], dims="cell")
        else:
            score_eps = pm.Beta("score_eps", pr["score_eps_alpha"], pr["score_eps_beta"])
            score_mixture_dist("y", a_shape, b_shape, score_eps, kappa, observed=data.scores[rows, cols], dims="cell")
    record_parameterization(model, mode)
    setattr(model, _FAMILY_EFFECTS_ATTRIBUTE, (family_effects, df))
    setattr(model, _SCORES_ATTRIBUTE, (scores, kappa))
    return model

