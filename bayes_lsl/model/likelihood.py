r"""The latent-skill scaling-law model: its math, in one place.

For model :math:`i` of family :math:`l(i)` and benchmark :math:`j`:

.. math::

    \theta_i &= \alpha_{l(i)} + \beta^\top x_i,
        \qquad \alpha_l \sim \mathcal N(0, \Sigma),\ \Sigma \text{ a correlation matrix} \\
    \eta_{ij} &= \lambda_j^\top \theta_i + b_j \\
    \mu_{ij} &= C_j + (1 - C_j)\,\sigma(\eta_{ij}) \\
    Y_{ij} &\sim \mathrm{Beta}(\phi_j \mu_{ij},\ \phi_j (1 - \mu_{ij}))

The first K benchmarks anchor the K skills: the K x K block of ``lam`` on them is
diagonal and non-negative. This module is the only place the likelihood is written
down: :func:`bayes_lsl.model.build_model` assembles the PyMC model from these pieces, and
the marginal likelihood (``bayes_lsl.fitting.marginal``) and the parameter draws
(``bayes_lsl.parameters``) reuse them.
"""


from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

#: Bound on the linear predictor inside the sigmoid: keeps mu strictly inside (0, 1) in
#: floating point (sigmoid(-30) ~ 1e-13) without ever binding at plausible values.
ETA_BOUND = 30.0


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


def corr_to_z(corr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`corr_cholesky`: unconstrained reals of a correlation."""
    L = np.linalg.cholesky(np.asarray(corr, float))
    z = []
    for i in range(L.shape[0]):
        sum_sq = 0.0
        for j in range(i):
            z.append(np.arctanh(L[i, j] / np.sqrt(1.0 - sum_sq)))
            sum_sq += L[i, j] ** 2
    return np.array(z)
