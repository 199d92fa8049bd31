"""Grouped leave-one-out predictive comparison: PSIS-LOO with a model, a family or a cell left out.

Models of a family share its effect ``alpha`` and every model shares the parameters, so
a score left out (``group="cell"``, ArviZ's default unit) is not a model left out: the
model's other scores still inform its prediction. :func:`loo` leaves out whole groups:

- ``"cell"``: one score; its log-likelihood given the parameters and the family effects.
- ``"model"``: all scores of one model, their log-likelihoods summed, given the
  parameters and the family effect, which the family's other models inform. A model
  alone in its family is its family: it gets the ``"family"`` quantity (with its family
  effect in the posterior, its scores alone inform it, and PSIS would fail).
- ``"family"``: all scores of one family with its effect integrated out,
  ``log p(Y_l | parameters) = log int p(Y_l | alpha) N(alpha; 0, corr) d alpha``, at each
  parameter draw, by the adaptive quadrature of the marginal likelihood
  (:class:`bayes_lsl.fitting.marginal.MarginalLikelihood`). The conditional
  log-likelihood given ``alpha_l`` would be useless: with the family left out, the
  posterior of its ``alpha`` is the prior.

PSIS-LOO (ArviZ's ``loo``) then gives each group's ``elpd``, ``p_loo`` and Pareto k. Where
k > 0.7 the importance weights cannot be trusted; ``reloo=True`` refits the model without
each such group (``reloo="all"``: without every group, exact K-fold by group) and scores
the group under the refit's predictive, through :func:`bayes_lsl.parallel.run_tasks`.

Fits: ``nuts`` and ``advi`` (their posterior draws; an ``advi`` posterior is an
approximation, which the Pareto k judges) and ``mle``, whose draws from the asymptotic
normal (with Laplace family effects) stand in for posterior draws: a flat-prior,
large-sample approximation, again judged by k. A ``map`` fit is a point and is refused.
A fit with family slopes takes ``"cell"`` and ``"model"`` (its families of one model
aside): the family quantity's quadrature integrates the intercepts only, so it is refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
import scipy.special
import xarray as xr

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.result import FitInfo
from bayes_lsl.model.likelihood import score_logp_shapes
from bayes_lsl.parallel import run_tasks
from bayes_lsl.parameters import _fit_data, parameter_draws
from bayes_lsl.posterior_predictive import posterior_predictive
from bayes_lsl.predict import score_distribution, score_mixture

GROUPS = ("model", "family", "cell")

#: Pareto k above which PSIS is unreliable (Vehtari et al. 2024, for the draws used here).
K_THRESHOLD = 0.7


@dataclass(frozen=True, eq=False)
class GroupedLoo:
    """What :func:`loo` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group: ``group`` (its label), ``n_scores``, ``elpd`` (its log
        predictive density with the group left out), ``lppd`` (with it in), ``p_loo``
        (``lppd - elpd``), ``pareto_k`` (PSIS's; NaN where refitted), ``how``
        (``"psis"``, ``"refit"``) and ``quantity`` (``"conditional"`` or ``"integrated"``:
        with the family effect given, or integrated out).
    group : str
        What was left out.
    elpd_loo, se, p_loo : float
        Sums over groups, and the standard error ``sqrt(n var(elpd))``.
    """

    table: pd.DataFrame
    group: str
    elpd_loo: float = field(init=False)
    se: float = field(init=False)
    p_loo: float = field(init=False)

    def __post_init__(self) -> None:
        elpd = self.table["elpd"].to_numpy()
        object.__setattr__(self, "elpd_loo", float(elpd.sum()))
        object.__setattr__(self, "se", float(np.sqrt(len(elpd) * elpd.var(ddof=1))) if len(elpd) > 1 else np.nan)
        object.__setattr__(self, "p_loo", float(self.table["p_loo"].sum()))

    @property
    def n_high_k(self) -> int:
        """Groups whose PSIS value is unreliable (k > 0.7) and was not refitted."""
        return int((self.table["pareto_k"] > K_THRESHOLD).sum())

    def __repr__(self) -> str:
        return (f"GroupedLoo(group={self.group!r}, elpd_loo={self.elpd_loo:.1f} (se {self.se:.1f}), "
                f"p_loo={self.p_loo:.1f}, {len(self.table)} groups, {self.n_high_k} with k > {K_THRESHOLD}, "
                f"{int((self.table['how'] == 'refit').sum())} refitted)")  # fmt: skip


def loo(
    fit: xr.DataTree,
    group: str = "model",
    *,
    reloo: bool | str = False,
    n_draws: int | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    nodes: int | str = 3,
    progress: bool = False,
    replicates: xr.Dataset | None = None,
    **fit_options,
) -> GroupedLoo:
    """PSIS-LOO with whole groups of scores left out, with Pareto k per group (see the module's docstring).

    Parameters
    ----------
    fit : xarray.DataTree
        A ``nuts``, ``advi`` or ``mle`` fit.
    group : {"model", "family", "cell"}
        What is left out.
    reloo : bool or "all"
        ``False``: PSIS only (a warning names the groups with k > 0.7). ``True``: refit
        without each group with k > 0.7 and use the exact value. ``"all"``: refit without
        every group (exact K-fold by group; as many fits as groups).
    n_draws : int, optional
        Draws: default every posterior draw of a sampled fit, 1000 for ``mle`` (and for
        each refit's predictive).
    seed : int
        Seed of the draws and of the refits.
    n_jobs : int
        Refits side by side (:func:`bayes_lsl.parallel.run_tasks`).
    nodes : int or "cubature"
        The quadrature rule of the integrated log-likelihood (Gauss-Hermite nodes per skill).
    progress : bool
        A progress bar over the refits.
    replicates : xarray.Dataset, optional
        :func:`bayes_lsl.posterior_predictive`'s draws of this fit, to reuse their
        log-likelihood (``n_draws`` is then theirs).
    **fit_options
        Passed to :func:`bayes_lsl.fit` for the refits (e.g. ``draws``, ``chains``).

    Returns
    -------
    GroupedLoo

    Raises
    ------
    BayesLslError
        For an unknown ``group`` or ``reloo``, or a ``map`` fit (a point: no draws).
    """
    if group not in GROUPS:
        raise BayesLslError(f"group must be one of {GROUPS}, got {group!r}")
    if reloo not in (False, True, "all"):
        raise BayesLslError(f"reloo must be False, True or 'all', got {reloo!r}")
    info = FitInfo.from_tree(fit)
    if not info.has_draws and info.method != "mle":
        raise BayesLslError(
            f"loo needs draws of the parameters: a {info.method!r} fit is a point; use method='nuts', 'advi' or 'mle'"
        )
    rep = replicates if replicates is not None else posterior_predictive(fit, n_draws=n_draws, seed=seed)
    S, chains = rep.sizes["sample"], int(rep.attrs["chains"])
    labels, integrated = _group_labels(rep, group)
    if integrated and info.family_slopes:
        raise BayesLslError(
            f"loo(group={group!r}) integrates families out by the marginal likelihood's quadrature, which covers "
            f"the family intercepts only, and this fit has family slopes on {list(info.family_slopes)} "
            f"(families left out: {[str(f) for f in integrated.values()][:3]}...); use group='cell', or 'model' where "
            "every family has two models or more"
        )
    names = list(dict.fromkeys(labels))
    index = np.array([names.index(g) for g in labels])
    log_lik = np.zeros((S, len(names)))
    np.add.at(log_lik.T, index, rep["log_lik"].values.T)
    n_scores = np.bincount(index, minlength=len(names))
    quantity = np.array(["conditional"] * len(names), dtype=object)
    if integrated:
        # Every family of the fit's data (a few families alone may hold fewer scores than the model has parameters).
        data = _fit_data(fit)
        per_family = integrated_loglik(fit, parameter_draws(fit, n_draws=S, seed=seed), data, nodes=nodes)
        for g, fam in integrated.items():
            log_lik[:, names.index(g)] = per_family[:, data.families.index(fam)]
            quantity[names.index(g)] = "integrated"
    aligned = chains > 1 or (info.has_draws and S == info.n_chains * info.n_draws)
    elpd, k, lppd = _psis(log_lik, fit["posterior"].to_dataset() if aligned else None)
    table = pd.DataFrame({"group": names, "n_scores": n_scores, "elpd": elpd, "lppd": lppd, "pareto_k": k,
                          "how": "psis", "quantity": quantity})  # fmt: skip
    redo = np.arange(len(names)) if reloo == "all" else np.flatnonzero(k > K_THRESHOLD) if reloo else []
    if len(redo):
        # Plain values (FitInfo holds a mappingproxy, which worker processes cannot receive).
        centered = {"non-centered": False, "centered": True}.get(info.parameterization, info.parameterization)
        spec = {"method": info.method, "K": info.K, "priors": dict(info.priors), "dispersion": info.dispersion,
                "centered": centered, "covariates": list(info.covariates),
                "family_effects": info.family_effects, "scores": info.scores,
                "family_slopes": None if info.family_slopes is None else list(info.family_slopes)}  # fmt: skip
        task = partial(_refit_group, _fit_data(fit), spec, group, seed=seed, n_draws=n_draws or 1000, nodes=nodes,
                       fit_options=fit_options)  # fmt: skip
        exact = run_tasks(task, [names[i] for i in redo], n_jobs, progress=progress, desc="loo refits")
        table.loc[redo, "elpd"] = exact
        table.loc[redo, "pareto_k"] = np.nan
        table.loc[redo, "how"] = "refit"
    table["p_loo"] = table["lppd"] - table["elpd"]
    high = table.loc[table["pareto_k"] > K_THRESHOLD, "group"].tolist()
    if high:
        warnings.warn(
            f"{len(high)} of {len(names)} groups have Pareto k > {K_THRESHOLD} (e.g. {high[:3]}): their PSIS values "
            "are unreliable; loo(..., reloo=True) refits without them",
            UserWarning,
            stacklevel=2,
        )
    return GroupedLoo(table[["group", "n_scores", "elpd", "lppd", "p_loo", "pareto_k", "how", "quantity"]], group)


def _group_labels(rep: xr.Dataset, group: str) -> tuple[np.ndarray, dict[str, str]]:
    """Each cell's group label, and the groups whose log-likelihood integrates a family effect out (label -> family)."""
    models, families = rep["model"].values.astype(str), rep["family"].values.astype(str)
    if group == "cell":
        return np.char.add(np.char.add(models, "|"), rep["benchmark"].values.astype(str)), {}
    if group == "family":
        return families, {f: f for f in dict.fromkeys(families)}
    per_family = pd.Series(models).groupby(families).nunique()
    alone = {m: f for m, f in zip(models, families, strict=True) if per_family[f] == 1}
    return models, alone


def _psis(log_lik: np.ndarray, posterior: xr.Dataset | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ArviZ's PSIS-LOO of a (sample, group) log-likelihood: elpd, Pareto k and lppd per group.

    ``posterior``: the fit's posterior when the samples are its draws in chain order (ArviZ
    takes the relative efficiency of the draws from it, as ``az.loo(fit)`` does); otherwise
    the draws are independent (the asymptotic normal's, or a shuffled subsample), one chain.
    """
    from arviz_stats import loo as az_loo

    S, n = log_lik.shape
    chains = 1 if posterior is None else posterior.sizes["chain"]
    if posterior is None:
        posterior = xr.Dataset({"sample": (("chain", "draw"), np.arange(float(S))[None])})
    ll = xr.Dataset({"y": (("chain", "draw", "group"), log_lik.reshape(chains, S // chains, n))})
    tree = xr.DataTree.from_dict({"posterior": posterior, "log_likelihood": ll})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's high-k warning: loo warns with the groups' names
        result = az_loo(tree, pointwise=True, var_name="y")
    lppd = scipy.special.logsumexp(log_lik, axis=0) - np.log(S)
    return np.asarray(result.elpd_i).ravel(), np.asarray(result.pareto_k).ravel(), lppd


def _restandardized(data: ScalingData, standardization) -> ScalingData:
    """``data`` with its covariates standardized as ``standardization``'s (a fit's :class:`FitInfo`)."""
    return ScalingData(
        models=data.models, model_family=data.model_family, size=data.size, tokens=data.tokens, scores=data.scores,
        benchmarks=data.benchmarks, floors=data.floors, anchors=data.anchors,
        covariate_center=standardization.covariate_center, covariate_scale=standardization.covariate_scale,
        eps=data.eps, kind=data.kind, terms=standardization.covariates,
    )  # fmt: skip


def integrated_loglik(fit: xr.DataTree, params: xr.Dataset, data: ScalingData, *, nodes: int | str = 3) -> np.ndarray:
    """``log p(Y_l | parameters)`` (sample, family of ``data``): each family's scores with its effect integrated out.

    ``data`` holds the families (standardized as the fit's data); ``params`` are
    :func:`bayes_lsl.parameter_draws` of ``fit``. The adaptive quadrature of
    :class:`bayes_lsl.fitting.marginal.MarginalLikelihood` (rule ``nodes``) at each draw,
    its family modes found from the previous draw's.
    """
    from bayes_lsl.fitting.marginal import MarginalLikelihood, family_modes
    from bayes_lsl.model import build_model

    info = FitInfo.from_tree(fit)
    model = build_model(data, info.K, centered=False, **info.build_options)  # its family effects' prior too
    ml = MarginalLikelihood(model, data, nodes)
    per_family = ml.per_family(nodes)
    thetas = _unconstrained(ml, params, info.K)
    out, modes = np.zeros((len(thetas), ml.n_families)), None
    for s, theta in enumerate(thetas):
        modes, _ = family_modes(ml, theta, start=modes)
        out[s] = per_family(theta, modes)
    return out


def _unconstrained(ml, params: xr.Dataset, K: int) -> np.ndarray:
    """Each draw's vector in :class:`MarginalLikelihood`'s layout, from its natural parameters."""
    from bayes_lsl.model.parameterization import free_variables

    free = free_variables({name: params[name].values for name in params.data_vars}, K)
    pieces = []
    for name in ml.names:
        base = name.removesuffix("_log__").removesuffix("_logodds__")
        if base not in free:
            raise BayesLslError(f"cannot map the fit's draws to the model's variable {name!r}")
        value = np.log(free[base]) if name.endswith("_log__") else free[base]
        if name.endswith("_logodds__"):  # score_eps, in (0, 1)
            value = scipy.special.logit(free[base])
        pieces.append(value.reshape(len(value), -1))
    return np.concatenate(pieces, axis=1)


def _held_out(data: ScalingData, group: str, label: str) -> tuple[ScalingData, np.ndarray]:
    """The data without the group ``label`` and the held-out mask (model x benchmark) of its scores."""
    held = np.zeros(data.scores.shape, bool)
    if group == "cell":
        model, benchmark = label.split("|", 1)
        held[data.models == model, list(data.benchmarks).index(benchmark)] = True
    else:
        held[(data.models if group == "model" else data.model_family) == label] = True
    held &= data.observed
    frame = data.to_frame()
    frame.loc[:, list(data.benchmarks)] = np.where(held, np.nan, data.scores)
    frame = frame[~np.isnan(frame[list(data.benchmarks)].to_numpy()).all(axis=1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = ScalingData.from_frame(frame, floors=dict(zip(data.benchmarks, data.floors, strict=True)),
                                       anchors=data.anchors, eps=data.eps)  # fmt: skip
    return train, held


def _refit_group(data: ScalingData, spec: dict, group: str, label: str, *, seed: int, n_draws: int,
                 nodes: int | str, fit_options: dict) -> float:  # fmt: skip
    """Exact ``log p(held-out scores | the rest)``: refit without the group, score it under the refit's predictive.

    ``spec``: the fit's ``method`` and ``K``, and optionally its ``priors``, ``dispersion``
    and ``centered``, which the refit keeps.
    """
    from bayes_lsl.fitting import fit as fit_model

    train, held = _held_out(data, group, label)
    options = {"check_draws": 0} if spec["method"] == "mle" else {}  # the refit's optimum is what is needed
    options |= {key: spec[key] for key in ("priors", "dispersion", "centered", "covariates", "family_effects",
                                                "family_slopes", "scores")
                if key in spec}
    refit = fit_model(train, K=spec["K"], method=spec["method"], seed=seed, progress=False, **(options | fit_options))
    rows = np.flatnonzero(held.any(axis=1))
    family = str(data.model_family[rows[0]])
    if family not in set(train.families):
        # The whole family is out (every one of its scores is held out): integrate its effect.
        # On all of the data, standardized as the refit's (the model needs more scores than
        # one family has parameters), then the family's column.
        every = _restandardized(data, FitInfo.from_tree(refit))
        ll = integrated_loglik(refit, parameter_draws(refit, n_draws=n_draws, seed=seed), every, nodes=nodes)
        ll = ll[:, list(data.families).index(family)]
    else:
        frame = pd.DataFrame({"model": data.models[rows], "family": data.model_family[rows],
                              "size": data.size[rows], "tokens": data.tokens[rows]})  # fmt: skip
        if data.kind is not None:
            frame["kind"] = data.kind[rows]
        draws, _ = score_distribution(refit, frame, np.full((len(rows), len(data.benchmarks)), np.nan),
                                      n_draws=n_draws, seed=seed)  # fmt: skip
        r, c = np.nonzero(held[rows])
        a, b = draws["shape_a"].values[:, r, c], draws["shape_b"].values[:, r, c]
        eps, kappa = score_mixture(draws)
        ll = score_logp_shapes(data.scores[rows][r, c], a, b, None if eps is None else eps[:, 0], kappa).sum(axis=1)
    return float(scipy.special.logsumexp(ll) - np.log(len(ll)))
