r"""The latent-skill scaling-law model: its math, in one place.

For model :math:`i` of family :math:`l(i)` and benchmark :math:`j`:

.. math::

    \theta_i &= \alpha_{l(i)} + \beta^\top x_i,
        \qquad \alpha_l \sim \mathcal N(0, \Sigma),\ \Sigma \text{ a correlation matrix} \\
    \eta_{ij} &= \lambda_j^\top \theta_i + b_j \\
    \mu_{ij} &= C_j + (1 - C_j)\,\sigma(\eta_{ij}) \\
    Y_{ij} &\sim \mathrm{Beta}(\phi_j \mu_{ij},\ \phi_j (1 - \mu_{ij}))

With ``family_effects="student-t"`` the family effects are multivariate t instead
(:func:`family_effect_logp`, the one place their density is written).
With ``scores="beta-mixture"`` the scores are a scale mixture of two Betas with the same
mean, :math:`(1 - \epsilon)\,\mathrm{Beta}(\phi_j \mu_{ij}, \phi_j (1 - \mu_{ij})) + \epsilon\,
\mathrm{Beta}(\kappa \phi_j \mu_{ij}, \kappa \phi_j (1 - \mu_{ij}))` (heavier tails, the mean
unchanged): :func:`score_logp_shapes`, :func:`draw_scores`.
With ``family_slopes`` (random family slopes on chosen terms :math:`T` of the design),
:math:`\theta_i = \alpha_{l(i)} + (\beta + u_{l(i)})^\top x_i` with :math:`u_{l,t,k} =
\tau_{t,k} z_{l,t,k}`, :math:`z \sim N(0, 1)`, for :math:`t \in T` (zero elsewhere):
:func:`family_slope_effect`.

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
import scipy.special
from pymc.distributions.shape_utils import rv_size_is_none
from pytensor.graph.basic import Variable

from bayes_lsl.errors import BayesLslError

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


def corr_z_logp(z: pt.TensorVariable, K: int, eta) -> pt.TensorVariable:
    """LKJ(eta) log-density of a correlation, as a density of the unconstrained reals ``z``.

    :func:`lkj_cholesky_logp` of :func:`corr_cholesky` ``(z)`` plus the transform's
    log-Jacobian: the prior the model puts on ``corr_z`` (unnormalized).
    """
    chol, log_jac = corr_cholesky(z, K)
    return lkj_cholesky_logp(chol, eta) + log_jac


def lkj_cpc_shapes(K: int, eta: float) -> np.ndarray:
    """Shape ``a`` of the symmetric Beta(a, a) on (-1, 1) of each canonical partial correlation, in ``z``'s order.

    Under LKJ(eta) the partial correlation of skills ``i`` and ``j < i`` given skills
    ``0 .. j-1`` (entry ``tanh(z)`` that :func:`corr_cholesky` puts at ``L[i, j]``) is
    independent of the others with ``a = eta + (K - 2 - j) / 2`` (Lewandowski, Kurowicka &
    Joe 2009, the vine method); ``j = 0`` gives the marginal of a correlation,
    Beta(eta - 1 + K/2, eta - 1 + K/2).
    """
    return np.array([eta + (K - 2 - j) / 2.0 for i in range(K) for j in range(i)], float)


def draw_corr_z(K: int, eta: float, rng: np.random.Generator, size: tuple[int, ...] | None = None) -> np.ndarray:
    """Exact draws of ``z`` (shape ``size + (K(K-1)/2,)``) whose correlation is LKJ(eta)-distributed."""
    return _draw_cpc_z(lkj_cpc_shapes(K, float(eta)), rng, size)


def _draw_cpc_z(a: np.ndarray, rng: np.random.Generator, size) -> np.ndarray:
    """``arctanh`` of independent Beta(a, a) draws on (-1, 1)."""
    shape = (*(() if size is None else tuple(size)), len(a))
    a = np.broadcast_to(a, shape)
    cpc = 2.0 * rng.beta(a, a) - 1.0
    # Beta draws can round to exactly -1 or 1; keep z finite.
    return np.arctanh(np.clip(cpc, -1.0 + 1e-15, 1.0 - 1e-15))


def lkj_corr_z(name: str, K: int, eta: float, **kwargs) -> pt.TensorVariable:
    """The model's ``corr_z``: unconstrained reals with the LKJ(eta) prior on their correlation.

    A :class:`pymc.CustomDist` on the reals (no transform, so it is its own value
    variable, as the marginal likelihood expects) whose log-density is
    :func:`corr_z_logp` and whose draws are exact (independent canonical partial
    correlations with the shapes :func:`lkj_cpc_shapes`, its second parameter), so that
    ``pm.sample_prior_predictive`` and ``pm.sample_posterior_predictive`` work. Starts at
    ``z = 0`` (uncorrelated skills). ``kwargs`` (e.g. ``dims``) go to ``CustomDist``.
    """
    def draws(eta_, shapes, size):
        # Independent canonical partial correlations; size is the batch shape (or None).
        shape = shapes.shape if rv_size_is_none(size) else pt.concatenate([size, shapes.shape])
        cpc = 2.0 * pm.Beta.dist(shapes, shapes, shape=shape) - 1.0
        return pt.arctanh(pt.clip(cpc, -1.0 + 1e-15, 1.0 - 1e-15))

    def support_point(rv, size, eta_, shapes):
        return pt.zeros(rv.shape)

    return pm.CustomDist(
        name, float(eta), lkj_cpc_shapes(K, float(eta)), dist=draws,
        logp=lambda value, eta_, shapes: corr_z_logp(value, K, eta_),
        support_point=support_point, signature="(),(n)->(n)", **kwargs,
    )


def family_slope_effect(x_terms, slopes):
    r"""What the family slopes add to the skills: :math:`u_{l(i)}^\top x_{i,T}`, shape ``(..., model, skill)``.

    ``x_terms`` (model, slope_term) are the models' covariates on the chosen terms,
    ``slopes`` (..., model, slope_term, skill) each model's family slope (any leading
    draw dims). Written with operations that numpy arrays and PyTensor tensors share, so
    that the model (:func:`bayes_lsl.model.build_model`) and the predictions
    (:mod:`bayes_lsl.parameters`) use the same formula.
    """
    return (x_terms[:, :, None] * slopes).sum(axis=-2)


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


# ------------------------------------------------------------------ the scores' likelihood
#: The scores' likelihoods (``build_model(scores=...)``).
SCORE_LIKELIHOODS: dict[str, str] = {
    "beta": "Y_ij ~ Beta(phi_j mu_ij, phi_j (1 - mu_ij)) (the paper's model, the default)",
    "beta-mixture": "Y_ij ~ (1 - eps) Beta(phi_j mu_ij, phi_j (1 - mu_ij)) + eps Beta(kappa phi_j mu_ij, "
                    "kappa phi_j (1 - mu_ij)), eps = score_eps (free), kappa = priors['score_kappa'] (fixed)",
}


def score_mixture_kappa(scores: str, priors) -> float | None:
    """The wide component's precision factor: ``None`` for ``"beta"``, ``priors["score_kappa"]`` for ``"beta-mixture"``.

    Validates ``scores`` and, for the mixture, ``score_kappa`` (in (0, 1)) and the prior
    settings of ``score_eps`` (``score_eps_alpha``, ``score_eps_beta``, positive): errors
    name the offending argument.
    """
    if scores not in SCORE_LIKELIHOODS:
        raise BayesLslError(f"scores must be one of {sorted(SCORE_LIKELIHOODS)}, got {scores!r}")
    if scores == "beta":
        return None
    kappa = float(priors["score_kappa"])
    if not (np.isfinite(kappa) and 0 < kappa < 1):
        raise BayesLslError(f"priors['score_kappa'] (the wide component's share of the precision) must be in "
                            f"(0, 1), got {priors['score_kappa']!r}")  # fmt: skip
    for key in ("score_eps_alpha", "score_eps_beta"):
        value = float(priors[key])
        if not (np.isfinite(value) and value > 0):
            raise BayesLslError(f"priors[{key!r}] (of the Beta prior on score_eps) must be a positive number, "
                                f"got {priors[key]!r}")  # fmt: skip
    return kappa


def beta_logpdf(y, a, b):
    """Element-wise Beta(a, b) log-density at ``y``: PyTensor tensors or numpy arrays alike."""
    if any(isinstance(v, Variable) for v in (y, a, b)):
        return pm.logp(pm.Beta.dist(alpha=a, beta=b), y)
    a, b, y = np.asarray(a, float), np.asarray(b, float), np.asarray(y, float)
    return scipy.special.xlogy(a - 1.0, y) + scipy.special.xlog1py(b - 1.0, -y) - scipy.special.betaln(a, b)


def score_logp_shapes(y, a, b, eps=None, kappa: float | None = None):
    r"""Log-density of scores ``y`` given the main component's Beta shapes ``a``, ``b``.

    ``eps=None`` (or ``kappa=None``): the Beta. Otherwise the scale mixture of two Betas
    with the same mean,

    .. math::

        \log\left[(1 - \epsilon)\,\mathrm{Beta}(y \mid a, b)
            + \epsilon\,\mathrm{Beta}(y \mid \kappa a, \kappa b)\right],

    written as a log-sum-exp so that neither component under- or overflows. The one place
    the mixture's density is written: PyTensor tensors or numpy arrays alike (``eps``
    broadcasts against ``y``).
    """
    main = beta_logpdf(y, a, b)
    if eps is None or kappa is None:
        return main
    wide = beta_logpdf(y, kappa * a, kappa * b)
    if isinstance(main, Variable) or isinstance(eps, Variable):
        return pt.logaddexp(pt.log1p(-eps) + main, pt.log(eps) + wide)
    eps = np.asarray(eps, float)
    with np.errstate(divide="ignore"):  # eps = 0 is the Beta: log(0) + wide is -inf, which logaddexp ignores
        return np.logaddexp(np.log1p(-eps) + main, np.log(eps) + wide)


def score_logp(y, eta, floor, phi, eps=None, kappa: float | None = None) -> pt.TensorVariable:
    """Element-wise log-density of scores ``y`` given the linear predictor.

    The Beta (``eps=None``), or with ``eps`` and ``kappa`` the mixture of
    :func:`score_logp_shapes` (``scores="beta-mixture"``).
    """
    a, b = beta_parameters(eta, floor, phi)
    return score_logp_shapes(y, a, b, eps, kappa)


def _beta_information(eta, floor, phi) -> pt.TensorVariable:
    a, b = beta_parameters(eta, floor, phi)
    s = pt.sigmoid(pt.clip(eta, -ETA_BOUND, ETA_BOUND))
    dmu = (1.0 - floor) * s * (1.0 - s)
    return phi**2 * (pt.tri_gamma(a) + pt.tri_gamma(b)) * dmu**2


def score_information(eta, floor, phi, eps=None, kappa: float | None = None) -> pt.TensorVariable:
    """Fisher information of one score about its linear predictor ``eta``.

    The Beta's: ``phi^2 [psi'(phi mu) + psi'(phi (1 - mu))] (d mu / d eta)^2``, always
    positive, so sums of it make positive-definite curvature for placing quadrature nodes.
    For the mixture (``eps``, ``kappa``), the components' informations weighted by the
    mixing weights, ``(1 - eps) I(phi) + eps I(kappa phi)``: positive too, and an
    approximation (an upper bound, Fisher information being convex in the density) of
    the mixture's own, which has no closed form. It only places nodes and steps Newton's
    method: the values integrated are :func:`score_logp`'s.
    """
    info = _beta_information(eta, floor, phi)
    if eps is None or kappa is None:
        return info
    return (1.0 - eps) * info + eps * _beta_information(eta, floor, kappa * phi)


def draw_scores(a, b, rng: np.random.Generator, eps=None, kappa: float | None = None) -> np.ndarray:
    """Draws of scores given the main component's Beta shapes ``a``, ``b`` (numpy; any shape).

    The Beta, or for the mixture (``eps`` broadcasting against ``a``, ``kappa``): the wide
    component ``Beta(kappa a, kappa b)`` with probability ``eps``, else ``Beta(a, b)``. The
    one place a score is drawn (predictions, replicates). With ``eps=None`` the draws are
    ``rng.beta(a, b)`` exactly, as before the option.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if eps is None or kappa is None:
        return rng.beta(a, b)
    wide = rng.random(a.shape) < np.broadcast_to(np.asarray(eps, float), a.shape)
    scale = np.where(wide, kappa, 1.0)
    return rng.beta(scale * a, scale * b)


