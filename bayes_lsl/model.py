r"""The latent-skill scaling-law model: its math, in one place.

For model :math:`i` of family :math:`l(i)` and benchmark :math:`j`:

.. math::

    \theta_i &= \alpha_{l(i)} + \beta^\top x_i,
        \qquad \alpha_l \sim \mathcal N(0, \Sigma),\ \Sigma \text{ a correlation matrix} \\
    \eta_{ij} &= \lambda_j^\top \theta_i + b_j \\
    \mu_{ij} &= C_j + (1 - C_j)\,\sigma(\eta_{ij}) \\
    Y_{ij} &\sim \mathrm{Beta}(\phi_j \mu_{ij},\ \phi_j (1 - \mu_{ij}))

The first K benchmarks anchor the K skills: the K x K block of ``lam`` on them is
diagonal and non-negative. Every fitting mode uses :func:`build_model` (and, for the
marginal likelihood, the helpers below), so this module is the only place the
likelihood is written down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_lsl.data import COVARIATES, DataError, ScalingData

#: Weakly informative priors; every entry can be overridden through ``priors=``.
DEFAULT_PRIORS: dict[str, float] = {
    "beta_sigma": 2.0,  # slopes of skills on standardized covariates
    "lam_sigma": 2.0,  # loadings (half-normal on the anchors)
    "b_sigma": 3.0,  # benchmark intercepts, logit scale
    "log_phi_mu": float(np.log(50.0)),  # Beta precision: median 50 ...
    "log_phi_sigma": 1.5,  # ... within a factor ~20 either way
    "phi_slope_sigma": 0.5,  # dispersion="covariates": slopes of log phi
    "lkj_eta": 2.0,  # LKJ shape of the skill correlation
}

#: Bound on the linear predictor inside the sigmoid: keeps mu strictly inside (0, 1) in
#: floating point (sigmoid(-30) ~ 1e-13) without ever binding at plausible values.
ETA_BOUND = 30.0


def n_params(K: int, J: int, p: int = len(COVARIATES), dispersion: str = "benchmark") -> int:
    """Number of free parameters, counted as in the paper (78 at K=4, J=12, p=3)."""
    extra = p * J if dispersion == "covariates" else 0
    return p * K + K + K * (J - K) + 2 * J + K * (K - 1) // 2 + extra


# --------------------------------------------------------------- building blocks
def corr_cholesky(z: pt.TensorVariable, K: int) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Cholesky factor of a K x K correlation matrix from K(K-1)/2 unconstrained reals.

    The reals map to canonical partial correlations ``tanh(z)`` (Stan's
    ``cholesky_factor_corr`` transform), so every ``z`` gives a valid, positive-definite
    correlation matrix. Returns the factor and the log-Jacobian of ``z -> L``.
    """
    cpc = pt.tanh(z)
    # log(1 - tanh(z)^2), written to stay finite for large |z|.
    log_jac = pt.sum(2.0 * (np.log(2.0) - z - pt.softplus(-2.0 * z)))
    rows, k = [], 0
    for i in range(K):
        row, sum_sq = [], pt.as_tensor(0.0)
        for _ in range(i):
            log_jac = log_jac + 0.5 * pt.log1p(-sum_sq)
            w = cpc[k] * pt.sqrt(1.0 - sum_sq)
            row.append(w)
            sum_sq = sum_sq + w**2
            k += 1
        row.append(pt.sqrt(1.0 - sum_sq))
        row += [pt.as_tensor(0.0)] * (K - i - 1)
        rows.append(pt.stack(row))
    return pt.stack(rows), log_jac


def lkj_cholesky_logp(L: pt.TensorVariable, eta: float) -> pt.TensorVariable:
    """Unnormalized LKJ(eta) log-density of a correlation matrix, given its Cholesky factor."""
    K = L.shape[0]
    i = pt.arange(1, K)
    return pt.sum((K - i - 1 + 2.0 * (eta - 1.0)) * pt.log(pt.diagonal(L)[1:]))


