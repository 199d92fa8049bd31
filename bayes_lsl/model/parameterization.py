r"""How the family effects are sampled: the parameterizations of one model.

The model is the same for every choice (see :func:`bayes_lsl.model.build_model`); only the
sampler's coordinates differ. ``"partial"`` is the one NUTS mixes best on; this module
holds its change of variables and its inverse (for starting values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError, DataError

#: Ways to sample the family effects, by name; ``build_model(centered=...)`` takes
#: ``False``, ``True`` or ``"partial"`` for them, in this order.
PARAMETERIZATIONS: dict[str, str] = {
    "non-centered": "alpha = z L' with z iid N(0, 1) (the default, and the marginal likelihood's)",
    "centered": "alpha ~ N(0, corr) sampled directly",
    "partial": "centered where a family has scores on the skill's anchor, non-centered given those "
    "where not; their mean absorbed into the intercepts, each skill in units of its anchor loading (for NUTS)",
}
#: Attribute of a model from :func:`bayes_lsl.model.build_model` naming its parameterization.
_ATTRIBUTE = "bayes_lsl_parameterization"


def parameterization(centered: bool | str) -> str:
    """The name of the parameterization that ``build_model(centered=...)`` builds; validates."""
    if isinstance(centered, (bool, np.bool_)):
        return "centered" if centered else "non-centered"
    if centered == "partial":
        return "partial"
    raise BayesLslError(f"centered must be True, False or 'partial', got {centered!r}")


def model_parameterization(model: pm.Model) -> str:
    """The parameterization :func:`bayes_lsl.model.build_model` recorded on ``model``."""
    name = getattr(model, _ATTRIBUTE, None)
    if name is None:
        raise BayesLslError("the model was not built by bayes_lsl.build_model (or was copied): its "
                            "parameterization is unknown")
    return name


def record_parameterization(model: pm.Model, name: str) -> None:
    """Record on ``model`` how its family effects are sampled (read by :func:`model_parameterization`)."""
    setattr(model, _ATTRIBUTE, name)


def skill_scaled_coefficients(lam_anchor, pr, J: int, p: int) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    r"""Slopes and free loadings with each skill measured in units of its anchor loading :math:`s_k`.

    The likelihood depends on skill :math:`k` only through :math:`\lambda_{kj} \theta_{ik}`,
    unchanged when :math:`\theta_{\cdot k}` (``alpha`` and ``beta``) is multiplied by a factor and
    :math:`\lambda_{k\cdot}` divided by it: only the unit variance of the family effects pins
    that scale, a ridge along which the loadings, slopes and family effects of a skill
    move together. Sampled instead: the ratios :math:`r_{kj} = \lambda_{kj} / s_k`
    (``lam_ratio``) and :math:`\tilde\beta_{ck} = s_k \beta_{ck}` (``beta_scaled``), which the
    scores determine directly; the model's priors on ``lam_free`` and ``beta`` and the
    log-Jacobian :math:`((J - K) - p) \sum_k \log s_k` enter as potentials. (The family
    effects are scaled alike in :func:`partially_centered_family_effects`.)
    """
    K = len(pm.modelcontext(None).coords["skill"])
    ratio = pm.Flat("lam_ratio", dims=("skill", "free_benchmark"))
    beta_scaled = pm.Flat("beta_scaled", dims=("covariate", "skill"))
    log_s = pt.log(lam_anchor)
    lam_free = lam_anchor[:, None] * ratio
    beta = pm.Deterministic("beta", beta_scaled / lam_anchor, dims=("covariate", "skill"))
    lam_free_logp = pm.logp(pm.Normal.dist(0.0, pr["lam_sigma"]), lam_free).sum()
    pm.Potential("lam_free_prior", lam_free_logp + (J - K) * log_s.sum())
    pm.Potential("beta_prior", pm.logp(pm.Normal.dist(0.0, pr["beta_sigma"]), beta).sum() - p * log_s.sum())
    return beta, lam_free


def _zero_sum_basis(n: int) -> np.ndarray:
    """An orthonormal basis (n, n - 1) of the vectors of length n that sum to zero."""
    if n < 2:
        return np.zeros((n, 0))
    q, _ = np.linalg.qr((np.eye(n) - 1.0 / n)[:, : n - 1])
    return q


@dataclass(frozen=True)
class FamilyLayout:
    """Which family effects the sampler takes centered, and the covariates the shear uses.

    Skill ``k`` of family ``l`` is *informed* when some model of the family is scored on
    skill ``k``'s anchor benchmark; otherwise only the free loadings and the skill
    correlations speak to it.
    """

    informed: np.ndarray  # (family, skill) bool
    xbar: np.ndarray  # (family, covariate): mean covariates of each family's models

    @classmethod
    def from_data(cls, data: ScalingData, K: int) -> FamilyLayout:
        F = len(data.families)
        counts = np.bincount(data.family_index, minlength=F)
        xbar = np.stack([np.bincount(data.family_index, weights=col, minlength=F) for col in data.x.T], axis=1)
        informed = np.zeros((F, K), bool)
        np.logical_or.at(informed, data.family_index, data.observed[:, :K])
        unscored = [data.benchmarks[k] for k in np.flatnonzero(~informed.any(axis=0))]
        if unscored:
            raise DataError(f"anchor benchmark(s) {unscored} have no scores: they cannot anchor a skill")
        return cls(informed=informed, xbar=xbar / counts[:, None])

    def centered(self, k: int) -> np.ndarray:
        """Families whose skill ``k`` is sampled centered."""
        return np.flatnonzero(self.informed[:, k])

    def patterns(self) -> list[tuple[np.ndarray, list[int], list[int]]]:
        """``(families, informed skills, uninformed skills)`` for each pattern that occurs."""
        rows = np.unique(self.informed, axis=0)
        out = []
        for row in rows:
            fams = np.flatnonzero((self.informed == row).all(axis=1))
            out.append((fams, [int(k) for k in np.flatnonzero(row)], [int(k) for k in np.flatnonzero(~row)]))
        return out


def _conditional(corr, seen: list[int], unseen: list[int]):
    """Regression (unseen, seen) of skills on skills and the Cholesky factor of the residual covariance."""
    c_ss, c_su = corr[seen][:, seen], corr[seen][:, unseen]
    reg = pt.linalg.solve(c_ss, c_su, assume_a="pos").T
    return reg, pt.linalg.cholesky(corr[unseen][:, unseen] - reg @ c_su)


def partially_centered_family_effects(
    chol: pt.TensorVariable,
    lam: pt.TensorVariable,
    lam_anchor: pt.TensorVariable,
    beta: pt.TensorVariable,
    layout: FamilyLayout,
    b_sigma: float,
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    r"""Family effects sampled centered where the scores inform them, non-centered where they do not.

    The same prior, rows :math:`\alpha_l \sim N(0, \Sigma)` iid, with sampler coordinates
    chosen for NUTS (each change of variables is aimed at a direction a diagonal mass
    matrix could not follow, found in the leaderboard posterior):

    - *Informed effects centered, uninformed ones non-centered.* Where a family has scores
      on a skill's anchor (``layout.informed``), its scores pin the effect, and centered
      sampling mixes well. Where it has none (on the leaderboard: the HellaSwag skill of
      the 95 families scored only on v2 benchmarks), the effect follows its prior given the
      family's other skills, and a centered effect would couple to the correlations like a
      funnel. Those are sampled as :math:`\alpha_{lU} = A \alpha_{lO} + L_{U|O} z_l`,
      :math:`z_l \sim N(0, I)` (``alpha_z``), with :math:`A` and :math:`L_{U|O}` the
      regression on and the residual Cholesky factor given the informed skills :math:`O`.
    - *Mean into the intercepts.* Per skill, the centered effects are their mean
      :math:`m_k` (``alpha_mean``) plus deviations that sum to zero (``alpha_dev``, in an
      orthonormal basis), and the intercepts are sampled as :math:`c_j = b_j + \lambda_j^\top
      (m + \beta^\top \bar x)`; :math:`b` keeps its :math:`N(0, b_\sigma)` prior through a
      potential. The intercepts and the mean family effect, nearly confounded in the data,
      become a well-identified ``c`` and an ``m`` that mostly the prior informs.
    - *Family-level skills.* The deviations are those of :math:`\alpha_{lk} + \beta_k^\top
      \bar x_l`, the skill at the family's mean covariates (``layout.xbar``), which is what a
      family's scores pin down: training tokens barely vary within a family (0.6% of their
      variance on the leaderboard), so with :math:`\alpha` sampled directly a slope could
      only move with every family's effect at once.
    - *Skill units.* The deviations are in units of the anchor loadings :math:`s` (see
      :func:`skill_scaled_coefficients`).

    All maps are linear given the structural parameters; the log-Jacobian
    :math:`-\sum_k (n_k - 1) \log s_k` (:math:`n_k` centered families of skill :math:`k`)
    and the density of the informed effects, :math:`N(\alpha_{lO}; 0, \Sigma_{OO})`, enter as
    a potential. Returns the deterministics ``alpha`` (family, skill) and ``b``.
    """
    F, K = layout.informed.shape
    corr = chol @ chol.T
    m = pm.Flat("alpha_mean", dims="skill")
    n_dev = [max(len(layout.centered(k)) - 1, 0) for k in range(K)]
    u = pm.Flat("alpha_dev", shape=sum(n_dev)) if sum(n_dev) else pt.zeros(0)
    alpha, shift = pt.zeros((F, K)), []
    log_jac, offset = 0.0, 0
    for k in range(K):
        fams = layout.centered(k)
        xbar_mean = layout.xbar[fams].mean(axis=0)
        dev = pt.dot(_zero_sum_basis(len(fams)), u[offset : offset + n_dev[k]]) / lam_anchor[k]
        alpha = pt.set_subtensor(alpha[fams, k], m[k] + dev - pt.dot(layout.xbar[fams] - xbar_mean, beta[:, k]))
        shift.append(m[k] + pt.dot(xbar_mean, beta[:, k]))
        log_jac -= n_dev[k] * pt.log(lam_anchor[k])
        offset += n_dev[k]

    patterns = layout.patterns()
    n_z = sum(len(fams) * len(unseen) for fams, _, unseen in patterns)
    z = pm.Normal("alpha_z", 0.0, 1.0, shape=n_z) if n_z else pt.zeros(0)
    logp, offset = log_jac, 0
    for fams, seen, unseen in patterns:
        a_seen = alpha[fams][:, seen]
        if seen:
            l_seen = chol if len(seen) == K else pt.linalg.cholesky(corr[seen][:, seen])
            white = pt.linalg.solve_triangular(l_seen, a_seen.T, lower=True)
            logp += -0.5 * (white**2).sum() - len(fams) * pt.log(pt.diagonal(l_seen)).sum()
        if unseen:
            z_p = z[offset : offset + len(fams) * len(unseen)].reshape((len(fams), len(unseen)))
            offset += len(fams) * len(unseen)
            if seen:
                reg, l_cond = _conditional(corr, seen, unseen)
                a_unseen = a_seen @ reg.T + z_p @ l_cond.T
            else:
                a_unseen = z_p @ chol.T
            alpha = pt.set_subtensor(alpha[fams[:, None], np.array(unseen)[None, :]], a_unseen)
    pm.Potential("alpha_prior", logp)
    c = pm.Flat("c", dims="benchmark")  # b + lam' (m + beta' xbar): what the scores inform
    b = pm.Deterministic("b", c - pt.stack(shift) @ lam, dims="benchmark")
    pm.Potential("b_prior", pm.logp(pm.Normal.dist(0.0, b_sigma), b).sum())
    return pm.Deterministic("alpha", alpha, dims=("family", "skill")), b


def partially_centered_values(values: Mapping[str, np.ndarray], layout: FamilyLayout) -> dict[str, np.ndarray]:
    """The ``"partial"`` parameterization's free variables from ``alpha``, ``b``, ``beta``, ``lam``, ``corr``.

    The inverse of :func:`partially_centered_family_effects` and
    :func:`skill_scaled_coefficients`, for starting values (e.g. an MLE).
    """
    alpha, b, lam, beta, corr = (np.asarray(values[k], float) for k in ("alpha", "b", "lam", "beta", "corr"))
    K = lam.shape[0]
    s = np.diag(lam[:, :K]).copy()
    m, dev, shift = np.zeros(K), [], np.zeros(K)
    for k in range(K):
        fams = layout.centered(k)
        xbar_mean = layout.xbar[fams].mean(axis=0)
        m[k] = alpha[fams, k].mean()
        g = alpha[fams, k] - m[k] + (layout.xbar[fams] - xbar_mean) @ beta[:, k]
        dev.append(_zero_sum_basis(len(fams)).T @ (s[k] * g))
        shift[k] = m[k] + xbar_mean @ beta[:, k]
    z = []
    for fams, seen, unseen in layout.patterns():
        if not unseen:
            continue
        if seen:
            reg = np.linalg.solve(corr[np.ix_(seen, seen)], corr[np.ix_(seen, unseen)]).T
            l_cond = np.linalg.cholesky(corr[np.ix_(unseen, unseen)] - reg @ corr[np.ix_(seen, unseen)])
            resid = alpha[np.ix_(fams, unseen)] - alpha[np.ix_(fams, seen)] @ reg.T
        else:
            l_cond, resid = np.linalg.cholesky(corr), alpha[fams]
        z.append(np.linalg.solve(l_cond, resid.T).T.ravel())
    return {
        "alpha_mean": m,
        "alpha_dev": np.concatenate(dev),
        "alpha_z": np.concatenate(z) if z else np.zeros(0),
        "c": b + shift @ lam,
        "lam_anchor": s,
        "lam_ratio": lam[:, K:] / s[:, None],
        "beta_scaled": beta * s,
    }


def free_variables(values: Mapping[str, np.ndarray], K: int) -> dict[str, np.ndarray]:
    """The default parameterization's free variables from natural parameters, with any leading (draw) dims.

    ``lam`` splits into ``lam_anchor`` (its anchor block's diagonal) and ``lam_free``;
    ``corr`` becomes ``corr_z`` (:func:`~bayes_lsl.model.likelihood.corr_to_z`); ``beta``,
    ``b``, ``phi``, ``phi_a``, ``phi_s``, ``score_eps`` pass through where given. Values stay on their own
    scale (the positive ones are not logged).
    """
    from bayes_lsl.model.likelihood import corr_to_z

    lam = np.asarray(values["lam"], float)
    corr = np.asarray(values["corr"], float)
    lead = corr.shape[:-2]
    free = {k: np.asarray(values[k], float) for k in ("beta", "b", "phi", "phi_a", "phi_s", "score_eps")
            if k in values}
    free["lam_anchor"] = np.diagonal(lam[..., :K], axis1=-2, axis2=-1)
    free["lam_free"] = lam[..., K:]
    free["corr_z"] = np.array([corr_to_z(c) for c in corr.reshape(-1, K, K)]).reshape(*lead, K * (K - 1) // 2)
    return free
