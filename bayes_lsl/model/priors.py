"""The default priors of the latent-skill model and how user overrides merge into them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bayes_lsl.errors import BayesLslError

#: Weakly informative priors on the score scale; every entry can be overridden through
#: ``priors=``. With standardized covariates and unit-variance family effects, the linear
#: predictor of a benchmark loading on all K = 4 skills has prior sd about 2.7 (logit scale;
#: 2.4 pooled over the leaderboard's benchmarks), so that 7% of prior mean scores on the
#: leaderboard lie within 0.01 of a floor or the ceiling (the former 2 / 2 / 3 gave sd ~13
#: and 56%; see README, "Priors and prior predictive checks").
DEFAULT_PRIORS: dict[str, float] = {
    "beta_sigma": 0.7,  # slopes of skills on standardized covariates, in family-sd units
    "lam_sigma": 0.7,  # loadings (half-normal on the anchors), logit units per family sd
    "b_sigma": 1.5,  # benchmark intercepts, logit scale
    "log_phi_mu": float(np.log(50.0)),  # Beta precision: median 50 ...
    "log_phi_sigma": 1.5,  # ... within a factor ~20 either way
    "phi_slope_sigma": 0.5,  # dispersion="covariates": slopes of log phi
    "lkj_eta": 2.0,  # LKJ shape of the skill correlation
    "family_df": 4.0,  # family_effects="student-t": degrees of freedom of the family effects' t (fixed)
    # family_slopes: half-normal scale of the sd of a family's slope around the common one.
    # Slopes are in family-sd units per covariate sd, with beta ~ N(0, 0.7): 0.3 puts the
    # prior median sd at 0.2 (a family's slope within about +-0.4 of the common one), and
    # a family slope of half the size of a typical common slope still in the bulk.
    "slope_sd_sigma": 0.3,
    # scores="beta-mixture": Beta(1, 9) prior on the wide component's weight score_eps (mean
    # 0.1, 90% below 0.23), and that component's precision as a fixed share of phi_j.
    "score_eps_alpha": 1.0,
    "score_eps_beta": 9.0,
    "score_kappa": 0.1,
}

#: The defaults before issue 13 (fits saved then store every setting in their attrs, and
#: format-1 files only their overrides of these).
PRIORS_BEFORE_ISSUE_13: dict[str, float] = {
    **DEFAULT_PRIORS, "beta_sigma": 2.0, "lam_sigma": 2.0, "b_sigma": 3.0,
}  # fmt: skip



def merge_priors(priors: Mapping[str, float] | None = None) -> dict[str, float]:
    """:data:`DEFAULT_PRIORS` updated with ``priors``; unknown settings are an error.

    Parameters
    ----------
    priors : dict, optional
        Overrides, e.g. ``{"lam_sigma": 1.0}``.

    Returns
    -------
    dict
        Every setting, as floats (what a fit stores).
    """
    merged = dict(DEFAULT_PRIORS)
    unknown = set(priors or {}) - set(merged)
    if unknown:
        raise BayesLslError(f"unknown prior setting(s) {sorted(unknown)}; known: {sorted(merged)}")
    merged.update({k: float(v) for k, v in (priors or {}).items()})
    return merged
