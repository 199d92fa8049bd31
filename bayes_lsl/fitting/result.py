"""What a fit is: the contract every fitting method writes and every analysis reads.

A fit is a plain ``xarray.DataTree`` (ArviZ reads it directly) with

- ``posterior``: :data:`POSTERIOR_VARS` (and :data:`DISPERSION_PARAMETERS` with
  ``dispersion="covariates"``), dims ``chain``, ``draw`` first; a point estimate (``mle``,
  ``map``) is one chain with one draw;
- ``constant_data``: the covariates ``x`` actually used, the scores, floors and family index;
- method-specific groups (``log_likelihood``, ``sample_stats``, ``mle`` ...);
- attrs: the fields of :class:`FitInfo` (written by :func:`assemble`, read back and
  validated by :meth:`FitInfo.from_tree`) plus the method's own (timings, criteria ...).

Nothing outside this module reads a fit's attrs by string key for these fields: take a
:class:`FitInfo` instead.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType

import numpy as np
import pymc as pm
import xarray as xr

from bayes_lsl._version import __version__
from bayes_lsl.data import COVARIATES, ScalingData
from bayes_lsl.design import design_matrix, needs_kind
from bayes_lsl.errors import BayesLslError, FitFileError
from bayes_lsl.model.likelihood import family_effects_df, score_mixture_kappa
from bayes_lsl.model.parameterization import parameterization
from bayes_lsl.model.priors import DEFAULT_PRIORS, PRIORS_BEFORE_ISSUE_13, merge_priors

#: Version of the layout below; :meth:`FitInfo.from_tree` reads this and every older one.
#: 1: before FitInfo (priors as a repr of the overrides, ``centered`` as given).
#: 2: before designs other than the paper's covariates (``covariates`` always the paper's).
#: 3: ``covariates`` names the design's terms (:mod:`bayes_lsl.design`), which may need kinds.
#: 4: ``family_effects`` (``"normal"`` or ``"student-t"``); older files are ``"normal"``.
#: 5: ``family_slopes`` (the terms with random family slopes, or None; older files: None).
#: 6: ``scores`` (``"beta"`` or ``"beta-mixture"``, with ``score_eps`` in the posterior); older files: ``"beta"``.
FORMAT_VERSION = 6

#: The model's structural parameters: what predictions need besides the family effects.
PARAMETERS: tuple[str, ...] = ("beta", "lam", "b", "phi", "corr")
#: With ``dispersion="covariates"`` the precision is ``exp(phi_a + x' phi_s)`` per model.
DISPERSION_PARAMETERS: tuple[str, ...] = ("phi_a", "phi_s")
#: With ``family_slopes``: the slopes' sd per term and skill, and each family's slope.
SLOPE_PARAMETERS: tuple[str, ...] = ("slope_sd", "family_slope")
#: With ``scores="beta-mixture"``: the wide component's weight.
SCORE_PARAMETERS: tuple[str, ...] = ("score_eps",)
#: Variables every fit's ``posterior`` group carries, whatever the method.
POSTERIOR_VARS: tuple[str, ...] = (*PARAMETERS, "alpha", "theta")
#: Dims of each variable after ``chain, draw`` (``phi`` is (model, benchmark) with
#: ``dispersion="covariates"``).
VAR_DIMS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "beta": ("covariate", "skill"),
    "lam": ("skill", "benchmark"),
    "b": ("benchmark",),
    "phi": ("benchmark",),
    "corr": ("skill", "skill_other"),
    "alpha": ("family", "skill"),
    "theta": ("model", "skill"),
    "phi_a": ("benchmark",),
    "phi_s": ("covariate", "benchmark"),
    "slope_sd": ("slope_term", "skill"),
    "family_slope": ("family", "slope_term", "skill"),
    "score_eps": (),
})  # fmt: skip
SAMPLE_DIMS: tuple[str, str] = ("chain", "draw")

#: A method returns the DataTree's groups (``posterior`` at least) and attrs of its own.
FitResult = tuple[dict[str, xr.Dataset], dict]

#: Format 1 stored only the user's prior overrides; these were the defaults then.
_FORMAT_1_PRIORS: Mapping[str, float] = MappingProxyType(PRIORS_BEFORE_ISSUE_13)


@dataclass(frozen=True, eq=False)
class FitInfo:
    """What a fit is: method, model settings and the data's standardization, validated once.

    Build it with :meth:`from_tree` from any fit (``bl.fit``, ``bl.load_fit``); every
    analysis reads a fit through it.

    Attributes
    ----------
    method : str
        ``"mle"``, ``"map"``, ``"advi"`` or ``"nuts"``.
    K : int
        Number of skills.
    benchmarks : tuple of str
        All benchmarks, anchors first.
    floors : ndarray
        Chance-level floor of each benchmark.
    eps : float
        Scores were clipped into ``[eps, 1 - eps]``.
    dispersion : str
        ``"benchmark"`` or ``"covariates"``.
    parameterization : str
        How the family effects were sampled: ``"non-centered"``, ``"centered"`` or ``"partial"``.
    priors : mapping
        Every prior setting the model was built with (defaults merged with overrides).
    covariate_center, covariate_scale : ndarray
        Standardization of the covariates, one entry per term of ``covariates``.
    seed : int
    data_fingerprint : str
        Hash of the data fitted (:func:`data_fingerprint`).
    n_chains, n_draws : int
        Shape of the posterior group; a point estimate has one of each.
    covariates : tuple of str
        The design's terms (:mod:`bayes_lsl.design`; the paper's log size, log tokens and
        their product by default), the ``covariate`` coordinate of ``beta``.
    family_effects : str
        The family effects' distribution, ``"normal"`` (files before format 4) or
        ``"student-t"`` (degrees of freedom ``priors["family_df"]``, :attr:`family_df`).
    family_slopes : tuple of str or None
        The terms with random family slopes (``fit(..., family_slopes=...)``), or ``None``
        for the paper's model (and fits saved before the option).
    scores : str
        The scores' likelihood, ``"beta"`` (the paper's; files before format 6) or
        ``"beta-mixture"`` (weight ``score_eps`` in the posterior, precision factor
        ``priors["score_kappa"]``, :attr:`score_kappa`).
    format_version : int
    """

    method: str
    K: int
    benchmarks: tuple[str, ...]
    floors: np.ndarray
    eps: float
    dispersion: str
    parameterization: str
    priors: Mapping[str, float]
    covariate_center: np.ndarray
    covariate_scale: np.ndarray
    seed: int
    data_fingerprint: str
    n_chains: int = 1
    n_draws: int = 1
    covariates: tuple[str, ...] = COVARIATES
    family_effects: str = "normal"
    family_slopes: tuple[str, ...] | None = None
    scores: str = "beta"
    format_version: int = FORMAT_VERSION

    def __eq__(self, other: object) -> bool:
        # The generated __eq__ would compare the arrays element-wise and fail on their truth value.
        return isinstance(other, FitInfo) and self.attrs() == other.attrs()

    __hash__ = None

    @property
    def anchors(self) -> tuple[str, ...]:
        """The anchor benchmarks, one per skill."""
        return self.benchmarks[: self.K]

    @property
    def skills(self) -> list[str]:
        return [f"skill_{k + 1}" for k in range(self.K)]

    @property
    def has_draws(self) -> bool:
        """Whether the posterior holds draws (``advi``, ``nuts``) rather than one point."""
        return self.n_chains * self.n_draws > 1

    @property
    def parameters(self) -> tuple[str, ...]:
        """The structural parameters this fit's draws carry (``phi_a``, ``phi_s`` for ``phi``
        when the precision depends on the covariates, and ``score_eps`` with ``scores="beta-mixture"``)."""
        mixture = SCORE_PARAMETERS if self.scores == "beta-mixture" else ()
        if self.dispersion == "covariates":
            return ("beta", "lam", "b", *DISPERSION_PARAMETERS, "corr", *mixture)
        return (*PARAMETERS, *mixture)

    @property
    def family_df(self) -> float | None:
        """The family effects' degrees of freedom: None for normal ones."""
        return family_effects_df(self.family_effects, {**DEFAULT_PRIORS, **self.priors})

    @property
    def score_kappa(self) -> float | None:
        """The mixture's precision factor of its wide component: None for the Beta."""
        return score_mixture_kappa(self.scores, {**DEFAULT_PRIORS, **self.priors})

    @property
    def build_options(self) -> dict:
        """The options of :func:`bayes_lsl.build_model` that rebuild this fit's model (but ``centered``)."""
        return {"priors": dict(self.priors), "dispersion": self.dispersion, "family_effects": self.family_effects,
                "family_slopes": self.family_slopes, "scores": self.scores}

    @property
    def by_kind(self) -> bool:
        """Whether the design needs the models' kinds (terms with ``tuned``)."""
        return needs_kind(self.covariates)

    def standardize(
        self,
        size: Sequence[float] | np.ndarray,
        tokens: Sequence[float] | np.ndarray,
        kind: Sequence[str] | np.ndarray | None = None,
        models: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Covariates (model x covariate) of models with ``size`` (B) and ``tokens`` (T),
        and ``kind`` (``"base"``/``"tuned"``, for a design by kind), standardized as the
        fitted data were; ``models`` names them in messages."""
        raw = design_matrix(self.covariates, size, tokens, kind, models)
        return (raw - self.covariate_center) / self.covariate_scale

    def attrs(self) -> dict:
        """The attrs :func:`assemble` writes (plain values, as a file stores them)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["anchors"] = list(self.anchors)
        for key, value in out.items():
            if isinstance(value, np.ndarray):
                out[key] = [float(v) for v in value]
            elif isinstance(value, tuple):
                out[key] = list(value)
            elif isinstance(value, Mapping):
                out[key] = dict(value)
        return out

    @classmethod
    def from_tree(cls, tree: xr.DataTree) -> FitInfo:
        """Read and validate a fit's contract.

        Raises
        ------
        FitFileError
            The tree is not a fit, lacks a field, or comes from a newer format.
        """
        if not isinstance(tree, xr.DataTree):
            raise BayesLslError(f"expected a fit (an xarray.DataTree from bayes_lsl.fit), got {type(tree).__name__}")
        attrs = dict(tree.attrs)
        version = int(attrs.get("format_version", 1))
        if version > FORMAT_VERSION:
            raise FitFileError(
                f"the fit is in format {version}, written by bayes_lsl {attrs.get('bayes_lsl_version', '?')}; this "
                f"version ({__version__}) reads formats up to {FORMAT_VERSION}: upgrade bayes_lsl"
            )
        if version == 1:
            attrs = _upgrade_format_1(attrs)
        required = ("method", "K", "benchmarks", "floors", "covariate_center", "covariate_scale")
        missing = [key for key in required if key not in attrs]
        if "posterior" not in tree.children or missing:
            what = f"attrs {missing}" if missing else "a posterior group"
            raise FitFileError(f"not a fit: it lacks {what}")
        post = tree["posterior"]
        family_slopes = attrs.get("family_slopes")
        if family_slopes is not None:
            family_slopes = tuple(str(t) for t in np.atleast_1d(family_slopes))
        scores = str(attrs.get("scores", "beta"))
        wanted = [*POSTERIOR_VARS, *(SLOPE_PARAMETERS if family_slopes else ()),
                  *(SCORE_PARAMETERS if scores == "beta-mixture" else ())]
        absent = [v for v in wanted if v not in post.data_vars]
        if absent:
            raise FitFileError(f"not a fit: its posterior lacks {absent}")
        covariates = tuple(str(c) for c in np.atleast_1d(attrs.get("covariates", COVARIATES)))
        if len(covariates) != len(np.atleast_1d(attrs["covariate_center"])):
            raise FitFileError(
                f"the fit's covariates {list(covariates)} do not match its standardization "
                f"({len(np.atleast_1d(attrs['covariate_center']))} entries)"
            )
        return cls(
            method=str(attrs["method"]),
            K=int(attrs["K"]),
            benchmarks=tuple(str(b) for b in np.atleast_1d(attrs["benchmarks"])),
            floors=np.asarray(attrs["floors"], float),
            eps=float(attrs.get("eps", 1e-3)),
            dispersion=str(attrs.get("dispersion", "benchmark")),
            parameterization=str(attrs["parameterization"]),
            priors=MappingProxyType(dict(attrs["priors"])),
            covariate_center=np.asarray(attrs["covariate_center"], float),
            covariate_scale=np.asarray(attrs["covariate_scale"], float),
            seed=int(attrs.get("seed", 0)),
            data_fingerprint=str(attrs.get("data_fingerprint", "")),
            n_chains=int(post.sizes.get("chain", 1)),
            n_draws=int(post.sizes.get("draw", 1)),
            covariates=covariates,
            family_effects=str(attrs.get("family_effects", "normal")),
            family_slopes=family_slopes,
            scores=scores,
            format_version=FORMAT_VERSION,
        )


def _upgrade_format_1(attrs: dict) -> dict:
    """Format 1's attrs in today's terms: merged priors, the parameterization by name."""
    overrides = attrs.get("priors", "{}")
    if isinstance(overrides, str):
        overrides = ast.literal_eval(overrides)  # format 1 stored repr(dict) of floats
    centered = attrs.get("centered", False)
    return {
        **attrs,
        "priors": {**_FORMAT_1_PRIORS, **overrides},
        "parameterization": parameterization(centered),
    }


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
    K: int,
    method: str,
    seed: int,
    groups: dict[str, xr.Dataset],
    attrs: dict,
    *,
    dispersion: str,
    centered: bool | str,
    priors: Mapping[str, float] | None,
    family_effects: str = "normal",
    family_slopes: Sequence[str] | None = None,
    scores: str = "beta",
) -> xr.DataTree:
    """Put a method's groups together with the data and the :class:`FitInfo` every fit carries."""
    posterior = groups["posterior"]
    missing = [v for v in POSTERIOR_VARS if v not in posterior]
    if missing:
        raise RuntimeError(f"method {method!r} did not produce posterior variable(s) {missing}")
    info = FitInfo(
        method=method,
        K=int(K),
        benchmarks=tuple(data.benchmarks),
        floors=np.asarray(data.floors, float),
        eps=float(data.eps),
        dispersion=dispersion,
        parameterization=parameterization(centered),
        priors=merge_priors(priors),
        covariate_center=np.asarray(data.covariate_center, float),
        covariate_scale=np.asarray(data.covariate_scale, float),
        seed=int(seed),
        data_fingerprint=data_fingerprint(data),
        n_chains=int(posterior.sizes.get("chain", 1)),
        n_draws=int(posterior.sizes.get("draw", 1)),
        covariates=tuple(data.terms),
        family_effects=family_effects,
        family_slopes=None if family_slopes is None else tuple(family_slopes),
        scores=scores,
    )
    tree = xr.DataTree.from_dict({name: ds for name, ds in groups.items()} | {"constant_data": constant_data(data)})
    tree.attrs = {**info.attrs(), "bayes_lsl_version": __version__, "pymc_version": pm.__version__, **attrs}
    return tree


def point_posterior(values: Mapping[str, np.ndarray], model: pm.Model) -> xr.Dataset:
    """A one-chain, one-draw ``posterior`` group from point values of the model's variables."""
    names = [*POSTERIOR_VARS, *(n for n in (*DISPERSION_PARAMETERS, *SLOPE_PARAMETERS, *SCORE_PARAMETERS)
                                if n in values)]
    dims = {name: model.named_vars_to_dims.get(name, ()) for name in names}
    coords = {d: list(model.coords[d]) for ds in dims.values() for d in ds}
    return xr.Dataset(
        {name: (("chain", "draw", *dims[name]), np.asarray(values[name])[None, None]) for name in names},
        coords={"chain": [0], "draw": [0], **coords},
    )


def posterior_mean(tree: xr.DataTree, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """A fit's posterior mean of ``names`` (all posterior variables by default); the point
    itself for ``mle`` and ``map`` fits."""
    post = tree["posterior"].to_dataset()
    return {name: post[name].mean(SAMPLE_DIMS).values for name in (names or list(post.data_vars))}
