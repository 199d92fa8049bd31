"""Fast approximations of the posterior: the joint mode (``map``) and variational ``advi``."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping

import numpy as np
import pymc as pm
import xarray as xr
from pymc.variational.updates import adagrad_window

from bayes_lsl.data import ScalingData
from bayes_lsl.fitting.draws import initial_values, log_likelihood_group, posterior_group
from bayes_lsl.fitting.result import FitResult


def fit_map(
    model: pm.Model,
    data: ScalingData,
    *,
    seed: int,
    progress: bool,
    init: Mapping[str, np.ndarray] | xr.DataTree | None = None,
    optimizer: str = "L-BFGS-B",
    maxiter: int = 20_000,
    log_likelihood: bool = True,
) -> FitResult:
    """Joint posterior mode of the parameters *and* the family effects, with the priors.

    This is not the paper's estimator (``method="mle"``): ``mle`` integrates the family
    effects ``alpha`` out and uses no priors, whereas ``map`` maximizes the joint density
    over parameters and ``alpha`` together. Jointly maximizing shrinks the family effects
    towards zero, which biases the variance-like parameters (the loadings ``lam`` are
    inflated to compensate) and the skill correlations ``corr``. Use it for a quick look
    or as a starting point, not for inference. The mode is that of the density as the model
    writes it: over ``lam_anchor`` and ``phi`` themselves (no Jacobian of their log
    transform), but over the unconstrained ``corr_z`` for the correlations (their
    Jacobian is part of the model's density).

    Parameters
    ----------
    model, data, seed, progress
        As passed by :func:`bayes_lsl.fit`. ``seed`` draws the jitter of the starting point.
    init : dict or DataTree, optional
        Starting values (see :func:`bayes_lsl.fitting.draws.initial_values`); they are not jittered.
    optimizer : str
        A ``scipy.optimize.minimize`` method with gradients.
    maxiter : int
        Maximum optimizer iterations.
    log_likelihood : bool
        Add the pointwise ``log_likelihood`` group (one draw).

    Returns
    -------
    groups, attrs
        ``posterior`` (one chain, one draw), ``log_likelihood``; attrs ``map_logp`` (the
        log density at the mode, on the constrained scale: no Jacobian), ``converged``,
        ``optimizer``, ``optimizer_message``, ``iterations``, ``grad_max`` (largest absolute
        gradient at the end) and ``wall_time_s``.
    """
    start = time.perf_counter()
    initvals = initial_values(model, init) if init is not None else None
    with warnings.catch_warnings():
        # find_MAP warns itself on non-convergence; we report it in attrs and warn below.
        warnings.simplefilter("ignore", UserWarning)
        result = pm.find_MAP(
            optimizer,
            model=model,
            initvals=initvals,
            jitter=initvals is None,  # the default start (zeros) is a saddle point of lam x alpha
            random_seed=seed,
            progressbar=progress,
            return_inferencedata=True,
            maxiter=maxiter,
        )
    res = result["optimizer_result"].to_dataset()
    draws = result["posterior"].to_dataset()
    groups = {"posterior": posterior_group(draws)}  # one chain, one draw
    if log_likelihood:
        groups["log_likelihood"] = log_likelihood_group(draws, model)
    converged = bool(res["success"].item())
    if not converged:
        warnings.warn(f"MAP optimizer did not converge: {res['message'].item()}", stacklevel=3)
    attrs = {
        "map_logp": float(-res["fun"].item()),
        "converged": converged,
        "optimizer": optimizer,
        "optimizer_message": str(res["message"].item()),
        "iterations": int(res["nit"].item()),
        "grad_max": float(np.abs(res["jac"].values).max()),
        "wall_time_s": time.perf_counter() - start,
    }
    return groups, attrs


def elbo_convergence(
    loss: np.ndarray, window: float = 0.1, tolerance: float = 2.0, min_change: float = 1.0
) -> tuple[float, bool]:
    """The final ELBO and whether it has stopped rising.

    The loss (-ELBO) is a noisy Monte Carlo estimate, so a trend is judged against its
    noise: the mean over the last ``window`` of the iterations is compared with the mean
    over the window before. It has converged when the ELBO rose by no more than
    ``tolerance`` standard errors of that difference, or by less than ``min_change`` nats
    (a change that matters for no estimate).

    Parameters
    ----------
    loss : ndarray
        The loss history (``approx.hist``).
    window : float
        Fraction of the iterations per window.
    tolerance : float
        Largest accepted rise, in standard errors.
    min_change : float
        Rises below this many nats are accepted whatever their standard error.

    Returns
    -------
    elbo_final : float
        Mean ELBO over the last window.
    converged : bool
    """
    loss = np.asarray(loss, float)
    w = max(int(len(loss) * window) // 10 * 10, 10)
    if len(loss) < 2 * w or not np.all(np.isfinite(loss[-2 * w :])):
        return float(-np.mean(loss[-w:])), False
    last, previous = loss[-w:], loss[-2 * w : -w]
    # Consecutive losses are correlated through the parameters, so the standard error
    # comes from the means of 10 batches per window, not from single iterations.
    batch_var = np.mean([np.var(x.reshape(10, -1).mean(axis=1), ddof=1) for x in (last, previous)])
    se = np.sqrt(2.0 * batch_var / 10.0)
    rise = previous.mean() - last.mean()
    return float(-last.mean()), bool(rise <= max(tolerance * se, min_change))


def fit_advi(
    model: pm.Model,
    data: ScalingData,
    *,
    seed: int,
    progress: bool,
    full_rank: bool = False,
    n: int = 60_000,
    draws: int = 1000,
    learning_rate: float = 0.01,
    init: Mapping[str, np.ndarray] | xr.DataTree | None = None,
    log_likelihood: bool = True,
) -> FitResult:
    """Variational approximation: mean-field ADVI (or full-rank with ``full_rank=True``).

    Mean-field ADVI ignores posterior correlations between parameters and, as is typical,
    underestimates the posterior spread: on the paper's data the spread of the skill
    correlations ``corr`` is 3-4 times narrower than under NUTS. Use ``nuts`` for
    uncertainty; ADVI gives a quick central estimate. The model keeps ADVI stable: the
    correlation transform's log-Jacobian is written to stay finite and the linear
    predictor is bounded (``bayes_lsl.model.ETA_BOUND``), so the Beta shapes never
    reach 0 or infinity.

    Parameters
    ----------
    model, data, seed, progress
        As passed by :func:`bayes_lsl.fit`.
    full_rank : bool
        Full-rank Gaussian instead of mean-field.
    n : int
        Optimization iterations (on the paper's data the ELBO is flat well before the
        default; ``benchmarks/README.md`` has the measured curve).
    draws : int
        Draws from the approximation returned as the ``posterior`` (one chain).
    learning_rate : float
        Step size of the (windowed adagrad) optimizer.
    init : dict or DataTree, optional
        Starting mean of the approximation (see :func:`bayes_lsl.fitting.draws.initial_values`).
    log_likelihood : bool
        Add the pointwise ``log_likelihood`` group over the draws.

    Returns
    -------
    groups, attrs
        ``posterior``, ``log_likelihood``; attrs ``elbo_final`` (mean over the last 10% of
        the iterations), ``elbo_converged`` (see :func:`elbo_convergence`; a warning is
        issued when false), ``iterations``, ``advi`` (``"meanfield"`` or ``"fullrank"``),
        ``learning_rate`` and ``wall_time_s``.
    """
    start_time = time.perf_counter()
    method = "fullrank_advi" if full_rank else "advi"
    start = initial_values(model, init) if init is not None else None
    approx = pm.fit(
        n=n,
        method=method,
        model=model,
        random_seed=seed,
        start=start,
        progressbar=progress,
        obj_optimizer=adagrad_window(learning_rate=learning_rate),
    )
    loss = np.asarray(approx.hist, float)
    if not np.all(np.isfinite(loss)):
        raise FloatingPointError(f"ADVI diverged: non-finite ELBO at iteration {int(np.argmax(~np.isfinite(loss)))}")
    elbo_final, converged = elbo_convergence(loss)
    if not converged:
        warnings.warn(
            f"ADVI did not converge in {n} iterations (the ELBO was still rising); increase n=",
            stacklevel=3,
        )
    sample = approx.sample(draws, random_seed=seed, return_inferencedata=True)
    draws_ds = sample["posterior"].to_dataset()
    groups = {"posterior": posterior_group(draws_ds)}
    if log_likelihood:
        groups["log_likelihood"] = log_likelihood_group(draws_ds, model)
    attrs = {
        "elbo_final": elbo_final,
        "elbo_converged": converged,
        "iterations": int(n),
        "advi": "fullrank" if full_rank else "meanfield",
        "learning_rate": float(learning_rate),
        "wall_time_s": time.perf_counter() - start_time,
    }
    return groups, attrs
