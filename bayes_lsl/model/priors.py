"""The default priors of the latent-skill model and how user overrides merge into them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bayes_lsl.errors import BayesLslError

#: Weakly informative priors; every entry can be overridden through ``priors=``.
DEFAULT_PRIORS: dict[str, float] = {
    "beta_sigma": 2.0,  # slopes of skills on standardized covariates
    "lam_sigma": 2.0,  # loadings (half-normal on the anchors)
    "b_sigma": 3.0,  # benchmark intercepts, logit scale
    "log_phi_mu": float(np.log(50.0)),  # Beta precision: median 50 ...
    "log_phi_sigma": 1.5,  # ... within a factor ~20 either way
    "phi_slope_sigma": 0.5,  # dispersion="covariates": slopes of log phi
    "lkj_eta": 2.0,  # LKJ shape of the skill correlation
}



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