def score_mixture_dist(name: str, a, b, eps, kappa: float, **kwargs) -> pt.TensorVariable:
    """The model's observed scores under ``scores="beta-mixture"``: a :class:`pymc.CustomDist`
    whose log-density is :func:`score_logp_shapes` and whose draws pick the wide component
    with probability ``eps`` (so that prior and posterior predictive draws work).
    ``kwargs`` (``observed``, ``dims``) go to ``CustomDist``.
    """
    def draws(a_, b_, eps_, size):
        shape = a_.shape if rv_size_is_none(size) else size
        wide = pm.Bernoulli.dist(p=pt.broadcast_to(eps_, shape), shape=shape)
        scale = pt.switch(pt.eq(wide, 1), kappa, 1.0)
        return pm.Beta.dist(alpha=scale * a_, beta=scale * b_, shape=shape)

    return pm.CustomDist(
        name, a, b, eps, dist=draws,
        logp=lambda value, a_, b_, eps_: score_logp_shapes(value, a_, b_, eps_, kappa),
        **kwargs,
    )


def loadings(lam_anchor: pt.TensorVariable, lam_free: pt.TensorVariable) -> pt.TensorVariable:
    """The K x J loading matrix: a diagonal anchor block, then the free columns."""
    return pt.concatenate([pt.diag(lam_anchor), lam_free], axis=1)


