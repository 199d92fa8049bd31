"""Full posterior by NUTS: nutpie (default), PyMC's own sampler, or numpyro."""

from __future__ import annotations

import dataclasses
import importlib.util
import threading
import time
import warnings
from collections.abc import Mapping

import numpy as np
import pymc as pm
import pytensor
import xarray as xr
from pymc.initial_point import make_initial_point_fn

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.draws import initial_values, log_likelihood_group, numeric_stats, posterior_group
from bayes_lsl.fitting.marginal import natural_map, nearest_positive_definite
from bayes_lsl.fitting.result import PARAMETERS, SAMPLE_DIMS, FitInfo, FitResult, posterior_mean
from bayes_lsl.model.build import build_model
from bayes_lsl.model.parameterization import FamilyLayout, model_parameterization, partially_centered_values

SAMPLERS = ("nutpie", "pymc", "numpyro")
#: nutpie's mass-matrix adaptations, the default first.
ADAPTATIONS = ("draw_diag", "diag", "low_rank")

#: Named starts of ``fit(..., method="nuts", init=...)``, the default first:
#:
#: - ``"mle-dispersed"``: fit the MLE, then start each chain at its own seeded draw from the
#:   MLE's asymptotic normal (parameters) and the families' empirical-Bayes normals (family
#:   effects): dispersed inside the main mode, so that R-hat can see poor mixing.
#: - ``"mle-point"``: every chain at the MLE itself, not jittered (the old ``init="mle"``).
#: - ``"default"``: PyMC's default point, jittered per chain (may land in a minor mode).
NAMED_INITS = ("mle-dispersed", "mle-point", "default")
#: Old spellings, still accepted with a DeprecationWarning.
DEPRECATED_INITS = {"mle": "mle-point"}
#: How chains start from a fit given as ``init``.
SPREADS = ("dispersed", "point")
#: The canonical partial correlations of a dispersed start are kept within tanh(3) = 0.995
#: of +-1: a start is a guess, and one at a singular correlation has no finite log density.
_Z_START_MAX = 3.0
#: Above this standard error of log(anchor loading) at the MLE, the default ``nuts`` samples
#: the family effects centered instead of ``"partial"``: a skill measured in units of an
#: anchor loading that the data barely pin down is a funnel for the sampler. In simulation-
#: based calibration (40 families of 3 models, K = 2; benchmarks/README.md), of 56 data sets
#: the 20 with a standard error above 0.25 gave "partial" divergences in 18 fits (up to 1,000),
#: the other 36 in 2 (4 at most); centered, 3 fits had any (2 at most). On 20 data sets not
#: used to set the threshold: 6 of 7 above it diverged under "partial", 0 of 13 below.
#: On the leaderboard (K = 4) the standard error is 0.08 to 0.14.
ANCHOR_LOG_SE_MAX = 0.25
#: With family slopes, a dispersed start puts their sd at this fraction of its prior scale
#: (times a seeded log-normal factor) and draws each chain's standardized slopes ``z`` from
#: their N(0, 1) prior: the slopes start near zero, near the MLE of the model without them
#: (which the MLE fitted), and the chains start apart in ``z``.
_SLOPE_SD_START = 0.1


def default_centering(init: xr.DataTree | Mapping | None) -> bool | str:
    """How the default ``nuts`` samples the family effects (normal prior): ``"partial"``, or
    ``True`` (centered) when the MLE it starts from has an anchor loading whose log has a
    standard error above :data:`ANCHOR_LOG_SE_MAX` (or none that is finite). The posterior
    is the same either way; only the sampler's coordinates differ."""
    if not (isinstance(init, xr.DataTree) and "mle" in init.children):
        return "partial"
    mle = init["mle"]
    anchors = [i for i, name in enumerate(mle["param"].values) if str(name).startswith("lam_anchor_log__")]
    var = np.diag(mle["theta_cov"].values)[anchors]
    se = np.sqrt(np.where(np.isfinite(var) & (var >= 0), var, np.inf))
    return True if np.max(se, initial=0.0) > ANCHOR_LOG_SE_MAX else "partial"