def beta_parameters(
    eta: pt.TensorVariable, floor: pt.TensorVariable, phi: pt.TensorVariable
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Beta shape parameters ``(phi mu, phi (1 - mu))`` with the floored mean.

    ``1 - mu`` is computed as ``(1 - C) sigmoid(-eta)`` rather than by subtraction, so
    that it keeps full precision near 1.
    """
    eta = pt.clip(eta, -ETA_BOUND, ETA_BOUND)
    mu = floor + (1.0 - floor) * pt.sigmoid(eta)
    one_minus_mu = (1.0 - floor) * pt.sigmoid(-eta)
    return phi * mu, phi * one_minus_mu


def score_logp(y, eta, floor, phi) -> pt.TensorVariable:
    """Element-wise Beta log-density of scores ``y`` given the linear predictor."""
    a, b = beta_parameters(eta, floor, phi)
    return pm.logp(pm.Beta.dist(alpha=a, beta=b), y)


def score_information(eta, floor, phi) -> pt.TensorVariable:
    """Fisher information of one score about its linear predictor ``eta``.

    ``phi^2 [psi'(phi mu) + psi'(phi (1 - mu))] (d mu / d eta)^2``: always positive, so
    sums of it make positive-definite curvature for placing quadrature nodes.
    """
    a, b = beta_parameters(eta, floor, phi)
    s = pt.sigmoid(pt.clip(eta, -ETA_BOUND, ETA_BOUND))
    dmu = (1.0 - floor) * s * (1.0 - s)
    return phi**2 * (pt.tri_gamma(a) + pt.tri_gamma(b)) * dmu**2


def loadings(lam_anchor: pt.TensorVariable, lam_free: pt.TensorVariable) -> pt.TensorVariable:
    """The K x J loading matrix: a diagonal anchor block, then the free columns."""
    return pt.concatenate([pt.diag(lam_anchor), lam_free], axis=1)


def _priors(priors: Mapping[str, float] | None) -> dict[str, float]:
    merged = dict(DEFAULT_PRIORS)
    unknown = set(priors or {}) - set(merged)
    if unknown:
        raise ValueError(f"unknown prior setting(s) {sorted(unknown)}; known: {sorted(merged)}")
    merged.update(priors or {})
    return merged


def check_K(data: ScalingData, K: int) -> int:
    """Validate the number of skills against the anchors and the data size."""
    if not isinstance(K, (int, np.integer)) or K < 1:
        raise DataError(f"K must be a positive integer, got {K!r}")
    if K > len(data.anchors):
        raise DataError(
            f"K={K} needs {K} anchor benchmarks, but only {len(data.anchors)} are available "
            f"({', '.join(data.anchors)})"
        )
    k_params = n_params(K, data.n_benchmarks)
    if data.observed.sum() <= k_params:
        raise DataError(f"{int(data.observed.sum())} observed scores cannot identify {k_params} parameters (K={K})")
    return int(K)


#: Ways to sample the family effects, by the value of ``build_model(centered=...)``.
PARAMETERIZATIONS: dict[object, str] = {
    False: "alpha = z L' with z iid N(0, 1) (non-centered; the default, and the marginal likelihood's)",
    True: "alpha ~ N(0, corr) sampled directly (centered)",
    "partial": "centered where a family has scores on the skill's anchor, non-centered given those "
    "where not; their mean absorbed into the intercepts, each skill in units of its anchor loading (for NUTS)",
}


def parameterization(centered: bool | str) -> str:
    """``"default"`` for ``centered`` in (False, True), else ``"partial"``; validates."""
    if isinstance(centered, (bool, np.bool_)):
        return "default"
    if centered == "partial":
        return "partial"
    raise ValueError(f"centered must be True, False or 'partial', got {centered!r}")


def _skill_scaled_coefficients(lam_anchor, pr, J: int, p: int) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    r"""Slopes and free loadings with each skill measured in units of its anchor loading :math:`s_k`.

    The likelihood depends on skill :math:`k` only through :math:`\lambda_{kj} \theta_{ik}`,
    unchanged when :math:`\theta_{\cdot k}` (``alpha`` and ``beta``) is multiplied by a factor and
    :math:`\lambda_{k\cdot}` divided by it: only the unit variance of the family effects pins
    that scale, a ridge along which the loadings, slopes and family effects of a skill
    move together. Sampled instead: the ratios :math:`r_{kj} = \lambda_{kj} / s_k`
    (``lam_ratio``) and :math:`\tilde\beta_{ck} = s_k \beta_{ck}` (``beta_scaled``), which the
    scores determine directly; the model's priors on ``lam_free`` and ``beta`` and the
    log-Jacobian :math:`((J - K) - p) \sum_k \log s_k` enter as potentials. (The family
    effects are scaled alike in :func:`_partially_centered_family_effects`.)
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


def _partially_centered_family_effects(
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
      :func:`_skill_scaled_coefficients`).

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

    The inverse of :func:`_partially_centered_family_effects` and
    :func:`_skill_scaled_coefficients`, for starting values (e.g. an MLE).
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


# --------------------------------------------------------------------- the model
def build_model(
    data: ScalingData,
    K: int = 4,
    priors: Mapping[str, float] | None = None,
    dispersion: str = "benchmark",
    centered: bool | str = False,
) -> pm.Model:
    """Build the PyMC model of the latent-skill scaling law.

    Parameters
    ----------
    data : ScalingData
        Validated scores; its first ``K`` benchmarks anchor the skills.
    K : int
        Number of latent skills.
    priors : dict, optional
        Overrides of :data:`DEFAULT_PRIORS`.
    dispersion : {"benchmark", "covariates"}
        ``"benchmark"``: one precision ``phi_j`` per benchmark (the paper's main model).
        ``"covariates"``: ``log phi_ij = a_j + x_i' s_j``, the authors' variant for
        prediction intervals.
    centered : bool or "partial"
        How the family effects are sampled (the model is the same for every choice; see
        :data:`PARAMETERIZATIONS`): ``False`` (the default), as ``L z`` with standard-normal
        ``z``; ``True``, directly; ``"partial"``, centered where a family has scores on the
        skill's anchor and non-centered given those where it has none, their mean over
        families absorbed into shifted intercepts, each skill measured in units of its
        anchor loading (see :func:`_partially_centered_family_effects`): the
        parameterization that mixes best under NUTS. The marginal likelihood (``mle``)
        needs ``False`` or ``True``.

    Returns
    -------
    pm.Model
        Coordinates ``model``, ``family``, ``benchmark``, ``skill``, ``covariate`` and
        ``cell`` (the observed scores, flattened). Variables ``beta`` (covariate, skill),
        ``lam`` (skill, benchmark), ``b`` (benchmark), ``phi`` (benchmark, or model x
        benchmark), ``corr`` (skill, skill), ``alpha`` (family, skill) and the observed
        ``y`` (cell). Missing scores are left out of the likelihood, not imputed.
    """
    K = check_K(data, K)
    if dispersion not in ("benchmark", "covariates"):
        raise ValueError(f"dispersion must be 'benchmark' or 'covariates', got {dispersion!r}")
    mode = parameterization(centered)
    pr = _priors(priors)
    skills = [f"skill_{k + 1}" for k in range(K)]
    rows, cols = np.nonzero(data.observed)
    coords = {
        "model": list(data.models),
        "family": list(data.families),
        "benchmark": list(data.benchmarks),
        "skill": skills,
        "anchor": list(data.benchmarks[:K]),
        "free_benchmark": list(data.benchmarks[K:]),
        "covariate": list(COVARIATES),
        "corr_entry": [f"{a},{b}" for i, a in enumerate(skills) for b in skills[:i]],
        "cell": [f"{data.models[r]}|{data.benchmarks[c]}" for r, c in zip(rows, cols, strict=True)],
        "skill_other": skills,
    }
    with pm.Model(coords=coords) as model:
        x = pm.Data("x", data.x, dims=("model", "covariate"))
        family = pm.Data("family_index", data.family_index, dims="model")
        floor = pm.Data("floor", data.floors, dims="benchmark")
        cell_model = pm.Data("cell_model", rows, dims="cell")
        cell_benchmark = pm.Data("cell_benchmark", cols, dims="cell")

        lam_anchor = pm.HalfNormal("lam_anchor", pr["lam_sigma"], dims="anchor")
        if mode == "partial":
            beta, lam_free = _skill_scaled_coefficients(lam_anchor, pr, J=data.n_benchmarks, p=len(COVARIATES))
        else:
            beta = pm.Normal("beta", 0.0, pr["beta_sigma"], dims=("covariate", "skill"))
            lam_free = pm.Normal("lam_free", 0.0, pr["lam_sigma"], dims=("skill", "free_benchmark"))
        lam = pm.Deterministic("lam", loadings(lam_anchor, lam_free), dims=("skill", "benchmark"))
        if mode == "default":
            b = pm.Normal("b", 0.0, pr["b_sigma"], dims="benchmark")

        # Correlation matrix through its Cholesky factor, with the LKJ prior and the
        # Jacobian of the transform added by hand (see corr_cholesky).
        corr_z = pm.Flat("corr_z", dims="corr_entry")
        chol, log_jac = corr_cholesky(corr_z, K)
        pm.Potential("corr_prior", lkj_cholesky_logp(chol, pr["lkj_eta"]) + log_jac)
        pm.Deterministic("corr", chol @ chol.T, dims=("skill", "skill_other"))

        if mode == "partial":
            layout = FamilyLayout.from_data(data, K)
            alpha, b = _partially_centered_family_effects(chol, lam, lam_anchor, beta, layout, pr["b_sigma"])
        elif centered:
            alpha = pm.MvNormal("alpha", mu=np.zeros(K), chol=chol, dims=("family", "skill"))
        else:
            alpha_z = pm.Normal("alpha_z", 0.0, 1.0, dims=("family", "skill"))
            alpha = pm.Deterministic("alpha", alpha_z @ chol.T, dims=("family", "skill"))

        if dispersion == "benchmark":
            phi = pm.LogNormal("phi", pr["log_phi_mu"], pr["log_phi_sigma"], dims="benchmark")
            phi_cell = phi[cell_benchmark]
        else:
            phi_a = pm.Normal("phi_a", pr["log_phi_mu"], pr["log_phi_sigma"], dims="benchmark")
            phi_s = pm.Normal("phi_s", 0.0, pr["phi_slope_sigma"], dims=("covariate", "benchmark"))
            phi = pm.Deterministic("phi", pt.exp(phi_a + x @ phi_s), dims=("model", "benchmark"))
            phi_cell = phi[cell_model, cell_benchmark]

        theta = pm.Deterministic("theta", alpha[family] + x @ beta, dims=("model", "skill"))
        eta = (theta[cell_model] * lam.T[cell_benchmark]).sum(axis=-1) + b[cell_benchmark]
        a_shape, b_shape = beta_parameters(eta, floor[cell_benchmark], phi_cell)
        pm.Beta("y", alpha=a_shape, beta=b_shape, observed=data.scores[rows, cols], dims="cell")
    return model
