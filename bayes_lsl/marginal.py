r"""The marginal likelihood: family effects integrated out by adaptive Gauss-Hermite quadrature.

For family :math:`l`, with :math:`h_l(\alpha) = \sum_{i \in l} \sum_j \log p(y_{ij} \mid \alpha
+ \beta^\top x_i) + \log \mathcal N(\alpha; 0, \Sigma)`,

.. math::

    \log p(Y_l) = \log \int e^{h_l(\alpha)} d\alpha
    \approx \log |S_l| + \operatorname{logsumexp}_q
        \left[\log w_q - \log \varphi(z_q) + h_l(m_l + S_l z_q)\right],

where :math:`m_l` is the mode of :math:`h_l`, :math:`S_l S_l^\top` the inverse of its
negative Hessian there, and :math:`(z_q, w_q)` a tensor-product Gauss-Hermite rule for
the standard normal. Nodes fixed on the prior :math:`\mathcal N(0, \Sigma)` are badly
biased when a family's posterior is narrow (hundreds of log-likelihood units on the paper
data); placing them at each family's mode makes a few nodes per dimension accurate.

The likelihood itself comes from :mod:`bayes_lsl.model` (``score_logp``,
``corr_cholesky``): this module only integrates it.
"""

from __future__ import annotations

import itertools
import os
from functools import cached_property

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import graph_replace
from pytensor.tensor.slinalg import solve_triangular

from bayes_lsl.data import ScalingData
from bayes_lsl.model import corr_cholesky, lkj_cholesky_logp, score_logp