def named_init(init: str) -> str:
    """The canonical name of a named start (see :data:`NAMED_INITS`); warns on an old spelling."""
    if init in DEPRECATED_INITS:
        new = DEPRECATED_INITS[init]
        warnings.warn(
            f"init={init!r} is deprecated: it is now spelled init={new!r} (every chain at the MLE, not jittered); "
            f"the default, init={NAMED_INITS[0]!r}, starts each chain at its own draw around the MLE",
            DeprecationWarning,
            stacklevel=3,
        )
        return new
    if init not in NAMED_INITS:
        raise BayesLslError(f"init={init!r}: the named starts are {NAMED_INITS} (or pass a fit or a dict of values)")
    return init


def _run_nutpie(
    model, initvals, *, seed, progress, chains, tune, draws, target_accept, cores, adaptation, starts=None
) -> xr.DataTree:
    import nutpie

    if initvals:
        # nutpie rejected some exact starting points (an MLE of the leaderboard data) with
        # "bad initial gradient" although PyMC's logp and gradient are finite there; a
        # seeded nudge of 1e-6 is accepted and leaves the chains where they were put.
        rng = np.random.default_rng(seed)
        initvals = {k: v + 1e-6 * rng.standard_normal(np.shape(v)) for k, v in initvals.items()}
    # Numba's fastmath lets LLVM reassociate and fuse the log density's arithmetic, and
    # how it does depends on what it compiles together: the first process to compile a
    # model (an empty compile cache), a process that loads it from the cache and one with
    # the cache off rounded differently, and NUTS trajectories turn rounding into other
    # draws. Without fastmath the draws depend on the seed alone, on a given machine
    # (benchmarks/README.md, "Bit-reproducible NUTS"); the speed was the same there.
    with pytensor.config.change_flags(numba__fastmath=False):
        compiled = nutpie.compile_pymc_model(
            model,
            initial_points=initvals,
            # Given starting values (e.g. the MLE, in the major mode) are used as they are:
            # the default U(-1, 1) jitter could throw a chain out of that mode.
            jitter_rvs=set() if initvals else None,
        )
    if starts is not None:
        # nutpie asks for each chain's start with a seed of its own, derived from `seed`:
        # each chain gets its own seeded draw, the same on every run.
        compiled = dataclasses.replace(compiled, initial_point_func=starts.unconstrained)
    trace = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores or chains,
        seed=seed,
        progress_bar=progress,
        target_accept=target_accept,
        adaptation=adaptation,
        save_warmup=False,
    )
    stats = trace["sample_stats"].to_dataset().rename({"logp": "lp"})  # PyMC's name
    return xr.DataTree.from_dict({"posterior": trace["posterior"].to_dataset(), "sample_stats": stats})


def check_sampler(sampler: str) -> None:
    """Raise if ``sampler`` is unknown or its optional packages are missing: before any work
    (``fit`` checks it before the MLE that starts the chains)."""
    if sampler not in SAMPLERS:
        raise BayesLslError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    if sampler == "numpyro" and not all(importlib.util.find_spec(m) for m in ("jax", "numpyro")):
        raise ImportError(
            "sampler='numpyro' needs jax and numpyro: pip install 'bayes_lsl[numpyro]' (or pip install jax numpyro)"
        )


def _run_pymc(
    model, initvals, *, seed, progress, chains, tune, draws, target_accept, cores, nuts_sampler, starts=None
):
    if starts is not None:
        rng = np.random.default_rng(seed)
        initvals = [starts.draw(rng) for _ in range(chains)]
    check_sampler(nuts_sampler)
    kwargs = {}
    if nuts_sampler == "pymc":
        # Same rule as for nutpie: jitter only the default start.
        kwargs["init"] = "adapt_diag" if initvals else "jitter+adapt_diag"
    return pm.sample(
        draws,
        tune=tune,
        chains=chains,
        cores=cores or min(chains, 4),
        random_seed=seed,
        progressbar=progress,
        target_accept=target_accept,
        initvals=initvals or None,
        nuts_sampler=nuts_sampler,
        compute_convergence_checks=False,
        model=model,
        **kwargs,
    )


