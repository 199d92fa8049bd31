"""bayes_lsl: latent-skill scaling laws for large language models (arXiv:2512.06553)."""

from bayes_lsl.data import DataError, ScalingData, example_truth, load_example, load_leaderboard
from bayes_lsl.diagnostics import diagnose
from bayes_lsl.inference import fit
from bayes_lsl.io import load_fit, save_fit
from bayes_lsl.model import build_model
from bayes_lsl.selection import select_k

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "ScalingData",
    "build_model",
    "diagnose",
    "example_truth",
    "fit",
    "load_example",
    "load_fit",
    "load_leaderboard",
    "save_fit",
    "select_k",
    "__version__",
]
