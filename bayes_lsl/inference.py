"""One entry point, four ways to fit: ``fit(data, K, method=...)``.

Every method builds the same :func:`bayes_lsl.model.build_model` and returns an
``xarray.DataTree`` laid out the same way, so that ArviZ tools and the downstream
analyses read any fit alike:

- ``posterior``: ``beta``, ``lam``, ``b``, ``phi``, ``corr``, ``alpha`` (and ``theta``),
  with dims ``chain``, ``draw`` (point estimates are one chain with one draw);
- ``constant_data``: the covariates ``x`` actually used, the scores, floors and family index;
- method-specific groups (``log_likelihood``, ``sample_stats``, ``mle`` ...);
- attrs naming the method, K, anchors, floors, covariate center and scale, and the version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import numpy as np
import pymc as pm
import xarray as xr

from bayes_lsl.data import COVARIATES, ScalingData
from bayes_lsl.model import build_model

#: Variables every fit's ``posterior`` group carries, whatever the method.
POSTERIOR_VARS: tuple[str, ...] = ("beta", "lam", "b", "phi", "corr", "alpha", "theta")
#: Kept in ``posterior`` too when the model has them (``dispersion="covariates"``), so
#: that predictions can compute the precision of new models.
OPTIONAL_VARS: tuple[str, ...] = ("phi_a", "phi_s")

#: A method takes the model, the data and options and returns the DataTree's groups
#: (``posterior`` at least) and attrs of its own.
FitResult = tuple[dict[str, xr.Dataset], dict]
Method = Callable[..., FitResult]
_METHODS: dict[str, Method] = {}


def register(name: str) -> Callable[[Method], Method]:
    """Register a fitting method under ``name`` (used by the method modules)."""

    def wrap(func: Method) -> Method:
        _METHODS[name] = func
        return func

    return wrap


def fit(
    data: ScalingData,
    K: int = 4,
    method: str = "mle",
    seed: int = 0,
    *,
    priors: Mapping[str, float] | None = None,
    dispersion: str = "benchmark",
    centered: bool | str | None = None,
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
    centered : bool or "partial", optional
        How the family effects are parameterized (see :func:`bayes_lsl.build_model`); the
        model is the same. Default: ``"partial"`` for ``nuts`` (it mixes best),
        ``False`` otherwise.
    progress : bool
        Show progress bars.
    **options
        Method options, see the method's function (``bayes_lsl.mle.fit_mle`` etc.).
        For ``nuts``, ``init="mle"`` fits the MLE first and starts every chain there.

    Returns
    -------
    xarray.DataTree
    """
    # Importing the method modules registers them.
    from bayes_lsl import approx, mle, sampling  # noqa: F401

    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(_METHODS)}")
    if isinstance(options.get("init"), str):
        if options["init"] != "mle" or method != "nuts":
            raise ValueError(f"init={options['init']!r}: the only named start is init='mle', for method='nuts'")
        # The MLE's neighbourhood is the posterior's main mode (see sampling.fit_nuts).
        options["init"] = fit(data, K, "mle", seed, priors=priors, dispersion=dispersion, progress=progress,
                              check_draws=0)  # only the optimum is needed
    if centered is None:
        centered = "partial" if method == "nuts" else False
    model = build_model(data, K=K, priors=priors, dispersion=dispersion, centered=centered)
    groups, attrs = _METHODS[method](model, data, seed=seed, progress=progress, **options)
    attrs = {"dispersion": dispersion, "centered": centered, "priors": repr(dict(priors or {})), **attrs}
    return assemble(data, model, K, method, seed, groups, attrs)


def data_fingerprint(data: ScalingData) -> str:
    """A short hash of the models, benchmarks and scores, to recognize a fit's data set."""
    digest = hashlib.sha256()
    for part in (data.models.astype(str), np.asarray(data.benchmarks), data.model_family.astype(str)):
        digest.update("\x1f".join(part).encode())
    digest.update(np.nan_to_num(data.scores, nan=-1.0).round(12).tobytes())
    return digest.hexdigest()[:16]


def constant_data(data: ScalingData) -> xr.Dataset:
    """What a fit needs to know about its data: covariates, scores, floors, families."""
    ds = data.to_xarray()
    ds["family_index"] = ("model", data.family_index)
    ds = ds.rename({"family": "model_family"})
    return ds.assign_coords(family=list(data.families))


def assemble(
    data: ScalingData,
    model: pm.Model,
    K: int,
    method: str,
    seed: int,
    groups: dict[str, xr.Dataset],
    attrs: dict,
) -> xr.DataTree:
    """Put a method's groups together with the data and the attrs every fit carries."""
    from bayes_lsl import __version__

    posterior = groups["posterior"]
    missing = [v for v in POSTERIOR_VARS if v not in posterior]
    if missing:
        raise RuntimeError(f"method {method!r} did not produce posterior variable(s) {missing}")
    common = {
        "method": method,
        "K": int(K),
        "seed": int(seed),
        "anchors": list(data.benchmarks[:K]),
        "benchmarks": list(data.benchmarks),
        "floors": [float(f) for f in data.floors],
        "covariates": list(COVARIATES),
        "covariate_center": [float(c) for c in data.covariate_center],
        "covariate_scale": [float(s) for s in data.covariate_scale],
        "eps": float(data.eps),
        "data_fingerprint": data_fingerprint(data),
        "bayes_lsl_version": __version__,
        "pymc_version": pm.__version__,
    }
    tree = xr.DataTree.from_dict({name: ds for name, ds in groups.items()} | {"constant_data": constant_data(data)})
    tree.attrs = {**common, **attrs}
    return tree


def point_posterior(values: Mapping[str, np.ndarray], model: pm.Model) -> xr.Dataset:
    """A one-chain, one-draw ``posterior`` group from point values of the model's variables."""
    names = [*POSTERIOR_VARS, *(n for n in OPTIONAL_VARS if n in values)]
    dims = {name: model.named_vars_to_dims.get(name, ()) for name in names}
    coords = {d: list(model.coords[d]) for ds in dims.values() for d in ds}
    return xr.Dataset(
        {
            name: (("chain", "draw", *dims[name]), np.asarray(values[name])[None, None])
            for name in names
        },
        coords={"chain": [0], "draw": [0], **coords},
    )
