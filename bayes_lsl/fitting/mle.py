"""The paper's estimator: maximum marginal likelihood, family effects integrated out.

Strategy (the surface has many local optima, so random restarts alone are not enough):

1. *Starts.* An anchored factor-analysis start (each anchor benchmark's logit score is a
   proxy for its skill) plus random perturbations of it.
2. *Screening.* From each start, maximize the Laplace approximation (one adaptive node
   per family: about 80 times cheaper than 3^4 nodes at K=4).
3. *Refinement.* The best few Laplace optima are refined on the adaptive quadrature
   (:func:`default_nodes`): rounds of L-BFGS in which the nodes follow the parameters, the
   family modes re-found between rounds, until the log-likelihood changes by less than
   ``tol`` or stops improving.
4. *Check.* The log-likelihood at the optimum is computed by importance sampling; that
   value is reported, and its difference from the objective is the integration error.

The report says how many starts' Laplace screens came within ``agree_tol`` of the best
screen (``n_agree``) and how many refined starts agreed with the refined optimum
(``n_agree_refined``; with the default ``n_refine=1`` only the best screen is refined).
Screens are the cheap approximation, stopped early, so ``n_agree`` counts starts that
reached nearly the same Laplace optimum; it says nothing of the refined optimum, the
value reported.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pymc as pm
import scipy.optimize
import xarray as xr
from tqdm.auto import tqdm

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.marginal import (
    COMPILE_LOG,
    CUBATURE,
    MarginalLikelihood,
    compile_ahead,
    family_modes,
    fork_map,
)
from bayes_lsl.fitting.result import PARAMETERS, point_posterior, posterior_mean
from bayes_lsl.model import n_params
from bayes_lsl.model.likelihood import corr_to_z
from bayes_lsl.model.parameterization import model_parameterization

log = logging.getLogger(__name__)


#: What BIC's ``n`` can count: the marginal likelihood is a product over families (the
#: independent units once their effects are integrated out), so ``"families"`` is the
#: default; ``"models"`` counts the rows, ``"scores"`` every observed score (the largest n,
#: the heaviest penalty).
BIC_N: tuple[str, ...] = ("families", "models", "scores")


def bic_sample_size(data: ScalingData, bic_n: str = "families") -> int:
    """The ``n`` of BIC = -2 log L + k log n: the number of families, models or observed scores.

    Parameters
    ----------
    data : ScalingData
    bic_n : {"families", "models", "scores"}
        What n counts (see :data:`BIC_N`). On the paper data: 170 families, 286 models,
        2,304 scores.

    Returns
    -------
    int
    """
    sizes = {"families": len(data.families), "models": data.n_models, "scores": int(data.observed.sum())}
    if bic_n not in sizes:
        raise BayesLslError(f"bic_n must be one of {list(BIC_N)}, got {bic_n!r}")
    return sizes[bic_n]


def default_nodes(K: int) -> int | str:
    """The objective's rule: 3 Gauss-Hermite nodes per dimension up to K = 4, then the 2K-node cubature.

    The product rule's ``3**K`` nodes make each gradient call and the rounds slow from
    K = 5 (3^5 = 243 nodes per family; timings in ``benchmarks/README.md``). At K >= 5 the
    cubature's log-likelihood is biased upwards, as product rules with few nodes are biased
    downwards, but its optima are good: the reported value is importance sampling's at the
    optimum (``check_draws``).
    """
    return 3 if K <= 4 else CUBATURE


def anchored_start(data: ScalingData, K: int, parts: MarginalLikelihood) -> np.ndarray:
    """A deterministic start (flat theta) from an anchored factor analysis of logit-transformed scores.

    Anchor k's transformed score, standardized, stands in for skill k; regressing the
    other benchmarks on these proxies gives loadings, regressing the proxies on the
    covariates gives beta. The skills start uncorrelated, the precisions at 30.
    """
    above = (data.scores - data.floors) / (1 - data.floors)
    logit = np.log(np.clip(above, 0.02, 0.98) / (1 - np.clip(above, 0.02, 0.98)))
    means = np.nanmean(logit, axis=0)
    filled = np.where(np.isnan(logit), means, logit)
    sd = filled.std(axis=0) + 1e-9
    proxies = (filled[:, :K] - means[:K]) / sd[:K]  # (n, K) skill proxies
    x1 = np.column_stack([np.ones(data.n_models), data.x])
    coef, *_ = np.linalg.lstsq(x1, proxies, rcond=None)
    beta = coef[1:]
    load, *_ = np.linalg.lstsq(np.column_stack([np.ones(data.n_models), proxies]), filled, rcond=None)
    lam = load[1:]  # (K, J)
    values = {
        "beta": beta,
        "lam_anchor": np.clip(np.diag(lam[:, :K]), 0.1, None),
        "lam_free": lam[:, K:],
        "b": means,
        "corr_z": np.zeros(K * (K - 1) // 2),
        "phi": np.full(data.n_benchmarks, 30.0),
        "phi_a": np.full(data.n_benchmarks, np.log(30.0)),
        "phi_s": np.zeros((len(data.terms), data.n_benchmarks)),
    }
    return parts.from_free_values(values)


def warm_start(fit: xr.DataTree, data: ScalingData, K: int, parts: MarginalLikelihood, base: np.ndarray) -> np.ndarray:
    """A start (flat theta) from a fit with ``K0 <= K`` skills, e.g. the previous K's optimum in a sweep.

    The fit's values are kept for its ``K0`` skills (slopes, loadings on the benchmarks
    still free, correlations), its intercepts and precisions (and a score mixture's weight);
    skill ``K0 + 1 ...``, anchored on benchmark ``K0 + 1 ...`` (whose loadings on the earlier skills become structural
    zeros), starts from ``base`` (the anchored factor-analysis start), uncorrelated with
    the others.
    """


    prev = posterior_mean(fit, PARAMETERS)
    K0 = prev["lam"].shape[0]
    if K0 > K or list(fit.attrs.get("benchmarks", data.benchmarks)) != list(data.benchmarks):
        raise BayesLslError(f"a warm start needs a fit on the same benchmarks with at most K={K} skills (got K={K0})")
    covariates = [str(c) for c in fit["posterior"]["covariate"].values]
    if covariates != list(data.terms):
        raise BayesLslError(f"a warm start needs a fit with the same covariates {list(data.terms)}, got {covariates}")
    values = {name: np.array(v) for name, v in parts.free_values(np.array(base, float)).items()}
    values["beta"][:, :K0] = prev["beta"]
    values["lam_anchor"][:K0] = np.maximum(np.diag(prev["lam"][:, :K0]), 1e-3)
    values["lam_free"][:K0] = prev["lam"][:, K:]
    values["b"] = prev["b"]
    if "phi" in values and prev["phi"].ndim == 1:
        values["phi"] = prev["phi"]
    if "score_eps" in values and "score_eps" in fit["posterior"]:  # a score mixture's weight, kept too
        values["score_eps"] = np.clip(posterior_mean(fit, ["score_eps"])["score_eps"], 1e-4, 1 - 1e-4)
    z = np.zeros(K * (K - 1) // 2)
    z[: K0 * (K0 - 1) // 2] = corr_to_z(prev["corr"])  # the new rows of the Cholesky factor: independent
    values["corr_z"] = z
    return parts.from_free_values(values)


def _maximize(fun_and_grad, x0: np.ndarray, maxiter: int, gtol: float = 1e-6) -> scipy.optimize.OptimizeResult:
    first: list[float] = []

    def neg(v):
        try:
            val, grad = fun_and_grad(v)
        except np.linalg.LinAlgError:
            # A trial point far out along a line search can make the skill correlation
            # singular (a partial correlation rounding to +-1): outside the support, like
            # a point where the value is not finite.
            val = np.nan
        if not np.isfinite(val):
            # A large *finite* value makes L-BFGS-B's line search back off; infinity would
            # end the search where it stands, reported as converged.
            return 1e3 * (abs(first[0]) + 1.0) if first else 1e12, np.zeros_like(v)
        first[:] = first or [float(val)]
        return -val, -grad

    options = {"maxiter": maxiter, "gtol": gtol, "maxcor": 30}
    return scipy.optimize.minimize(neg, x0, jac=True, method="L-BFGS-B", options=options)


def refine(
    parts: MarginalLikelihood,
    theta: np.ndarray,
    n_nodes: int | str,
    tol: float = 1e-3,
    max_rounds: int = 15,
    maxiter: int = 2000,
    patience: int = 3,
) -> dict:
    """Maximize the quadrature log-likelihood from ``theta``, re-finding the family modes between rounds.

    Within a round the nodes follow theta through one Newton step from the modes
    found at the round's start; rounds stop when the log-likelihood changes by less
    than ``tol`` (``converged``), or when ``patience`` rounds in a row have not improved
    on the best by more than ``tol`` (``stalled``: the re-centered value oscillates, by
    up to about 0.5 with the cubature rule at K >= 6). The best round is returned.
    """
    objective = parts.objective(n_nodes)
    modes, _ = family_modes(parts, theta)
    value = objective(theta, modes)[0]
    best, since_best, converged = None, 0, False
    for rounds in range(1, max_rounds + 1):
        res = _maximize(lambda v, m=modes: objective(v, m), theta, maxiter)
        theta = res.x
        modes, scales = family_modes(parts, theta, start=modes)
        new_value, grad = objective(theta, modes)
        converged = abs(new_value - value) < tol
        log.debug("round %d: %d its, loglik %.3f (%.3f before re-centering)", rounds, res.nit, new_value, -res.fun)
        value = new_value
        if best is None or value > best["loglik"] + tol:
            since_best = 0
        else:
            since_best += 1
        # Converged: the last round (polished, within tol of the one before); stalled: the best.
        if converged or best is None or value > best["loglik"]:
            best = {"theta": theta, "loglik": float(value), "modes": modes, "scales": scales,
                    "grad_norm": float(np.linalg.norm(grad))}  # fmt: skip
        if converged or since_best >= patience:
            break
    return best | {"rounds": rounds, "converged": converged, "stalled": not converged and since_best >= patience}


def screens(parts: MarginalLikelihood, starts: list[np.ndarray], maxiter: int, n_jobs: int | None, on_done=None):
    """Each start's Laplace screen (:func:`refine` on the one-node rule), in ``n_jobs`` processes.

    The screens are deterministic and independent, so running them in parallel
    (:func:`bayes_lsl.fitting.marginal.fork_map`) gives the same numbers as one after the other.
    """
    return fork_map(lambda theta: refine(parts, theta, n_nodes=1, tol=1e-2, maxiter=maxiter), starts, n_jobs, on_done)


def fit_mle(
    model: pm.Model,
    data: ScalingData,
    *,
    seed: int = 0,
    progress: bool = True,
    n_starts: int = 4,
    n_refine: int = 1,
    n_nodes: int | str | None = None,
    check_draws: int = 20_000,
    check_nodes: int | None = None,
    perturbation: float = 0.3,
    tol: float = 1e-3,
    agree_tol: float = 0.5,
    start_from: xr.DataTree | None = None,
    hessian_nodes: int | str | None = None,
    screen_maxiter: int = 2000,
    refine_maxiter: int = 2000,
    bic_n: str = "families",
    n_jobs: int | None = None,
) -> tuple[dict[str, xr.Dataset], dict]:
    """Maximum marginal likelihood (the paper's estimator).

    Parameters
    ----------
    n_starts : int
        Starting points (the anchored factor-analysis start plus ``n_starts - 1`` random
        perturbations of it), each first maximized on the cheap Laplace approximation.
    n_refine : int
        Best Laplace optima refined on the adaptive quadrature (rule ``n_nodes``).
    n_nodes : int or "cubature", optional
        The refinement's rule: Gauss-Hermite nodes per skill dimension, or the 2K-node
        cubature (default :func:`default_nodes`).
    check_draws : int
        Importance-sampling draws per family for the log-likelihood reported at the
        optimum (:meth:`MarginalLikelihood.importance`, seeded by ``seed``):
        ``marginal_loglik``, with its Monte Carlo standard error ``marginal_loglik_mc_se``;
        its difference from the objective is ``integration_error``. 20,000 draws give a
        standard error of about 0.06 on the paper data, where the product rules that fit
        in memory err by 0.3 (5^4 nodes) to 2.7 (3^8).
    check_nodes : int, optional
        Evaluate a Gauss-Hermite product rule with this many nodes per dimension instead
        (deterministic; ``0`` skips the check and reports the objective).
    perturbation : float
        Standard deviation of the random perturbation of the unconstrained parameters.
    tol : float
        Convergence tolerance on the log-likelihood between rounds.
    agree_tol : float
        Starts whose Laplace screen is within this many log-likelihood units of the best
        screen count as agreeing (``n_agree``); refined starts, within this of the refined
        optimum (``n_agree_refined``).
    start_from : DataTree, optional
        A fit with at most ``K`` skills (e.g. the optimum at ``K - 1``, as
        :func:`bayes_lsl.select_k` passes) that gives one more start (see
        :func:`warm_start`), screened with the others.
    hessian_nodes : int, optional
        Nodes per dimension of the rule whose finite-difference Hessian gives the
        standard errors (default: ``n_nodes``; ``1``, the Laplace rule, is far cheaper at
        large K and is what :func:`bayes_lsl.select_k` uses).
    screen_maxiter : int
        L-BFGS iterations per round of each start's Laplace screen (rounds continue until
        the log-likelihood settles either way). Each round's optimum moves when the
        family modes are re-found after it, so polishing it is wasted: at K = 4 and 5, 150
        iterations per round reach the same Laplace optimum with about 40% fewer gradient
        calls than the default (what :func:`bayes_lsl.select_k` uses).
    refine_maxiter : int
        The same for each round of the refinement.
    bic_n : {"families", "models", "scores"}
        What BIC's n counts (:func:`bayes_lsl.selection.bic_sample_size`); stored in the
        attrs ``bic_n`` and ``bic_sample_size``. Families by default: the marginal
        likelihood factorizes over them. On the paper data the choice changes the K that
        BIC picks (see the README).
    n_jobs : int, optional
        Processes for the Laplace screens, the importance-sampling check and the Hessian's
        gradient columns (default :func:`bayes_lsl.fitting.marginal.default_jobs`: up to 2, one per
        core; ``BAYES_LSL_JOBS`` overrides). Each piece is deterministic, so the result
        does not depend on it.

    Returns
    -------
    groups, attrs
        ``posterior`` (one chain, one draw; ``alpha`` is the empirical-Bayes mode),
        ``mle`` (standard errors ``*_se``, the covariance of the unconstrained parameters,
        the empirical-Bayes covariance of each family's effect) and attrs
        ``marginal_loglik``, ``n_params``, ``aic``, ``bic`` (with ``bic_n`` and
        ``bic_sample_size``), ``grad_norm``,
        ``laplace_loglik`` (each start's Laplace screen, best first) and ``starts_loglik``
        (each refined start's optimum), ``n_agree`` (screens within ``agree_tol`` of the
        best screen, out of ``n_starts``), ``n_agree_refined`` (refined starts within
        ``agree_tol`` of the optimum, out of ``n_refined``), ``agree_tol``,
        ``converged`` or ``stalled`` (how the refinement's rounds ended, see :func:`refine`),
        ``timings_phases`` with ``timings_s`` (seconds per phase) and ``compile_functions``
        with ``compile_s`` (what this fit compiled, seconds each; empty where the process
        had compiled the same graphs before).
    """
    t0 = time.perf_counter()
    n_compiled = len(COMPILE_LOG)
    if model_parameterization(model) == "partial":
        raise BayesLslError(
            "method='mle' integrates the family effects out: use centered=False (or True), not 'partial'"
        )
    K = len(model.coords["skill"])
    n_bic = bic_sample_size(data, bic_n)  # checked before the optimization, not after
    n_nodes = n_nodes or default_nodes(K)
    n_screens = n_starts + (start_from is not None)
    # Every phase is named on the bar, so that no phase runs silent: compilation (minutes
    # with an empty PyTensor cache, seconds of graph rewriting with a warm one), each screen,
    # the refinement, the check, the standard errors.
    bar = tqdm(total=n_screens + n_refine + 3, desc=f"mle K={K}", disable=not progress, unit="step")
    bar.set_description(f"mle K={K}: compiling the model (once per data shape and K; minutes the first time)")
    parts = MarginalLikelihood(model, data, n_nodes)
    parts.n_jobs = n_jobs
    parts.objective(n_nodes)  # compiled here rather than inside the first screen
    rng = np.random.default_rng(seed)
    theta0 = anchored_start(data, K, parts)
    bar.update()

    timings = {"setup": time.perf_counter() - t0}
    tic = time.perf_counter()
    starts = [theta0 + (0.0 if s == 0 else perturbation) * rng.normal(size=theta0.shape) for s in range(n_starts)]
    if start_from is not None:
        starts.append(warm_start(start_from, data, K, parts, theta0))
    bar.set_description(f"mle K={K}: screening {len(starts)} start(s) on the Laplace rule")
    laplace = screens(parts, starts, screen_maxiter, n_jobs, on_done=lambda _: bar.update())
    laplace.sort(key=lambda r: -r["loglik"] if np.isfinite(r["loglik"]) else np.inf)
    timings["screen"], tic = time.perf_counter() - tic, time.perf_counter()
    use_importance = check_nodes is None and bool(check_draws)
    # The refinement runs on one core: the check's sampler compiles meanwhile on the other.
    compiled_ahead = compile_ahead(parts.importance_function, n_jobs) if use_importance else lambda: None
    refined = []
    for i, candidate in enumerate(laplace[:n_refine]):
        bar.set_description(f"mle K={K}: refining {i + 1}/{min(n_refine, len(laplace))} on the quadrature")
        refined.append(refine(parts, candidate["theta"], n_nodes=n_nodes, tol=tol, maxiter=refine_maxiter))
        bar.update()
    best = max(refined, key=lambda r: r["loglik"])
    n_agree = sum(abs(r["loglik"] - laplace[0]["loglik"]) < agree_tol for r in laplace)
    if not (best["converged"] or best["stalled"]):
        warnings.warn("the MLE did not converge within the allowed rounds", stacklevel=2)

    timings["refine"], tic = time.perf_counter() - tic, time.perf_counter()
    loglik, mc_se, check = best["loglik"], 0.0, "none"
    bar.set_description(f"mle K={K}: checking the log-likelihood")
    if check_nodes:
        loglik = float(parts.per_family(check_nodes)(best["theta"], best["modes"]).sum())
        check = f"{check_nodes}^K nodes"
    elif use_importance:
        compiled_ahead()
        per_family, se = parts.importance(best["theta"], best["modes"], n_draws=check_draws, seed=seed)
        loglik, mc_se, check = float(per_family.sum()), float(np.sqrt((se**2).sum())), f"{check_draws} draws"
    timings["check"], tic = time.perf_counter() - tic, time.perf_counter()
    bar.update()
    bar.set_description(f"mle K={K}: standard errors")
    groups = _mle_groups(model, data, parts, best, hessian_nodes or n_nodes)
    timings["standard_errors"] = time.perf_counter() - tic
    bar.update()
    bar.set_description(f"mle K={K}")
    bar.close()
    k = n_params(K, data.n_benchmarks, p=len(data.terms),
                 dispersion="covariates" if "phi_a" in parts.names else "benchmark",
                 scores="beta" if parts.kappa is None else "beta-mixture")
    n_obs = int(data.observed.sum())
    attrs = {
        "marginal_loglik": loglik,
        "marginal_loglik_objective": best["loglik"],
        "integration_error": best["loglik"] - loglik,
        "quadrature_nodes_per_dim": n_nodes,
        "marginal_loglik_mc_se": mc_se,
        "check": check,
        "n_params": k,
        "aic": -2 * loglik + 2 * k,
        "bic": -2 * loglik + k * np.log(n_bic),
        "bic_n": bic_n,
        "bic_sample_size": n_bic,
        "n_observations": n_obs,
        "grad_norm": best["grad_norm"],
        "laplace_loglik": [r["loglik"] for r in laplace],
        "starts_loglik": [r["loglik"] for r in refined],
        "n_starts": len(starts),
        "warm_start": start_from is not None,
        "hessian_nodes_per_dim": hessian_nodes or n_nodes,
        "n_refined": len(refined),
        "n_agree": int(n_agree),
        "n_agree_refined": int(sum(abs(r["loglik"] - best["loglik"]) < agree_tol for r in refined)),
        "agree_tol": agree_tol,
        "converged": bool(best["converged"]),
        "stalled": bool(best["stalled"]),
        "refine_rounds": int(best["rounds"]),
        "wall_time_s": time.perf_counter() - t0,
        "timings_s": [round(v, 2) for v in timings.values()],
        "timings_phases": list(timings),
        # What this fit compiled (nothing where an earlier fit of the process had the same graphs).
        "compile_functions": [name for name, _ in COMPILE_LOG[n_compiled:]],
        "compile_s": [round(s, 2) for _, s in COMPILE_LOG[n_compiled:]],
    }
    log.info("mle K=%d: loglik %.2f, %s, %.0f s", K, loglik, start_agreement(attrs), attrs["wall_time_s"])
    return groups, attrs


def start_agreement(attrs: dict) -> str:
    """What agreed with what among the starts of an ``mle`` fit, in words (for logs and the command line).

    Parameters
    ----------
    attrs : dict
        The attrs of an ``mle`` fit.

    Returns
    -------
    str
        E.g. ``"1/4 Laplace screens within 0.5 of the best screen; 1/1 refined starts at the optimum"``.
    """
    return (
        f"{attrs['n_agree']}/{attrs['n_starts']} Laplace screens within {attrs['agree_tol']:g} of the best screen; "
        f"{attrs['n_agree_refined']}/{attrs['n_refined']} refined starts at the optimum"
    )


#: Least variance given to a direction of the unconstrained parameters that the data do not
#: determine: the default priors' scale on slopes and loadings (sd 2, see
#: :data:`bayes_lsl.model.DEFAULT_PRIORS`).
FLAT_VARIANCE = 4.0


def information_covariance(
    info: np.ndarray, names: list[str] | None = None, rtol: float = 1e-9, flat_variance: float = FLAT_VARIANCE
) -> tuple[np.ndarray, float, list[str]]:
    """Covariance of the estimates (the inverse observed information), its smallest eigenvalue, and flat parameters.

    Parameters
    ----------
    info : ndarray (p, p)
        The observed information (minus the log-likelihood's Hessian) at the optimum.
    names : list of str, optional
        Names of the p parameters, for the list of flat ones.
    rtol : float
        Eigenvalues at or below ``rtol`` times the largest count as flat: a variance above
        1e9 times that of the best-determined direction is beyond what a finite-difference
        Hessian can tell from zero curvature.
    flat_variance : float
        The least variance given to each flat direction (more where the weakest determined
        direction has more: a flat direction is never narrower than that).

    Returns
    -------
    cov : ndarray (p, p)
    eigmin : float
    flat : list of str
        The parameters that carry the flat directions (each with at least 10% of a flat
        direction's squared norm); empty where the information is positive definite.

    Notes
    -----
    A direction without positive curvature (a flat ridge, a saddle) has an unknown,
    possibly infinite variance. Giving it none (a pseudo-inverse of the positive part)
    makes predictions and allocations over-confident; refusing leaves a fit that cannot
    predict at all (at K = 5 on the paper data a single correlation is flat). So such a
    direction gets ``flat_variance`` (the default priors' scale on the unconstrained
    scale) or, where larger, the variance of the weakest direction the data do determine:
    wide by construction, and never narrower than a direction with some curvature. The
    caller warns.
    """
    eig, vec = np.linalg.eigh(0.5 * (info + info.T))
    flat = eig <= max(eig.max(), 0.0) * rtol
    involved: list[str] = []
    if flat.any():
        names = names or [f"theta[{i}]" for i in range(len(eig))]
        weight = (vec[:, flat] ** 2).max(axis=1)
        involved = [names[i] for i in np.argsort(-weight) if weight[i] >= 0.1] or [names[int(weight.argmax())]]
    # Just above the threshold a direction keeps 1 / eig, which can exceed flat_variance:
    # the variance must not drop as the curvature crosses zero.
    precision = np.where(flat, min(1.0 / flat_variance, eig[~flat].min(initial=np.inf)), eig)
    cov = (vec / precision) @ vec.T
    return 0.5 * (cov + cov.T), float(eig.min()), involved


def _mle_groups(
    model: pm.Model, data: ScalingData, parts: MarginalLikelihood, best: dict, hessian_nodes: int | str
) -> dict[str, xr.Dataset]:
    """Point estimates, standard errors by the delta method, and empirical-Bayes family effects."""
    theta, modes, scales = best["theta"], best["modes"], best["scales"]
    natural = parts.natural(theta)
    x = data.x
    natural["alpha"] = modes
    natural["theta"] = modes[data.family_index] + x @ natural["beta"]
    posterior = point_posterior(natural, model)

    param = parts.labels
    H = parts.hessian(theta, modes, hessian_nodes)
    cov, eigmin, flat = information_covariance(-H, param)
    problem = ""
    if flat:
        problem = (
            f"the observed information has direction(s) without positive curvature at the optimum (smallest "
            f"eigenvalue {eigmin:.3g}), carried by {', '.join(flat)}: the data do not determine them. They are "
            f"given variance at least {FLAT_VARIANCE:g} on the unconstrained scale (the default priors' scale), so "
            "their standard errors, and predictions and allocations that depend on them, are wide by construction. "
            "Fit fewer skills (K), or method='nuts' for a posterior that the priors regularize."
        )
        if any(name.startswith("score_eps") for name in flat):
            # The usual cause is not too many skills: the mixture's weight ran to its boundary 0,
            # where its gradient on the logit scale vanishes (README, "Heavier-tailed scores").
            problem += (f" score_eps is {natural['score_eps']:.2g}: this optimum has no heavy tail. Start from another "
                        "mixture fit (start_from=...) and compare, or fit scores='beta'.")  # fmt: skip
        warnings.warn(problem, stacklevel=3)
    jac = parts.natural_jacobian(theta)
    nat_var = np.einsum("ij,jk,ik->i", jac, cov, jac)
    se, k = {}, 0
    for name in parts.natural(theta):  # beta, lam, b, phi, corr (and score_eps): natural_jacobian's order
        shape = natural[name].shape
        n = int(np.prod(shape))
        se[name] = np.sqrt(np.clip(nat_var[k : k + n], 0, None)).reshape(shape)
        k += n

    dims = {name: model.named_vars_to_dims.get(name, ()) for name in se}
    eb_cov = scales @ np.swapaxes(scales, 1, 2)
    mle = xr.Dataset(
        {f"{name}_se": (dims[name], se[name]) for name in se}
        | {
            "theta_hat": ("param", theta),
            "theta_cov": (("param", "param_other"), cov),
            "alpha_cov": (("family", "skill", "skill_other"), eb_cov),
            "information_eigmin": ((), eigmin),
        },
        coords={d: list(model.coords[d]) for ds in dims.values() for d in ds}
        | {"param": param, "param_other": param, "family": list(data.families)},
        attrs={"information_problem": problem},
    )
    return {"posterior": posterior, "mle": mle}