def _initial_values(
    model: pm.Model, data: ScalingData, init: Mapping[str, np.ndarray] | xr.DataTree
) -> dict[str, np.ndarray]:
    """:func:`~bayes_lsl.fitting.draws.initial_values`, plus the ``"partial"`` parameterization's variables.

    With ``centered="partial"``, ``alpha``, ``b``, ``beta`` and the free loadings are not
    free variables; given them (and ``lam``, ``corr``), e.g. from an MLE, they are
    converted to that parameterization's (see :func:`bayes_lsl.model.parameterization.partially_centered_values`).
    """
    if model_parameterization(model) != "partial":
        return initial_values(model, init)
    free = {rv.name for rv in model.free_RVs}
    if isinstance(init, xr.DataTree):
        values = posterior_mean(init)
    else:
        values = {k: np.asarray(v, float) for k, v in init.items()}
    # What draws.initial_values converts itself: free variables and corr.
    out = initial_values(model, {k: v for k, v in values.items() if k in free or k == "corr"})
    if {"alpha", "b", "beta", "lam", "corr"} <= values.keys():
        layout = FamilyLayout.from_data(data, len(model.coords["skill"]))
        out.update({k: v for k, v in partially_centered_values(values, layout).items() if k in free})
    return out


class DispersedStarts:
    """Starting values drawn around an ``mle`` fit: one seeded draw per chain.

    The structural parameters are drawn from the MLE's asymptotic normal on the
    unconstrained scale (its ``theta_hat`` and ``theta_cov``: the observed information's
    inverse), each family's effect from its empirical-Bayes normal (``alpha_cov``) around
    its mode. The draws are as spread as the posterior of the main mode, so chains start
    apart, inside that mode: R-hat compares chains that had to travel, and the minor
    modes stay out of reach. With family slopes (the MLE is that of the model without
    them), each chain's ``slope_z`` is drawn from its N(0, 1) prior and ``slope_sd`` starts
    small (:data:`_SLOPE_SD_START`).

    Parameters
    ----------
    model : pm.Model
        The model to sample (any parameterization).
    data : ScalingData
        Its data.
    mle_fit : xarray.DataTree
        An ``mle`` fit of ``data`` with the same ``K`` (it has an ``mle`` group).
    """

    def __init__(self, model: pm.Model, data: ScalingData, mle_fit: xr.DataTree) -> None:
        mle = mle_fit["mle"].to_dataset()
        cov = mle["theta_cov"].values
        if not np.isfinite(cov).all():
            raise BayesLslError(
                "init: the mle fit's covariance of the parameters is not finite, so no dispersed starts can be drawn "
                "from it; pass init='mle-point' or refit the MLE with more starts (n_starts)"
            )
        info = FitInfo.from_tree(mle_fit)
        K = len(model.coords["skill"])
        if info.K != K:
            raise BayesLslError(f"init: the mle fit has K={info.K}, the model K={K}")
        if tuple(info.covariates) != tuple(data.terms):
            raise BayesLslError(
                f"init: the mle fit has covariates {list(info.covariates)}, the model {list(data.terms)}"
            )
        self.labels = [str(p) for p in mle["param"].values]
        self.theta_hat = mle["theta_hat"].values
        self.cov = nearest_positive_definite(cov, floor=0.0)
        self.corr_z = np.array([label.startswith("corr_z") for label in self.labels])
        # The map from theta to the parameters is that of the non-centered model the MLE
        # was fitted on (its theta layout), whatever the parameterization sampled.
        plain = build_model(data, K, centered=False, **info.build_options)
        self.names = tuple(info.parameters)
        labels, self.natural = natural_map(plain, self.names)
        if list(labels) != self.labels:
            raise BayesLslError("init: the mle fit's parameter layout does not match the model: a fit of other data?")
        post = mle_fit["posterior"].to_dataset()
        self.alpha = post["alpha"].isel(chain=0, draw=0).transpose("family", "skill").values
        self.alpha_chol = np.linalg.cholesky(nearest_positive_definite(mle["alpha_cov"].values, floor=1e-12))
        self.model, self.data = model, data
        self.slope_sd_sigma = float(info.priors.get("slope_sd_sigma", 0.3))
        self._lock = threading.Lock()  # nutpie asks from one thread per chain

    def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One start: values of the model's free variables (constrained scale, PyMC's ``initvals``)."""
        theta = rng.multivariate_normal(self.theta_hat, self.cov, method="eigh")
        theta[self.corr_z] = np.clip(theta[self.corr_z], -_Z_START_MAX, _Z_START_MAX)
        values = dict(zip(self.names, self.natural(theta), strict=True))
        noise = rng.standard_normal(self.alpha.shape)
        values["alpha"] = self.alpha + np.einsum("fij,fj->fi", self.alpha_chol, noise)
        if "slope_z" in self.model.named_vars:
            shape = tuple(len(self.model.coords[d]) for d in ("family", "slope_term", "skill"))
            values["slope_z"] = rng.standard_normal(shape)
            sd = _SLOPE_SD_START * self.slope_sd_sigma * np.exp(0.3 * rng.standard_normal(shape[1:]))
            values["slope_sd"] = sd
        return _initial_values(self.model, self.data, values)

    def unconstrained(self, seed) -> np.ndarray:
        """One start as nutpie's flat vector on the unconstrained scale, drawn with ``seed``."""
        with self._lock:
            values = self.draw(np.random.default_rng(seed))
            point = make_initial_point_fn(
                model=self.model, overrides=values, jitter_rvs=set(), return_transformed=True
            )(0)
            return np.concatenate(
                [np.asarray(point[self.model.rvs_to_values[rv].name], float).ravel() for rv in self.model.free_RVs]
            )