# ------------------------------------------------------------------ family effects
#: The distributions of the family effects (``build_model(family_effects=...)``).
FAMILY_EFFECTS: dict[str, str] = {
    "normal": "alpha_l ~ N(0, corr) (the paper's model, the default)",
    "student-t": "alpha_l ~ multivariate t(nu, 0, corr), nu = priors['family_df'] (heavier tails)",
}


def family_effects_df(family_effects: str, priors) -> float | None:
    """The family effects' degrees of freedom: ``None`` for ``"normal"``, ``priors["family_df"]`` for ``"student-t"``.

    Validates both: an unknown ``family_effects`` or a ``family_df`` that is not a positive
    number is an error naming the argument.
    """
    if family_effects not in FAMILY_EFFECTS:
        raise BayesLslError(f"family_effects must be one of {sorted(FAMILY_EFFECTS)}, got {family_effects!r}")
    if family_effects == "normal":
        return None
    df = float(priors["family_df"])
    if not (np.isfinite(df) and df > 0):
        raise BayesLslError(f"priors['family_df'] (the family effects' degrees of freedom) must be a positive "
                            f"number, got {priors['family_df']!r}")  # fmt: skip
    return df


def family_effect_logp(q, log_det, K: int, df: float | None):
    r"""Log-density of a family effect :math:`\alpha` (K skills), from :math:`q = \alpha^\top \Sigma^{-1} \alpha`.

    ``log_det`` is :math:`\tfrac12 \log\det\Sigma` (the log-diagonal sum of its Cholesky
    factor). ``df=None``: the normal :math:`\mathcal N(0, \Sigma)`; otherwise the
    multivariate t with ``df`` degrees of freedom, location 0 and scale matrix
    :math:`\Sigma`, :math:`\log\Gamma(\frac{\nu+K}2) - \log\Gamma(\frac\nu2) - \frac K2
    \log(\nu\pi) - \tfrac12\log\det\Sigma - \frac{\nu+K}2 \log(1 + q/\nu)`. The one place the
    family effects' density is written: the marginal likelihood and the conditional family
    effects use it. PyTensor tensors or numpy arrays alike.
    """
    if df is None:
        return -0.5 * q - log_det - 0.5 * K * np.log(2 * np.pi)
    const = scipy.special.gammaln((df + K) / 2) - scipy.special.gammaln(df / 2) - 0.5 * K * np.log(df * np.pi)
    log1p = pt.log1p if isinstance(q, Variable) else np.log1p
    return const - log_det - 0.5 * (df + K) * log1p(q / df)


