"""The latent-skill model: its likelihood (:mod:`.likelihood`), priors (:mod:`.priors`),
the samplers' parameterizations of the family effects (:mod:`.parameterization`) and the
PyMC model built from them (:mod:`.build`)."""

from bayes_lsl.model.build import build_model, check_K, model_family_effects, model_scores, n_params
from bayes_lsl.model.priors import DEFAULT_PRIORS, merge_priors

__all__ = ["DEFAULT_PRIORS", "build_model", "check_K", "merge_priors", "model_family_effects", "model_scores",
           "n_params"]
