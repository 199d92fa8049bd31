"""bayes_lsl: latent-skill scaling laws for large language models (arXiv:2512.06553)."""

from bayes_lsl.data import DataError, ScalingData, load_leaderboard
from bayes_lsl.model import build_model

__version__ = "0.1.0"

__all__ = ["DataError", "ScalingData", "build_model", "load_leaderboard", "__version__"]