def family_effect_weight(q, K: int, df: float | None):
    r"""``-2 d log p / d q`` of :func:`family_effect_logp`: 1 (normal) or :math:`(\nu + K) / (\nu + q)` (t).

    The prior's gradient in :math:`\alpha` is :math:`-w\,\Sigma^{-1}\alpha`, and
    :math:`w\,\Sigma^{-1}` is a positive-definite (Fisher-type) curvature of its negative
    log-density, where the t's exact Hessian need not be.
    """
    return 1.0 if df is None else (df + K) / (df + q)


def family_effect_prior_derivatives(alpha: np.ndarray, prec: np.ndarray, df: float | None):
    r"""Gradient, Fisher-type curvature and Hessian of :func:`family_effect_logp` in :math:`\alpha`.

    ``alpha`` (..., K) and ``prec`` :math:`\Sigma^{-1}` (..., K, K), broadcast against each
    other (numpy). The curvature is :math:`w\Sigma^{-1}` (:func:`family_effect_weight`);
    the Hessian :math:`-w\Sigma^{-1} + \frac{2w}{\nu + q} (\Sigma^{-1}\alpha)(\Sigma^{-1}\alpha)^\top`
    for the t, :math:`-\Sigma^{-1}` for the normal.
    """
    K = alpha.shape[-1]
    p_alpha = np.einsum("...kl,...l->...k", prec, alpha)
    if df is None:
        return -p_alpha, np.broadcast_to(prec, (*p_alpha.shape, K)), -np.broadcast_to(prec, (*p_alpha.shape, K))
    q = (alpha * p_alpha).sum(-1)
    w = family_effect_weight(q, K, df)[..., None, None]
    curvature = w * prec
    outer = p_alpha[..., :, None] * p_alpha[..., None, :]
    return -w[..., 0] * p_alpha, curvature, -curvature + 2 * w / (df + q)[..., None, None] * outer


def draw_family_effects(chol: np.ndarray, df: float | None, rng: np.random.Generator, size: tuple[int, ...]):
    """Exact prior draws (``size + (K,)``) of family effects with scale factor ``chol`` (..., K, K).

    ``z L'``, divided by ``sqrt(w)``, ``w ~ Gamma(df/2, rate df/2)``, for the t: its scale
    mixture. ``chol`` broadcasts against ``size``'s leading dims.
    """
    K = chol.shape[-1]
    z = rng.standard_normal((*size, K))
    alpha = np.einsum("...kl,...l->...k", chol, z)
    if df is None:
        return alpha
    return alpha / np.sqrt(rng.gamma(df / 2, 2 / df, size=(*size, 1)))


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
