"""One entry point, four ways to fit: ``fit(data, K, method=...)``.

Every method builds the same :func:`bayes_lsl.model.build_model` and returns its groups;
:func:`bayes_lsl.fitting.result.assemble` lays them out as the fit contract
(:mod:`bayes_lsl.fitting.result`), so that ArviZ and every analysis read any fit alike.
To add a method: write ``fit_<name>(model, data, *, seed, progress, **options) -> FitResult``
in a module of this package and add it to :data:`METHODS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import xarray as xr

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.fitting.approx import fit_advi, fit_map
from bayes_lsl.fitting.mle import fit_mle
from bayes_lsl.fitting.nuts import NAMED_INITS, check_sampler, default_centering, fit_nuts, named_init
from bayes_lsl.fitting.result import FitInfo, FitResult, assemble
from bayes_lsl.model import build_model
from bayes_lsl.model.build import slope_terms

#: The fitting methods, by name.
METHODS = {"mle": fit_mle, "map": fit_map, "advi": fit_advi, "nuts": fit_nuts}

#: Named model configurations (``fit(..., model=NAME)``): the paper's model, the default,
#: and the configuration recommended for predicting larger models of a seen family
#: (README, "Extrapolating to larger models"): base and tuned models with their own
#: intercepts and slopes, without the size x tokens interaction.
PRESETS: dict[str, dict] = {
    "paper": {"covariates": "paper", "by_kind": False},
    "extended": {"covariates": "no-interaction", "by_kind": True},
}

__all__ = ["METHODS", "PRESETS", "FitInfo", "FitResult", "fit"]


def fit(
    data: ScalingData,
    K: int = 4,
    method: str = "mle",
    seed: int = 0,
    *,
    priors: Mapping[str, float] | None = None,
    dispersion: str = "benchmark",
    centered: bool | str | None = None,
    covariates: str | Sequence[str] | None = None,
    by_kind: bool = False,
    model: str | None = None,
    family_effects: str = "normal",
    family_slopes: str | Sequence[str] | None = None,
    scores: str = "beta",
    progress: bool = True,
    **options,
) -> xr.DataTree:
    """Fit the latent-skill model.

    Parameters
    ----------
    data : ScalingData
        The scores.
    K : int
        Number of skills (anchored on the first K benchmarks of ``data``).
    method : {"mle", "map", "advi", "nuts"}
        - ``"mle"``: the paper's estimator, the *marginal* likelihood (family effects
          integrated out by adaptive Gauss-Hermite quadrature) maximized; no priors.
          Standard errors from the observed information.
        - ``"map"``: the joint posterior mode over parameters *and* family effects, with
          the priors; fast, but not the paper's estimator.
        - ``"advi"``: variational approximation (mean-field, or ``full_rank=True``).
        - ``"nuts"``: full posterior by NUTS (nutpie by default).
    seed : int
        Seed of every random step; the same seed gives the same numbers.
    priors, dispersion
        Passed to :func:`bayes_lsl.build_model`.
    covariates : str or list of str, optional
        The covariates of the skills (:mod:`bayes_lsl.design`): ``"paper"``, the paper's
        standardized [log N, log D, log N log D]; ``"no-interaction"``, [log N, log D];
        ``"compute"``, [log(N D)] (log(6 N D) up to a constant, which the standardization
        removes); or a list of terms from :data:`bayes_lsl.design.TERMS`. Default: the
        data's own terms, the paper's unless set by :meth:`bayes_lsl.ScalingData.with_covariates`.
    by_kind : bool
        Model kind as a covariate of the skills' intercepts *and* slopes: adds ``tuned``
        (1 for tuned models, 0 for base) and its product with every other term, so that
        base and tuned models get their own intercepts and slopes per skill. Needs the
        data's kinds (a ``kind`` column); predictions then need the new models' kinds.
    model : {"paper", "extended"}, optional
        A named configuration of ``covariates`` and ``by_kind`` (:data:`PRESETS`), instead
        of setting them: ``"paper"`` is the paper's model (the default); ``"extended"``,
        ``covariates="no-interaction", by_kind=True``, the configuration recommended for
        predicting a larger model of a seen family (README, "Extrapolating to larger models").
    family_effects : {"normal", "student-t"}
        The family effects' distribution: ``"normal"``, ``N(0, corr)`` (the paper's model);
        ``"student-t"``, a multivariate t with ``priors["family_df"]`` degrees of freedom
        (fixed; default 4, e.g. ``priors={"family_df": 7}``), location 0 and scale matrix
        ``corr``: heavier tails for families far from the rest. Every method supports it
        (``mle`` integrates the t prior out; predictions for new families draw from it).
    centered : bool or "partial", optional
        How the family effects are parameterized (see :func:`bayes_lsl.build_model`); the
        model is the same. Default: ``"partial"`` for ``nuts`` (it mixes best on the
        leaderboard), unless an anchor loading is poorly determined at the MLE the chains
        start from (standard error of its log above 0.25,
        :func:`bayes_lsl.fitting.nuts.default_centering`): then ``True``, since ``"partial"``
        measures each skill in units of its anchor loading and meets a funnel there.
        ``False`` for the other methods; with ``family_effects="student-t"``, ``False`` for
        every method (``"partial"`` is built for the normal prior only).
    family_slopes : str or list of str, optional
        Random family slopes on these terms of the design (e.g. ``"log_size"``; see
        :func:`bayes_lsl.build_model`), for ``nuts``, ``advi`` and ``map``; ``mle``
        integrates only the family intercepts and cannot take them. With ``nuts`` the
        default start fits the MLE of the model without family slopes; each chain's
        slopes start at their own draw of ``z`` with a small sd (see
        :class:`bayes_lsl.fitting.nuts.DispersedStarts`).
    scores : {"beta", "beta-mixture"}
        The scores' likelihood (see :func:`bayes_lsl.build_model`): ``"beta"``, the paper's
        Beta; ``"beta-mixture"``, heavier tails with the same mean: ``(1 - eps) Beta(phi mu,
        phi (1 - mu)) + eps Beta(kappa phi mu, kappa phi (1 - mu))``, ``eps`` (``score_eps``)
        a free parameter (prior Beta(1, 9); for ``mle`` one more parameter of the marginal
        likelihood, on the logit scale), ``kappa = priors["score_kappa"]`` fixed (0.1).
        Every method supports it.
    progress : bool
        Show progress bars.
    **options
        Method options, see the method's function (``bayes_lsl.fitting.mle.fit_mle`` etc.).
        For ``nuts``, ``init`` says where the chains start (:data:`bayes_lsl.fitting.nuts.NAMED_INITS`):
        by default (``"mle-dispersed"``) the MLE is fitted first and each chain starts at
        its own seeded draw from the MLE's asymptotic normal; ``"mle-point"`` starts every
        chain at the MLE (the old ``"mle"``), ``"default"`` at PyMC's jittered default
        point; a fit or a dict of values are taken as they are.

    Returns
    -------
    xarray.DataTree
        The fit: ``posterior`` (one chain of one draw for ``mle`` and ``map``),
        ``constant_data`` and the method's groups; :class:`FitInfo` reads its settings
        (:mod:`bayes_lsl.fitting.result` says what a fit holds).

    Examples
    --------
    A ``map`` fit takes seconds; ``method="mle"`` (the paper's estimator) takes longer.

    >>> data = bl.load_example()
    >>> fit = bl.fit(data, K=2, method="map", seed=1, progress=False)
    >>> fit.posterior["lam"].dims
    ('chain', 'draw', 'skill', 'benchmark')
    >>> info = bl.FitInfo.from_tree(fit)
    >>> info.method, info.K, info.anchors, info.has_draws
    ('map', 2, ('math', 'ifeval'), False)
    """
    if method not in METHODS:
        raise BayesLslError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    if model is not None:
        if model not in PRESETS:
            raise BayesLslError(f"unknown model {model!r}; choose one of {sorted(PRESETS)}")
        if covariates is not None or by_kind:
            raise BayesLslError(f"model={model!r} sets the covariates and by_kind: give either model or those")
        covariates, by_kind = PRESETS[model]["covariates"], PRESETS[model]["by_kind"]
    # The design is applied once, here: the model, the method and the fit's FitInfo all read data.terms.
    data = data.with_covariates(covariates, by_kind)
    family_slopes = slope_terms(data.terms, family_slopes)
    if family_slopes and method == "mle":
        raise BayesLslError(
            "family_slopes: method='mle' integrates out only the K family intercepts, and family slopes add "
            f"{len(family_slopes)} x K dimensions per family to that integral; use method='nuts', 'advi' or 'map'"
        )
    if method == "nuts":
        check_sampler(options.get("sampler", "nutpie"))  # before the MLE below, not after it
        options.setdefault("init", NAMED_INITS[0])
    if isinstance(options.get("init"), str):
        if method != "nuts":
            raise BayesLslError(f"init={options['init']!r}: named starts are for method='nuts' only")
        init = named_init(options["init"])
        if init == "default":
            options["init"] = None
        else:
            # The MLE's neighbourhood is the posterior's main mode (see nuts.fit_nuts); with family
            # slopes, that of the model without them (the slopes start near zero, DispersedStarts).
            options["init"] = fit(data, K, "mle", seed, priors=priors, dispersion=dispersion, progress=progress,
                                  family_effects=family_effects, scores=scores,
                                  check_draws=0)  # only the optimum and its covariance are needed
            options["init_spread"] = init.removeprefix("mle-")
    if centered is None:
        # "partial" holds the normal prior's density of the informed effects (see parameterization).
        centered = default_centering(options.get("init")) if method == "nuts" and family_effects == "normal" else False
    model = build_model(data, K=K, priors=priors, dispersion=dispersion, centered=centered,
                        family_effects=family_effects, family_slopes=family_slopes, scores=scores)
    groups, attrs = METHODS[method](model, data, seed=seed, progress=progress, **options)
    return assemble(data, K, method, seed, groups, attrs, dispersion=dispersion, centered=centered, priors=priors,
                    family_effects=family_effects, family_slopes=family_slopes, scores=scores)
