"""bayes_lsl: latent-skill scaling laws for large language models (arXiv:2512.06553)."""

import warnings

from bayes_lsl._version import __version__
from bayes_lsl.allocation import allocate, model_budgets, paper_budgets
from bayes_lsl.compare import compare_families
from bayes_lsl.data import ScalingData, example_truth, load_example, load_leaderboard
from bayes_lsl.diagnostics import diagnose
from bayes_lsl.errors import BayesLslError, DataError
from bayes_lsl.fitting import PRESETS, FitInfo, fit
from bayes_lsl.holdout import cross_validate, evaluate_holdout
from bayes_lsl.io import load_fit, save_fit
from bayes_lsl.loo import loo
from bayes_lsl.model import build_model
from bayes_lsl.model_comparison import ModelComparison, compare_models
from bayes_lsl.modes import Modes, modes, sample_modes
from bayes_lsl.parameters import parameter_draws, parameter_intervals
from bayes_lsl.posterior_predictive import loo_pit, posterior_predictive, posterior_predictive_check
from bayes_lsl.predict import predict, predict_draws
from bayes_lsl.prior_predictive import model_trace, prior_predictive, prior_sensitivity, summarize_prior_predictive
from bayes_lsl.recalibration import Recalibration, recalibrate
from bayes_lsl.scores import crps, interval_score, log_predictive_density
from bayes_lsl.selection import select_k

# PyTensor warns on its first compilation that it found no BLAS to link. Its BLAS ops take
# under 0.5% of a fit's run time here (a few tiny products), and numpy's bundled OpenBLAS
# cannot be linked by it (64-bit integers, renamed symbols): see benchmarks/README.md.
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation", category=UserWarning)

__all__ = [
    "allocate",
    "BayesLslError",
    "DataError",
    "ScalingData",
    "build_model",
    "compare_families",
    "cross_validate",
    "crps",
    "diagnose",
    "evaluate_holdout",
    "example_truth",
    "fit",
    "FitInfo",
    "interval_score",
    "load_example",
    "load_fit",
    "load_leaderboard",
    "log_predictive_density",
    "loo",
    "loo_pit",
    "model_budgets",
    "Modes",
    "modes",
    "paper_budgets",
    "parameter_draws",
    "parameter_intervals",
    "posterior_predictive",
    "posterior_predictive_check",
    "PRESETS",
    "predict",
    "predict_draws",
    "sample_modes",
    "save_fit",
    "select_k",
    "__version__",
    # prior predictive checks (issue 13)
    "model_trace",
    "prior_predictive",
    "prior_sensitivity",
    "summarize_prior_predictive",
    # model comparison and recalibrated intervals (issue 14)
    "compare_models",
    "ModelComparison",
    "recalibrate",
    "Recalibration",
]
