"""Simulation-based calibration (SBC) of the fitting methods.

Talts et al. (2018), "Validating Bayesian inference algorithms with simulation-based
calibration"; Modrak et al. (2023), "Simulation-based calibration checking for Bayesian
computation". Replication ``r``: parameters drawn from the model's prior
(:func:`bayes_lsl.simulate.prior_parameters`, so the check follows whatever the default
priors are), a small data set simulated from them (:func:`bayes_lsl.simulate.simulate`),
the data fitted, and for every scalar parameter the *rank* of the true value among the
fit's draws recorded. If the method computes the posterior correctly, every parameter's
ranks are uniform over ``0 .. n_draws``.

The parameters are those the sampler sees, on the unconstrained scale: ``beta``, the log
anchor loadings, the free loadings, ``b``, ``log phi`` and the canonical partial
correlations ``corr_z`` (with ``K = 2``, ``corr_z[0] = atanh(corr[1, 0])``). A rank does
not change under a monotone map, so these are the ranks of ``lam``, ``phi`` and ``corr``
themselves. The anchor loadings are non-negative in the prior and in every fit, which
fixes the sign and label of each skill as the model does.

Methods (:data:`SBC_METHODS`): ``nuts`` (the default parameterization of
``fit(method="nuts")``), ``nuts-centered`` (``centered=True``), both with draws thinned
to ``n_draws``; and ``mle``, whose "posterior" is the Wald normal of the unconstrained
estimate (``mle.theta_hat``, ``mle.theta_cov``): the rank of the truth among ``n_draws``
draws of it is replaced by its expectation, ``floor((n_draws + 1) * Phi((truth - hat) / se))``,
uniform exactly when the Wald intervals have their nominal coverage under the prior.

Replication ``r``'s seeds come from ``numpy.random.SeedSequence([seed, r])``, so a
replication's result depends only on ``(seed, r)``: not on the number of workers, on the
order in which they finish, or on which other replications run.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import scipy.stats
import xarray as xr

from bayes_lsl.data import COVARIATES, PAPER_ANCHORS, ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting import fit
from bayes_lsl.model.parameterization import free_variables
from bayes_lsl.parallel import run_tasks
from bayes_lsl.simulate import prior_parameters, random_design, simulate

#: The methods checked, with the options of :func:`bayes_lsl.fit` each one adds.
SBC_METHODS: dict[str, dict] = {
    # The importance-sampling check of the log-likelihood is left out: it changes no estimate.
    "mle": {"method": "mle", "check_draws": 0},
    "nuts": {"method": "nuts"},
    "nuts-centered": {"method": "nuts", "centered": True},
}
#: The ``error`` of a replication not fitted because its data had clipped scores.
SKIPPED = "skipped: clipped scores (skip_clipped)"
#: Columns of a rank table that are not parameters.
INFO_COLUMNS: tuple[str, ...] = (
    "method", "rep", "seed", "n_draws", "wall_s", "n_divergences", "clipped_share", "error",
)  # fmt: skip


@dataclass(frozen=True)
class SbcDesign:
    """What each replication simulates and how it fits.

    Attributes
    ----------
    K, n_benchmarks : int
        Skills and benchmarks (the paper's first ``n_benchmarks``, anchors first).
    n_families, models_per_family : int
        The simulated design (:func:`bayes_lsl.simulate.random_design`, new per replication).
    n_draws : int
        Draws each rank is taken among (NUTS draws are thinned to this many); ranks run
        ``0 .. n_draws``.
    chains, tune, draws : int
        NUTS settings (draws per chain, before thinning).
    priors : dict
        Prior overrides for the simulation *and* the fit (empty: the defaults).
    eps : float, optional
        Simulated scores are clipped into ``[eps, 1 - eps]`` (default: ``ScalingData``'s,
        as for real data); the share clipped is recorded per replication.
    skip_clipped : bool
        Fit only the data sets with no clipped score; the others are recorded without ranks
        (``error`` starts with ``"skipped"``). Conditioning on the data keeps every rank
        uniform, and these data sets are exactly the model's, so the check then tests the
        method alone (with clipping, a method can fail because the data are not the model's:
        see ``benchmarks/README.md``). A small ``eps`` skips fewer.
    fit_options : dict
        Further options of :func:`bayes_lsl.fit` for every method.
    """

    K: int = 2
    n_benchmarks: int = 4
    n_families: int = 40
    models_per_family: int = 3
    n_draws: int = 99
    chains: int = 2
    tune: int = 500
    draws: int = 500
    priors: Mapping[str, float] = field(default_factory=dict)
    eps: float | None = None
    skip_clipped: bool = False
    fit_options: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("K", "n_benchmarks", "n_families", "models_per_family", "n_draws", "chains", "tune", "draws"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise BayesLslError(f"{name} must be a positive integer, got {value!r}")
        if self.n_benchmarks <= self.K or self.n_benchmarks > len(PAPER_ANCHORS):
            raise BayesLslError(f"n_benchmarks must be in ({self.K}, {len(PAPER_ANCHORS)}], got {self.n_benchmarks}")
        if self.chains * self.draws < self.n_draws:
            raise BayesLslError(f"n_draws={self.n_draws} exceeds the chains x draws ({self.chains * self.draws})")

    @property
    def benchmarks(self) -> list[str]:
        return list(PAPER_ANCHORS[: self.n_benchmarks])


def replication_seeds(seed: int, rep: int) -> dict[str, int]:
    """Seeds of replication ``rep``'s steps (design, prior, data, fit), from ``(seed, rep)`` alone."""
    states = np.random.SeedSequence([int(seed), int(rep)]).generate_state(4)
    return dict(zip(("design", "prior", "data", "fit"), (int(s) for s in states), strict=True))


def parameter_names(design: SbcDesign) -> list[str]:
    """The checked parameters, in the order of :func:`unconstrained`."""
    K, bench = design.K, design.benchmarks
    skills = [f"skill_{k + 1}" for k in range(K)]
    return (
        [f"beta[{c},{s}]" for c in COVARIATES for s in skills]
        + [f"lam[{s},{bench[k]}]" for k, s in enumerate(skills)]
        + [f"lam[{s},{b}]" for s in skills for b in bench[K:]]
        + [f"b[{b}]" for b in bench]
        + [f"phi[{b}]" for b in bench]
        + [f"corr_z[{i}]" for i in range(K * (K - 1) // 2)]
    )


#: The blocks of :func:`unconstrained`, named as an ``mle`` fit's ``param`` labels name them.
_MLE_BLOCKS = ("beta", "lam_anchor_log__", "lam_free", "b", "phi_log__", "corr_z")


def unconstrained(values: Mapping[str, np.ndarray], K: int) -> np.ndarray:
    """The parameters on the unconstrained scale, ``(..., n_params)``, from ``beta``, ``lam``,
    ``b``, ``phi``, ``corr`` with any leading (draw) dimensions."""
    free = free_variables(values, K)
    lead = free["b"].shape[:-1]
    blocks = [free["beta"].reshape(*lead, -1), np.log(free["lam_anchor"]), free["lam_free"].reshape(*lead, -1),
              free["b"], np.log(free["phi"]), free["corr_z"]]  # fmt: skip
    return np.concatenate(blocks, axis=-1)


def _mle_order(labels: Iterable[str], K: int, J: int) -> np.ndarray:
    """Position in :func:`unconstrained`'s vector of each of an ``mle`` fit's ``param`` labels."""
    sizes = [len(COVARIATES) * K, K, K * (J - K), J, J, K * (K - 1) // 2]
    offsets = dict(zip(_MLE_BLOCKS, np.cumsum([0, *sizes[:-1]]), strict=True))
    out = []
    for label in labels:
        block, index = str(label).removesuffix("]").split("[")
        if block not in offsets:
            raise BayesLslError(f"the mle fit's parameter {label!r} is not one SBC knows ({_MLE_BLOCKS})")
        out.append(offsets[block] + int(index))
    return np.array(out)


def thin(n_total: int, n_keep: int) -> np.ndarray:
    """Indices of ``n_keep`` draws evenly spaced over ``n_total`` (chains concatenated)."""
    return np.unique(np.linspace(0, n_total - 1, n_keep).round().astype(int))


def simulate_replication(rep: int, seed: int, design: SbcDesign) -> tuple[ScalingData, np.ndarray, dict]:
    """Replication ``rep``'s data set, its true parameters (unconstrained, :func:`parameter_names`'
    order) and facts about it (``clipped_share``, the seeds); depends only on ``(seed, rep)``."""
    seeds = replication_seeds(seed, rep)
    plan = random_design(design.n_families, design.models_per_family, seed=seeds["design"])
    params = prior_parameters(plan, design.K, design.n_benchmarks, priors=dict(design.priors) or None,
                              seed=seeds["prior"])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scores below a floor are part of the model
        data, truth = simulate(params, plan, design.benchmarks, seed=seeds["data"], eps=design.eps)
    # Scores the simulator clipped into [eps, 1 - eps]: where the prior puts many, the
    # data are not exactly the model's (see the README's SBC section).
    clipped = float(np.mean((data.scores <= data.eps) | (data.scores >= 1 - data.eps)))
    return data, unconstrained(truth, design.K), {"clipped_share": clipped, "seeds": seeds}


def fit_replication(method: str, data: ScalingData, design: SbcDesign, seed: int) -> xr.DataTree:
    """Fit one replication's data by ``method`` (:data:`SBC_METHODS`), quietly, in one process."""
    options = dict(SBC_METHODS[method]) | dict(design.fit_options)
    if options["method"] == "nuts":
        options |= {"chains": design.chains, "tune": design.tune, "draws": design.draws, "cores": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flat directions, minor modes: the ranks show their effect
        return fit(data, design.K, seed=seed, priors=dict(design.priors) or None, progress=False, **options)


def fit_ranks(tree: xr.DataTree, truth: np.ndarray, design: SbcDesign) -> np.ndarray:
    """Ranks of ``truth`` (unconstrained) among a fit's draws, or for an ``mle`` fit among its
    Wald normal's (the expected rank, see the module's text)."""
    if tree.attrs["method"] == "mle":
        mle = tree["mle"]
        order = _mle_order(mle["param"].values, design.K, design.n_benchmarks)
        hat, se = np.full(len(truth), np.nan), np.full(len(truth), np.nan)
        hat[order] = mle["theta_hat"].values
        se[order] = np.sqrt(np.clip(np.diag(mle["theta_cov"].values), 0.0, None))
        u = scipy.stats.norm.cdf((truth - hat) / se)
        return np.minimum(np.floor((design.n_draws + 1) * u), design.n_draws)
    post = tree["posterior"].to_dataset().stack(sample=("chain", "draw")).transpose("sample", ...)
    keep = thin(post.sizes["sample"], design.n_draws)
    draws = unconstrained({k: post[k].values[keep] for k in ("beta", "lam", "b", "phi", "corr")}, design.K)
    return (draws < truth).sum(axis=0).astype(float)


def sbc_replication(task: tuple[str, int, int, SbcDesign]) -> dict:
    """One replication: ``task = (method, rep, seed, design)``; a row of the rank table.

    A fit that raises is recorded with its error and no ranks (the table's ``error``
    column), so that a long run keeps going; the summary counts them.
    """
    method, rep, seed, design = task
    names = parameter_names(design)
    start = time.perf_counter()
    data, truth, facts = simulate_replication(rep, seed, design)
    row = {"method": method, "rep": int(rep), "seed": int(seed), "n_draws": design.n_draws,
           "clipped_share": facts["clipped_share"]}  # fmt: skip
    if design.skip_clipped and facts["clipped_share"] > 0:
        row |= {"n_divergences": -1, "error": SKIPPED, "wall_s": time.perf_counter() - start}
        return row | dict.fromkeys(names, np.nan)
    try:
        tree = fit_replication(method, data, design, facts["seeds"]["fit"])
        ranks = fit_ranks(tree, truth, design)
        row |= {"n_divergences": int(tree.attrs.get("n_divergences", 0)), "error": ""}
    except Exception as err:  # noqa: BLE001 -- recorded in the table and counted by the summary
        ranks = np.full(len(names), np.nan)
        row |= {"n_divergences": -1, "error": f"{type(err).__name__}: {err}"[:300]}
    row["wall_s"] = time.perf_counter() - start
    return row | dict(zip(names, ranks, strict=True))


def run_sbc(
    method: str,
    reps: int | Iterable[int],
    seed: int = 0,
    design: SbcDesign | None = None,
    n_jobs: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Run SBC replications of one method.

    Parameters
    ----------
    method : {"mle", "nuts", "nuts-centered"}
        See :data:`SBC_METHODS`.
    reps : int or iterable of int
        Replication numbers (an int ``n``: ``0 .. n - 1``). A replication's result depends
        only on ``(seed, rep)``, so runs with different numbers extend each other.
    seed : int
        Base seed.
    design : SbcDesign, optional
        The simulated data sets and the fit settings (default :class:`SbcDesign`).
    n_jobs : int
        Workers (:func:`bayes_lsl.parallel.run_tasks`); each fit runs in one process.
    progress : bool
        One progress bar for the whole run.

    Returns
    -------
    DataFrame
        One row per replication, in the order of ``reps``: :data:`INFO_COLUMNS`, then the
        rank of each parameter (:func:`parameter_names`), ``NaN`` where the fit failed.

    Examples
    --------
    >>> from bayes_lsl.sbc import SbcDesign, run_sbc, rank_uniformity
    >>> table = run_sbc("mle", 200, n_jobs=16)  # doctest: +SKIP
    >>> rank_uniformity(table)  # doctest: +SKIP
    """
    if method not in SBC_METHODS:
        raise BayesLslError(f"unknown SBC method {method!r}; choose one of {sorted(SBC_METHODS)}")
    design = design or SbcDesign()
    reps = range(reps) if isinstance(reps, (int, np.integer)) else [int(r) for r in reps]
    tasks = [(method, r, int(seed), design) for r in reps]
    rows = run_tasks(sbc_replication, tasks, n_jobs=n_jobs, progress=progress, desc=f"SBC {method}")
    return pd.DataFrame(rows, columns=[*INFO_COLUMNS, *parameter_names(design)])


def failed_fits(table: pd.DataFrame) -> pd.Series:
    """Replications without ranks: the fit raised, or the data set was skipped
    (``SbcDesign.skip_clipped``); a non-empty ``error`` (read back from a CSV, a column
    without any error is all NaN, hence the ``notna``)."""
    error = table["error"]
    return error.notna() & (error.astype(str) != "")


def rank_columns(table: pd.DataFrame) -> list[str]:
    """The parameter columns of a rank table."""
    return [c for c in table.columns if c not in INFO_COLUMNS]


# ------------------------------------------------------------------ uniformity
def _ecdf_counts(ranks: np.ndarray, n_draws: int) -> np.ndarray:
    """``N * ECDF`` of the ranks on the last axis at the evaluation points ``0 .. n_draws - 1``
    (at ``n_draws`` it is always N): shape ``(..., n_draws)``."""
    return (ranks[..., :, None] <= np.arange(n_draws)).sum(axis=-2)


def _min_tail_probability(counts: np.ndarray, n: int, n_draws: int) -> np.ndarray:
    """Smallest two-sided binomial tail probability of the ECDF counts over the evaluation points.

    Under uniformity ``N * ECDF(z_i)`` is Binomial(N, (i + 1) / (n_draws + 1)); the statistic
    of Sailynoja, Buerkner & Vehtari (2022) for simultaneous ECDF bands.
    """
    p = (np.arange(n_draws) + 1) / (n_draws + 1)
    lower = scipy.stats.binom.cdf(counts, n, p)
    upper = scipy.stats.binom.sf(counts - 1, n, p)
    return np.minimum(2 * np.minimum(lower, upper), 1.0).min(axis=-1)


def _null_statistics(n: int, n_draws: int, n_sim: int, seed: int) -> np.ndarray:
    """:func:`_min_tail_probability` of ``n_sim`` sets of ``n`` uniform ranks."""
    null = np.random.default_rng(seed).integers(0, n_draws + 1, size=(n_sim, n))
    return _min_tail_probability(_ecdf_counts(null, n_draws), n, n_draws)


def ecdf_band(n: int, n_draws: int, level: float = 0.95, n_sim: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Simultaneous ``level`` band of the rank ECDF minus the uniform CDF, for ``n`` ranks in ``0 .. n_draws``.

    By simulation (Sailynoja et al. 2022): the smallest pointwise two-sided tail
    probability ``gamma`` that uniform ranks reach with probability ``1 - level``; the band
    is the pointwise ``1 - gamma`` binomial interval at every evaluation point.

    Returns
    -------
    DataFrame
        ``z`` (the fraction ``(i + 1) / (n_draws + 1)``), ``lower``, ``upper`` (of ECDF - z).
    """
    gamma = float(np.quantile(_null_statistics(n, n_draws, n_sim, seed), 1 - level))
    z = (np.arange(n_draws) + 1) / (n_draws + 1)
    lower = scipy.stats.binom.ppf(gamma / 2, n, z) / n - z
    upper = scipy.stats.binom.ppf(1 - gamma / 2, n, z) / n - z
    return pd.DataFrame({"z": z, "lower": lower, "upper": upper})


def rank_uniformity(
    table: pd.DataFrame, level: float = 0.05, n_sim: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Per parameter: is the rank distribution uniform? Holm-adjusted over parameters.

    The test statistic is the smallest pointwise binomial tail probability of the rank
    ECDF (the statistic of the simultaneous ECDF band), its p-value by simulation of
    uniform ranks (``n_sim`` data sets; the p-value's resolution is ``1 / (n_sim + 1)``).
    The p-values are adjusted by Holm's method over the parameters, so that the chance
    that a correct method fails *any* parameter is at most ``level``.

    Parameters
    ----------
    table : DataFrame
        From :func:`run_sbc` (failed replications are left out and counted).
    level : float
        Family-wise test level over the parameters.

    Returns
    -------
    DataFrame
        Index: parameter. Columns ``n`` (replications), ``mean_rank`` (relative, 0.5
        expected), ``p_value``, ``p_holm`` and ``passes`` (``p_holm >= level``).
    """
    if not 0 < level < 1:
        raise BayesLslError(f"level must be in (0, 1), got {level!r}")
    ok = table[~failed_fits(table)]
    if ok.empty:
        raise BayesLslError("table: no replication without an error")
    n_draws = int(ok["n_draws"].iloc[0])
    if (ok["n_draws"] != n_draws).any():
        raise BayesLslError("table: replications with different n_draws cannot be pooled")
    names = rank_columns(ok)
    ranks = ok[names].to_numpy(float)
    n = len(ranks)
    observed = _min_tail_probability(_ecdf_counts(ranks.T, n_draws), n, n_draws)
    null = _null_statistics(n, n_draws, n_sim, seed)
    p = (1 + (null[None, :] <= observed[:, None]).sum(axis=1)) / (n_sim + 1)
    order = np.argsort(p)
    holm = np.maximum.accumulate(np.minimum(p[order] * (len(p) - np.arange(len(p))), 1.0))
    p_holm = np.empty_like(p)
    p_holm[order] = holm
    return pd.DataFrame(
        {"n": n, "mean_rank": ranks.mean(axis=0) / n_draws, "p_value": p, "p_holm": p_holm,
         "passes": p_holm >= level},
        index=pd.Index(names, name="parameter"),
    )  # fmt: skip


def rank_dispersion(ranks: np.ndarray, n_draws: int, level: float = 0.01) -> dict[str, float]:
    """One test over all parameters at once: are the ranks as spread as uniform ones?

    Each replication's mean over the parameters of ``12 (u - 1/2)^2``, ``u`` the rank's
    fraction ``(rank + 1/2) / (n_draws + 1)``: under calibration its expectation is
    ``1 - 1/(n_draws + 1)^2`` exactly (each rank is uniform, whatever the dependence
    between parameters); too-wide posteriors or intervals give less, too-narrow or
    shifted ones more. The replications are independent: a two-sided t test over them
    at ``level``. More powerful than the per-parameter tests when few replications are
    run, but blind to errors that cancel between parameters.

    Parameters
    ----------
    ranks : ndarray (replication, parameter)
    n_draws : int
        Ranks run ``0 .. n_draws``.
    level : float
        Test level.

    Returns
    -------
    dict
        ``mean``, ``expected``, ``tolerance`` (the t quantile times the standard error),
        ``n`` (replications) and ``passes``.
    """
    u = (np.asarray(ranks, float) + 0.5) / (n_draws + 1)
    per_rep = (12 * (u - 0.5) ** 2).mean(axis=1)
    n = len(per_rep)
    if n < 2:
        raise BayesLslError(f"ranks: need at least 2 replications, got {n}")
    expected = 1 - 1 / (n_draws + 1) ** 2
    tolerance = float(scipy.stats.t.ppf(1 - level / 2, n - 1) * per_rep.std(ddof=1) / np.sqrt(n))
    mean = float(per_rep.mean())
    return {"mean": mean, "expected": expected, "tolerance": tolerance, "n": n,
            "passes": bool(abs(mean - expected) <= tolerance)}  # fmt: skip


def design_dict(design: SbcDesign) -> dict:
    """The design as plain values (for a run's metadata file)."""
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in asdict(design).items()}