def gauss_hermite(K: int, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss-Hermite rule for N(0, I_K): nodes (Q, K) and log-weights (Q,).

    The log-weights already include ``-log phi(z_q)``, the standard normal density
    that the rule integrates against.
    """
    z1, w1 = np.polynomial.hermite_e.hermegauss(n_nodes)
    w1 = w1 / np.sqrt(2 * np.pi)
    z = np.array(list(itertools.product(z1, repeat=K)))
    logw = np.array([np.log(w).sum() for w in itertools.product(w1, repeat=K)])
    log_phi = -0.5 * (z**2).sum(axis=1) - 0.5 * K * np.log(2 * np.pi)
    return z, logw - log_phi


#: PyTensor's C backend: several times faster per call than the default here.
COMPILE_MODE = os.environ.get("BAYES_LSL_PYTENSOR_MODE", "FAST_RUN")


def _compile(inputs, outputs):
    return pytensor.function(inputs, outputs, mode=COMPILE_MODE, on_unused_input="ignore")


class MarginalLikelihood:
    """The adaptive-quadrature marginal likelihood of a model, compiled for one data set.

    ``theta`` is the flat vector of the model's unconstrained parameters (every free
    variable except the family effects), laid out as in ``names`` and ``shapes``.

    Parameters
    ----------
    model : pm.Model
        From :func:`bayes_lsl.build_model` (non-centered family effects).
    data : ScalingData
        The data the model was built on.
    n_nodes : int
        Gauss-Hermite nodes per skill dimension (``n_nodes ** K`` nodes per family).
    """

    def __init__(self, model: pm.Model, data: ScalingData, n_nodes: int) -> None:
        K = self.K = len(model.coords["skill"])
        F = self.n_families = len(data.families)
        self.n_nodes = n_nodes
        value_vars = [v for v in model.value_vars if v.name != "alpha_z"]
        point = model.initial_point()
        self.names = [v.name for v in value_vars]
        self.shapes = [tuple(int(s) for s in point[n].shape) for n in self.names]
        theta = self._theta = pt.vector("theta")
        pieces, k = {}, 0
        for v, shape in zip(value_vars, self.shapes, strict=True):
            n = int(np.prod(shape, dtype=int))
            pieces[v] = theta[k : k + n].reshape(shape)
            k += n

        # The model's own expressions for the parameters, in terms of theta.
        exprs = model.replace_rvs_by_values([model[n] for n in ("beta", "lam", "b", "phi")])
        beta, lam, b, phi = graph_replace(exprs, pieces, strict=False)
        chol, _ = corr_cholesky(pieces[model.rvs_to_values[model["corr_z"]]], K)
        self._natural = {"beta": beta, "lam": lam, "b": b, "phi": phi, "corr": chol @ chol.T}

        rows, cols = np.nonzero(data.observed)
        y, floor = data.scores[rows, cols], data.floors[cols]
        cell_family = data.family_index[rows]
        phi_cell = phi[cols] if phi.ndim == 1 else phi[rows, cols]
        xb_cells = (pt.as_tensor(data.x) @ beta)[rows]
        one_hot = np.zeros((len(rows), F))
        one_hot[np.arange(len(rows)), cell_family] = 1.0

        def family_logdensity(alpha):
            """h_l at alpha (..., F, K): data log-likelihood per family plus the N(0, Sigma) prior."""
            theta_cells = alpha[..., cell_family, :] + xb_cells
            eta = (theta_cells * lam.T[cols]).sum(axis=-1) + b[cols]
            loglik = score_logp(y, eta, floor, phi_cell) @ one_hot
            white = solve_triangular(chol, pt.moveaxis(alpha, -1, -2), lower=True)  # (..., K, F)
            log_det = pt.log(pt.diagonal(chol)).sum()
            return loglik - 0.5 * (white**2).sum(axis=-2) - log_det - 0.5 * K * np.log(2 * np.pi)

        # Quadrature at nodes fixed by (modes, scales): a smooth function of theta.
        modes, scales = pt.matrix("modes"), pt.tensor3("scales")  # (F, K), (F, K, K)
        z, logw = gauss_hermite(K, n_nodes)
        nodes = modes[None] + pt.einsum("fkj,qj->qfk", scales, z)  # (Q, F, K)
        log_det = pt.log(pt.abs(pt.diagonal(scales, axis1=1, axis2=2))).sum(axis=1)
        self._per_family = pt.logsumexp(family_logdensity(nodes) + logw[:, None], axis=0) + log_det
        self._value = self._per_family.sum()
        self._inputs = [theta, modes, scales]
        self.value_and_grad = _compile(self._inputs, [self._value, pt.grad(self._value, theta)])
        self.per_family = _compile(self._inputs, self._per_family)

        # Curvature of h_l in alpha for placing the nodes. Families are independent, so
        # the gradient of the sum stacks the per-family gradients.
        alpha = pt.matrix("alpha")
        h = family_logdensity(alpha)
        g = pt.grad(h.sum(), alpha)
        H = pt.stack([pt.grad(g[:, j].sum(), alpha) for j in range(K)], axis=1)  # (F, K, K)
        self.family_curvature = _compile([alpha, theta], [h, g, H])

        # The joint log density over (theta, alpha): one node per family, cheap, used to
        # find starting points (a weak LKJ(2) term keeps the correlation off the boundary).
        joint = pt.vector("joint")
        h_joint = family_logdensity(joint[self.size :].reshape((F, K))).sum() + lkj_cholesky_logp(chol, 2.0)
        h_joint = graph_replace(h_joint, {theta: joint[: self.size]}, strict=False)
        self.joint_value_and_grad = _compile([joint], [h_joint, pt.grad(h_joint, joint)])

    @property
    def size(self) -> int:
        return int(sum(np.prod(s, dtype=int) for s in self.shapes))

    def unflatten(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        out, k = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            n = int(np.prod(shape, dtype=int))
            out[name] = theta[k : k + n].reshape(shape)
            k += n
        return out

    def flatten(self, values: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(values[n], float).ravel() for n in self.names])

    @cached_property
    def hessian(self):
        """(theta, modes, scales) -> Hessian of the quadrature wrt theta (compiled on first use)."""
        return _compile(self._inputs, pytensor.gradient.hessian(self._value, self._theta))

    @cached_property
    def natural(self):
        """theta -> dict of ``beta``, ``lam``, ``b``, ``phi``, ``corr``."""
        fn = _compile([self._theta], list(self._natural.values()))
        return lambda th: dict(zip(self._natural, fn(th), strict=True))

    @cached_property
    def natural_jacobian(self):
        """theta -> Jacobian of the flattened natural parameters (in ``natural`` order)."""
        flat = pt.concatenate([v.ravel() for v in self._natural.values()])
        return _compile([self._theta], pytensor.gradient.jacobian(flat, self._theta))


def family_modes(
    parts: MarginalLikelihood,
    theta: np.ndarray,
    start: np.ndarray | None = None,
    tol: float = 1e-8,
    max_iter: int = 50,
) -> tuple[np.ndarray, np.ndarray]:
    """Each family's mode of ``h_l`` and the Cholesky factor of the inverse negative Hessian there.

    Damped Newton, all families at once; a family's step is halved until its ``h_l``
    does not decrease.
    """
    F, K = parts.n_families, parts.K
    a = np.zeros((F, K)) if start is None else start.copy()
    h, g, H = parts.family_curvature(a, theta)
    for _ in range(max_iter):
        step = np.linalg.solve(_positive(-H), g[..., None])[..., 0]
        t = np.ones(F)
        for _ in range(30):
            h_new, g_new, H_new = parts.family_curvature(a + t[:, None] * step, theta)
            worse = ~(h_new >= h - 1e-12)
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
        a = a + t[:, None] * step
        done = np.abs(h_new - h).max() < tol
        h, g, H = h_new, g_new, H_new
        if done and np.abs(g).max() < 1e-5:
            break
    scales = np.linalg.cholesky(np.linalg.inv(_positive(-H)))
    return a, scales


def _positive(M: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """The nearest symmetric positive-definite matrices (eigenvalues floored), batched."""
    M = 0.5 * (M + np.swapaxes(M, -1, -2))
    w, V = np.linalg.eigh(M)
    return (V * np.maximum(w, floor)[..., None, :]) @ np.swapaxes(V, -1, -2)