def minor_mode_chains(lp: xr.DataArray, gap: float = 10.0) -> tuple[list[int], list[float]]:
    """Chains whose mean ``lp`` (log density or log-likelihood per draw) is more than ``gap`` below the best chain's.

    A chain stuck in a minor mode of the posterior looks converged on its own, but its
    log density sits well below the other chains' (on the paper's data, 35-40 lower in
    the mode where the math and bbh skills trade loadings on mmlu). :func:`fit_nuts`
    passes the log-likelihood of all scores, which does not depend on the
    parameterization.

    Returns
    -------
    chains : list of int
        Indices of the chains in a minor mode.
    means : list of float
        Mean ``lp`` of every chain.
    """
    means = lp.mean("draw").values
    best = np.nanmax(means)
    return [int(c) for c in np.flatnonzero(means < best - gap)], [float(m) for m in means]


def structural_constants(da: xr.DataArray) -> xr.DataArray:
    """Entries of a posterior variable that convergence checks leave out (True), e.g. for R-hat.

    Entries that never move (the anchor block's zeros in ``lam``, the diagonal of ``corr``)
    have an undefined R-hat (0/0) and are structural, not a failure; a tolerance, as the
    diagonal of ``L L'`` is 1 only up to rounding. The upper triangle of ``corr`` repeats
    the lower one.
    """
    spread = da.max(SAMPLE_DIMS) - da.min(SAMPLE_DIMS)
    out = spread <= 1e-9 * (1.0 + abs(da).max(SAMPLE_DIMS))
    if da.name == "corr" and out.ndim == 2:
        out = out | xr.DataArray(np.triu(np.ones(out.shape, bool)), dims=out.dims, coords=out.coords)
    return out


def convergence_summary(posterior: xr.Dataset, var_names=PARAMETERS) -> dict[str, float]:
    """Max rank-normalized R-hat and min bulk and tail ESS over the moving entries of ``var_names``."""
    import arviz_stats as azs  # imported here: it doubles the import time of the package

    ds = posterior[[v for v in var_names if v in posterior]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 on the constant entries
        stats = {
            "max_r_hat": (azs.rhat(ds, method="rank"), np.nanmax),
            "min_ess_bulk": (azs.ess(ds, method="bulk"), np.nanmin),
            "min_ess_tail": (azs.ess(ds, method="tail"), np.nanmin),
        }
    out = {}
    for key, (values, worst) in stats.items():
        moving = [values[v].where(~structural_constants(ds[v])).values.ravel() for v in ds.data_vars]
        out[key] = float(worst(np.concatenate(moving)))
    return out


def _warn_if_unconverged(summary: dict, n_div: int, *, chains: int, draws: int, init_name: str,
                         rhat_max: float = 1.01, ess_min: float = 400) -> list[str]:
    """Say loudly when the run fails the convergence targets, and what to do."""
    problems = []
    if not summary["max_r_hat"] <= rhat_max:
        problems.append(f"max R-hat {summary['max_r_hat']:.3f} > {rhat_max}")
    if not summary["min_ess_bulk"] >= ess_min:
        problems.append(f"min bulk ESS {summary['min_ess_bulk']:.0f} < {ess_min:g}")
    if not summary["min_ess_tail"] >= ess_min:
        problems.append(f"min tail ESS {summary['min_ess_tail']:.0f} < {ess_min:g}")
    if n_div:
        problems.append(f"{n_div} divergent transition(s)")
    if problems:
        advice = [f"draw more (draws={2 * draws})"]
        if n_div:
            advice.append("raise target_accept (e.g. 0.95)")
        if init_name != "mle-dispersed":
            advice.append("start from init='mle-dispersed' (the default)")
        warnings.warn(
            f"NUTS did not converge ({chains} chains x {draws} draws; over {', '.join(PARAMETERS)}): "
            + "; ".join(problems) + ". Do not trust these draws yet: " + ", or ".join(advice)
            + ", and see bayes_lsl.diagnose(fit) for the entries that fail.",
            UserWarning,
            stacklevel=4,
        )
    return problems


def fit_nuts(
    model: pm.Model,
    data: ScalingData,
    *,
    seed: int,
    progress: bool,
    sampler: str = "nutpie",
    chains: int = 4,
    tune: int = 1000,
    draws: int = 5000,
    target_accept: float = 0.8,
    init: Mapping[str, np.ndarray] | xr.DataTree | None = None,
    init_spread: str = "dispersed",
    cores: int | None = None,
    lp_gap: float = 10.0,
    adaptation: str | None = None,
) -> FitResult:
    """Sample the posterior with NUTS.

    Parameters
    ----------
    model, data, seed, progress
        As passed by :func:`bayes_lsl.fit`.
    sampler : {"nutpie", "pymc", "numpyro"}
        ``numpyro`` needs the optional ``jax`` and ``numpyro`` packages.
    chains, tune, draws : int
        Number of chains, tuning steps and kept draws per chain. 5000 draws by default: on
        the leaderboard's paper variant the slowest direction (BBH's anchor loading and
        intercept, the skills trading their loadings on MMLU, MMLU-Pro and BBH) gave a
        minimum bulk ESS of 0.04 to 0.07 per draw, and with 3000 draws the max R-hat of one
        seed in three was 1.012 (``benchmarks/README.md``).
    target_accept : float
        Target acceptance rate of the step-size adaptation.
    init : dict or DataTree, optional
        Where the chains start. An ``mle`` fit: each chain at its own seeded draw around
        the MLE (``init_spread="dispersed"``, see :class:`DispersedStarts`) or every chain at
        the MLE (``"point"``). Any other fit (its posterior mean) or a dict of values (see
        :func:`bayes_lsl.fitting.draws.initial_values`): every chain there, not jittered.
        ``None``: PyMC's default point, jittered per chain. :func:`bayes_lsl.fit` takes
        the names of :data:`NAMED_INITS` too, and by default (``"mle-dispersed"``) fits
        the MLE first and starts dispersed around it.
    init_spread : {"dispersed", "point"}
        How chains start from an ``mle`` fit given as ``init``.
    cores : int, optional
        Chains run in parallel; default one core per chain (at most 4 for PyMC).
    adaptation : {"draw_diag", "diag", "low_rank"}, optional
        nutpie's mass-matrix adaptation. The default, ``"draw_diag"``, estimates a
        diagonal from the draws' variances, as Stan and PyMC do; nutpie's own ``"diag"``
        mixes in the gradients' variances, and ``"low_rank"`` also learns the strongest
        posterior correlations at several times the cost per draw. On the leaderboard
        ``"draw_diag"`` gave the largest minimum bulk ESS (``benchmarks/README.md`` has
        the figures). PyMC's and numpyro's samplers adapt a diagonal.
    lp_gap : float
        A chain whose mean log-likelihood (of all scores) is more than this below the
        best chain's is reported as stuck in a minor mode.

    Returns
    -------
    groups, attrs
        ``posterior``, ``sample_stats`` (``diverging``, ``lp``, ``energy`` ...) and
        ``log_likelihood`` of ``y`` (dims ``chain, draw, cell``). Attrs ``sampler``,
        ``chains``, ``tune``, ``draws``, ``target_accept``, ``wall_time_s`` (compilation
        included), ``n_divergences``, ``chain_mean_lp`` (the sampler's log density),
        ``chain_mean_loglik``, ``minor_mode_chains`` (a warning is issued when it is not
        empty), ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail`` (over the parameters
        :data:`~bayes_lsl.fitting.result.PARAMETERS`), ``convergence_problems`` (empty, or what failed of R-hat <= 1.01,
        ESS >= 400 or no divergence; a warning says what to do when it is not empty) and
        ``init`` (``"mle-dispersed"``, ``"mle-point"``, ``"default"``,
        ``"values"``, or ``"<method>-point"`` for another fit started from).
    """
    check_sampler(sampler)
    if init_spread not in SPREADS:
        raise BayesLslError(f"unknown init_spread {init_spread!r}; choose one of {SPREADS}")
    start = time.perf_counter()
    starts, initvals, init_name = None, None, "default"
    if isinstance(init, xr.DataTree):
        method = init.attrs.get("method", "values")
        if method == "mle" and "mle" in init.children and init_spread == "dispersed":
            starts, init_name = DispersedStarts(model, data, init), "mle-dispersed"
        else:
            initvals, init_name = _initial_values(model, data, init), f"{method}-point"
    elif init is not None:
        initvals, init_name = _initial_values(model, data, init), "values"
    settings = dict(
        seed=seed, progress=progress, chains=chains, tune=tune, draws=draws, target_accept=target_accept, cores=cores,
        starts=starts,
    )
    if sampler == "nutpie":
        adaptation = adaptation or ADAPTATIONS[0]
        if adaptation not in ADAPTATIONS:
            raise BayesLslError(f"unknown adaptation {adaptation!r}; choose one of {ADAPTATIONS}")
        trace = _run_nutpie(model, initvals, adaptation=adaptation, **settings)
    elif adaptation not in (None, "diag"):
        raise BayesLslError(f"adaptation={adaptation!r} is nutpie's; sampler={sampler!r} adapts a diagonal mass matrix")
    else:
        adaptation = "diag"
        trace = _run_pymc(model, initvals, nuts_sampler=sampler, **settings)
    draws_ds = trace["posterior"].to_dataset()
    stats = numeric_stats(trace["sample_stats"].to_dataset())
    groups = {
        "posterior": posterior_group(draws_ds),
        "sample_stats": stats,
        "log_likelihood": log_likelihood_group(draws_ds, model),
    }
    n_div = int(stats["diverging"].sum()) if "diverging" in stats else 0
    chain_lp = [float(m) for m in stats["lp"].mean("draw").values] if "lp" in stats else []
    # Judged on the log-likelihood, which (unlike the sampler's log density, which holds
    # the Jacobians of the parameterization) means the same in every parameterization.
    loglik = groups["log_likelihood"]["y"].sum("cell")
    stuck, chain_ll = minor_mode_chains(loglik, lp_gap)
    if stuck:
        warnings.warn(
            f"chain(s) {stuck} sit in a minor mode: mean log-likelihood more than {lp_gap} below the best chain's "
            f"(chain means {np.round(chain_ll, 1).tolist()}). Drop them, or start from the MLE (init='mle-dispersed', "
            "the default), or weigh the modes with bayes_lsl.modes.",
            stacklevel=3,
        )
    convergence = convergence_summary(groups["posterior"], (*PARAMETERS, "slope_sd"))  # slope_sd: family slopes
    problems = _warn_if_unconverged(convergence, n_div, chains=chains, draws=draws, init_name=init_name)
    attrs = {
        **convergence,
        "convergence_problems": "; ".join(problems),  # a string: file attributes hold no list of strings
        "sampler": sampler,
        "chains": int(chains),
        "tune": int(tune),
        "draws": int(draws),
        "target_accept": float(target_accept),
        "adaptation": adaptation,
        "wall_time_s": time.perf_counter() - start,
        "n_divergences": n_div,
        "chain_mean_lp": chain_lp,
        "chain_mean_loglik": chain_ll,
        "minor_mode_chains": stuck,
        "init": init_name,
    }
    return groups, attrs
