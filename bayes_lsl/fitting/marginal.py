r"""The marginal likelihood: family effects integrated out by adaptive Gauss-Hermite quadrature.

For family :math:`l`, with :math:`h_l(\alpha) = \sum_{i \in l} \sum_j \log p(y_{ij} \mid \alpha
+ \beta^\top x_i) + \log p(\alpha)`, :math:`p(\alpha)` the family effects' prior
(:math:`\mathcal N(0, \Sigma)`, or the multivariate t with ``family_effects="student-t"``,
:func:`~bayes_lsl.model.likelihood.family_effect_logp`),

.. math::

    \log p(Y_l) = \log \int e^{h_l(\alpha)} d\alpha
    \approx \log |S_l| + \operatorname{logsumexp}_q
        \left[\log w_q - \log \varphi(z_q) + h_l(m_l + S_l z_q)\right],

where :math:`m_l` is (one Newton step from) the mode of :math:`h_l`, :math:`S_l S_l^\top`
the inverse of the curvature there (the scores' Fisher information plus the prior's
precision, positive definite everywhere), and :math:`(z_q, w_q)` a rule for the standard
normal: tensor-product Gauss-Hermite (``n**K`` nodes) or, where that grows too large, a
degree-3 spherical-radial cubature (2K nodes). Nodes fixed on the prior
:math:`\mathcal N(0, \Sigma)` are badly biased when a family's posterior is narrow
(hundreds of log-likelihood units on the paper data); placing them at each family's mode
makes a few nodes per dimension accurate. Importance sampling
(:meth:`MarginalLikelihood.importance`) gives the reference value at an optimum.

The likelihood itself comes from :mod:`bayes_lsl.model` (``score_logp``,
``corr_cholesky``): this module only integrates it.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import subprocess
import tempfile
import time
import warnings
from collections.abc import Mapping
from functools import cached_property

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import scipy.special
import scipy.stats
from pymc.initial_point import make_initial_point_fn
from pytensor.compile.mode import get_mode
from pytensor.graph.replace import graph_replace

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.model.build import model_family_effects, model_scores
from bayes_lsl.model.likelihood import (
    corr_cholesky,
    family_effect_logp,
    family_effect_weight,
    score_information,
    score_logp,
)

#: The rule named by a string instead of a number of nodes per dimension.
CUBATURE = "cubature"


def gauss_hermite(K: int, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss-Hermite rule for N(0, I_K): nodes (Q, K) and log-weights (Q,).

    The log-weights already include ``-log phi(z_q)``, the standard normal density
    that the rule integrates against.
    """
    z1, w1 = np.polynomial.hermite_e.hermegauss(n_nodes)
    w1 = w1 / np.sqrt(2 * np.pi)
    z = np.array(list(itertools.product(z1, repeat=K)))
    logw = np.array([np.log(w).sum() for w in itertools.product(w1, repeat=K)])
    return z, logw - _log_phi(z)


def spherical_radial(K: int) -> tuple[np.ndarray, np.ndarray]:
    """The degree-3 spherical-radial cubature rule for N(0, I_K): 2K nodes at ``±sqrt(K) e_k``.

    Exact for polynomials of total degree 3, with equal positive weights, so the
    objective stays a smooth log-sum of positive terms. Its cost grows linearly in K
    where the product rule's grows as ``n**K``; around each family's mode it is about as
    accurate as three Gauss-Hermite nodes per dimension (at the paper's K = 4 optimum:
    -0.85 against -2.0 for 81 nodes, each against a 625-node rule).
    """
    z = np.sqrt(K) * np.concatenate([np.eye(K), -np.eye(K)])
    return z, np.full(2 * K, -np.log(2 * K)) - _log_phi(z)


def quadrature_rule(K: int, nodes: int | str) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (Q, K) and log-weights (Q,) of a rule for N(0, I_K), the weights divided by phi.

    ``nodes`` is a number of Gauss-Hermite nodes per dimension (``nodes**K`` in all) or
    ``"cubature"`` (:func:`spherical_radial`, 2K nodes).
    """
    if nodes == CUBATURE:
        return spherical_radial(K)
    if isinstance(nodes, str) or int(nodes) < 1:
        raise BayesLslError(f"nodes must be a positive number of nodes per dimension or {CUBATURE!r}, got {nodes!r}")
    return gauss_hermite(K, int(nodes))


def _log_phi(z: np.ndarray) -> np.ndarray:
    return -0.5 * (z**2).sum(axis=1) - 0.5 * z.shape[1] * np.log(2 * np.pi)


#: PyTensor's C virtual machine: about twice as fast per call here as the default (Numba),
#: and compiled ops are cached across data sets and sessions.
COMPILE_MODE = os.environ.get("BAYES_LSL_PYTENSOR_MODE", "CVM")

#: g++ flags for this package's compiled functions, placed before PyTensor's own
#: ``gcc__cxxflags`` (so a user's flags there still win). PyTensor compiles every C module
#: with ``-O3 -g``; ``-O1 -g0`` cuts g++'s CPU time on a first K = 4 fit by 42% (163 -> 94
#: s) for the same values (to rounding); per call, side by side, the 3^4-node objective is 3
#: to 5% slower, the Laplace objective and the family curvature faster: the loops call
#: special functions (lgamma, digamma, trigamma) that the optimization level does not change
#: (``benchmarks/README.md``, "Compile cost per function"). ``BAYES_LSL_CXXFLAGS=""``
#: restores PyTensor's defaults.
COMPILE_CXXFLAGS = os.environ.get("BAYES_LSL_CXXFLAGS", "-O1 -g0")

#: Whether g++ reads the headers every PyTensor C module starts with (Python's, numpy's and
#: PyTensor's, about half of a small module's compile time) from a header precompiled once per
#: compile directory and flags (:func:`precompiled_header_flag`). ``BAYES_LSL_PCH=0``: off.
USE_PCH = os.environ.get("BAYES_LSL_PCH", "1") != "0"

#: The includes PyTensor puts at the top of every C module (``cmodule.DynamicModule`` and the
#: ops' ``c_headers``), Python.h first: a precompiled header named ``Python.h.gch`` that holds
#: them all replaces the first and turns the others into no-ops (their include guards).
_PCH_INCLUDES = ("<Python.h>", '"pytensor_mod_helper.h"', "<math.h>", "<numpy/arrayobject.h>",
                 "<numpy/arrayscalars.h>", "<numpy/npy_math.h>", "<vector>", "<algorithm>")  # fmt: skip

_PCH_FLAGS: dict[tuple[str, str], str] = {}


def precompiled_header_flag(cxxflags: str) -> str:
    """``-I<dir>`` of a directory holding ``Python.h.gch`` for these flags, or ``""`` where none can be built.

    g++ looks for ``Python.h.gch`` in each include directory before ``Python.h``; given first
    (PyTensor puts its flags before the include directories), this directory wins. g++ uses a
    precompiled header only where it was built with compatible options and compiler, and
    otherwise reads the real headers, so a stale or foreign one costs time, never
    correctness. Built once per compile directory, compiler flags and compiler (about one
    second); concurrent builds write to a temporary file and rename it.
    """
    memo = (cxxflags, str(pytensor.config.compiledir))
    if memo in _PCH_FLAGS:
        return _PCH_FLAGS[memo]
    flag = ""
    try:
        from pytensor.link.c.cmodule import GCC_compiler, std_include_dirs

        cxx = pytensor.config.cxx
        with pytensor.config.change_flags(gcc__cxxflags=cxxflags):
            # What PyTensor passes for every module (CLinker.compile_args, then the compiler's).
            args = ["-g", "-O3", "-fno-math-errno", *GCC_compiler.compile_args()]
        key = hashlib.sha256(repr((cxx, args, std_include_dirs())).encode()).hexdigest()[:16]
        folder = os.path.join(pytensor.config.compiledir, "bayes_lsl_pch", key)
        target = os.path.join(folder, "Python.h.gch")
        # PyTensor splits gcc__cxxflags at spaces: a folder with one cannot be passed.
        if " " in folder:
            cxx = ""
        if cxx and not os.path.exists(target):
            os.makedirs(folder, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                source = os.path.join(tmp, "headers.h")
                with open(source, "w") as f:
                    f.writelines(f"#include {h}\n" for h in _PCH_INCLUDES)
                out = os.path.join(tmp, "Python.h.gch")
                cmd = [cxx, "-x", "c++-header", *args, *(f"-I{d}" for d in std_include_dirs()), "-o", out, source]
                subprocess.run(cmd, check=True, capture_output=True, timeout=300)
                os.replace(out, target)
        flag = f"-I{folder}" if cxx and os.path.exists(target) else ""
    except (OSError, subprocess.SubprocessError, ImportError):
        flag = ""  # no compiler, no permission, a failed build: compile without it
    _PCH_FLAGS[memo] = flag
    return flag


#: Seconds spent in each compilation of this process, in order: (name, seconds). Read by
#: :func:`bayes_lsl.fitting.mle.fit_mle` for its ``compile_*`` attrs and by ``benchmarks/first_fit.py``.
COMPILE_LOG: list[tuple[str, float]] = []


def compile_function(inputs, outputs, name: str = "function"):
    """A PyTensor function in :data:`COMPILE_MODE`, its compile time logged in :data:`COMPILE_LOG`.

    Invalid Beta parameters (e.g. a failed Cholesky far from the optimum) give ``-inf``,
    which line searches back away from, instead of raising.
    """
    tic = time.perf_counter()
    mode = get_mode(COMPILE_MODE).including("local_check_parameter_to_ninf_switch")
    # The flags are part of PyTensor's cache key: other flags compile (and cache) other modules.
    cxxflags = f"{COMPILE_CXXFLAGS} {pytensor.config.gcc__cxxflags}".strip()
    if USE_PCH and COMPILE_MODE in ("CVM", "FAST_RUN", "C"):
        cxxflags = f"{precompiled_header_flag(cxxflags)} {cxxflags}".strip()
    with pytensor.config.change_flags(gcc__cxxflags=cxxflags):
        fn = pytensor.function(inputs, outputs, mode=mode, on_unused_input="ignore")
    COMPILE_LOG.append((name, time.perf_counter() - tic))
    return fn


def default_jobs() -> int:
    """Processes for the parallel parts of a fit: up to 2, one per core.

    ``BAYES_LSL_JOBS`` overrides (``1``: everything in this process).
    """
    return int(os.environ.get("BAYES_LSL_JOBS", min(2, os.cpu_count() or 1)))


#: The function that forked workers of :func:`fork_map` call (inherited, never pickled).
_FORK_FUNC = None


def _fork_call(item):
    return _FORK_FUNC(item)


def _can_fork(n_jobs: int) -> bool:
    """Whether work may go to forked processes: more than one job, ``fork`` available, and not
    inside a daemonic process (a ``multiprocessing.Pool`` worker, e.g. one fit of a parallel
    sweep, may not start processes of its own)."""
    return (
        n_jobs > 1
        and "fork" in multiprocessing.get_all_start_methods()
        and not multiprocessing.current_process().daemon
    )


def _forked(start):
    """``start()`` with Python's warning about fork() in a process with threads silenced: the
    threads are BLAS's and a progress bar's monitor, and the children only run compiled
    PyTensor code, numpy and g++."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
        return start()


def compile_ahead(compile_later, n_jobs: int | None = None):
    """Compile, in a forked process, a function this process will compile later.

    With an empty PyTensor cache a compilation is mostly g++ (seconds per function); a child
    started while this process computes on one core (the refinement) puts the function's C
    modules in the shared compile directory, so that compiling it here afterwards only loads
    them. With a warm cache the child only rewrites the graph, on the idle core. The child's
    function is discarded: compiled PyTensor functions cannot be sent between processes.

    Parameters
    ----------
    compile_later : callable
        ``() -> anything``: compiles what will be needed (e.g. a bound method).
    n_jobs : int, optional
        As in :func:`fork_map`; with one job (or no ``fork``) nothing is started.

    Returns
    -------
    callable
        ``wait()``: waits for the child (immediately where none was started).
    """
    if not _can_fork(default_jobs() if n_jobs is None else n_jobs):
        return lambda: None
    child = multiprocessing.get_context("fork").Process(target=compile_later, daemon=True)
    _forked(child.start)
    return child.join


def fork_map(func, items: list, n_jobs: int | None = None, on_done=None) -> list:
    """``[func(item) for item in items]``, in ``n_jobs`` forked processes where that is possible.

    Forked workers inherit ``func`` with its compiled PyTensor functions, which cannot be
    pickled and would cost tens of seconds to compile again; only the items and the results
    travel. Deterministic work gives the same numbers either way. Where ``fork`` is
    unavailable (Windows, macOS' default), in a daemonic process, or with one job or item, it
    runs in this process.
    ``on_done(i)`` is called after the i-th result (in order), e.g. to advance a progress bar.
    """
    global _FORK_FUNC
    n_jobs = min(default_jobs() if n_jobs is None else n_jobs, len(items))
    out: list = []
    if not _can_fork(n_jobs):
        for item in items:
            out.append(func(item))
            if on_done:
                on_done(len(out))
        return out
    _FORK_FUNC = func
    try:
        with _forked(lambda: multiprocessing.get_context("fork").Pool(n_jobs)) as pool:
            for result in pool.imap(_fork_call, items):
                out.append(result)
                if on_done:
                    on_done(len(out))
    finally:
        _FORK_FUNC = None
    return out


#: The free variables of the family effects (any parameterization, any distribution):
#: what the marginal likelihood integrates out.
FAMILY_EFFECT_VARIABLES: tuple[str, ...] = ("alpha_z", "alpha", "alpha_w")


def theta_pieces(model: pm.Model) -> tuple[pt.TensorVariable, dict, list[str]]:
    """The unconstrained parameter vector ``theta``, each value variable as a piece of it, and its labels.

    ``theta`` holds every free variable but the family effects (centered or not), which the
    marginal likelihood integrates out, flattened in the model's order on PyMC's
    unconstrained scale: the layout of :class:`MarginalLikelihood` and of an ``mle`` fit's
    ``param``; the labels name its entries, e.g. ``"beta[0]"``, ``"lam_anchor_log__[1]"``.
    """
    point = model.initial_point()
    theta, pieces, labels, k = pt.vector("theta"), {}, [], 0
    for v in model.value_vars:
        if model.values_to_rvs[v].name in FAMILY_EFFECT_VARIABLES:
            continue
        shape = tuple(int(d) for d in point[v.name].shape)
        n = int(np.prod(shape, dtype=int))
        pieces[v] = theta[k : k + n].reshape(shape)
        labels += [f"{v.name}[{i}]" for i in range(n)]
        k += n
    return theta, pieces, labels


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
    n_nodes : int or "cubature"
        The rule of the objective: Gauss-Hermite nodes per skill dimension (``n_nodes ** K``
        nodes per family) or the 2K-node cubature rule (see :func:`quadrature_rule`).
    """

    def __init__(self, model: pm.Model, data: ScalingData, n_nodes: int | str) -> None:
        K = self.K = len(model.coords["skill"])
        F = self.n_families = len(data.families)
        self.n_nodes = n_nodes
        #: The family effects' degrees of freedom (None: normal), as the model was built.
        self.df = df = model_family_effects(model)[1]
        #: The mixture's precision factor (None: the paper's Beta scores), as the model was built.
        self.kappa = kappa = model_scores(model)[1]
        #: Processes for the importance-sampling batches and the Hessian's columns
        #: (:func:`fork_map`; None: :func:`default_jobs`).
        self.n_jobs: int | None = None
        self._compiled: dict = {}
        #: labels: theta's entries, e.g. ``"beta[0]"`` (an ``mle`` fit's ``param``).
        theta, pieces, self.labels = theta_pieces(model)
        self._theta, self._pieces, self._model = theta, pieces, model
        self.names = [v.name for v in pieces]
        self.shapes = [tuple(int(d) for d in model.initial_point()[n].shape) for n in self.names]

        # The model's own expressions for the parameters, in terms of theta.
        exprs = model.replace_rvs_by_values([model[n] for n in ("beta", "lam", "b", "phi")])
        beta, lam, b, phi = graph_replace(exprs, pieces, strict=False)
        chol, _ = corr_cholesky(pieces[model.rvs_to_values[model["corr_z"]]], K)
        self._natural = {"beta": beta, "lam": lam, "b": b, "phi": phi, "corr": chol @ chol.T}
        eps = None
        if kappa is not None:  # the mixing weight: one more parameter, on the logit scale in theta
            (eps,) = graph_replace(model.replace_rvs_by_values([model["score_eps"]]), pieces, strict=False)
            self._natural["score_eps"] = eps

        rows, cols = np.nonzero(data.observed)
        y, floor = data.scores[rows, cols], data.floors[cols]
        cell_family = data.family_index[rows]
        phi_cell = phi[cols] if phi.ndim == 1 else phi[rows, cols]
        xb_cells = (pt.as_tensor(data.x) @ beta)[rows]

        def per_family_sum(values):
            """Sum (..., cells) values into (..., F) families: a scatter-add, not a dense matmul."""
            moved = pt.moveaxis(values, -1, 0)
            total = pt.zeros((F, *[moved.shape[i] for i in range(1, moved.ndim)]))
            return pt.moveaxis(pt.inc_subtensor(total[cell_family], moved), 0, -1)

        chol_inv = pt.linalg.inv(chol)

        def linear_predictor(alpha):
            """eta of every observed cell given family effects alpha (..., F, K)."""
            return ((alpha[..., cell_family, :] + xb_cells) * lam.T[cols]).sum(axis=-1) + b[cols]

        def family_loglik(alpha):
            """log p(Y_l | alpha_l) at alpha (..., F, K): the scores' log-likelihood per family."""
            return per_family_sum(score_logp(y, linear_predictor(alpha), floor, phi_cell, eps, kappa))

        def mahalanobis(alpha):
            """alpha' Sigma^-1 alpha at alpha (..., F, K)."""
            white = alpha @ chol_inv.T  # one K x K inverse, not a batched solve per node
            return (white**2).sum(axis=-1)

        def family_logdensity(alpha):
            """h_l at alpha (..., F, K): data log-likelihood per family plus the family effects' prior."""
            log_det = pt.log(pt.diagonal(chol)).sum()
            return family_loglik(alpha) + family_effect_logp(mahalanobis(alpha), log_det, K, df)

        # Adaptive quadrature around modes found at a nearby theta. The Newton step from
        # those modes and the curvature there are computed inside the graph, so that the
        # nodes follow each family's posterior as theta moves: with nodes (or only their
        # scales) frozen, the optimizer exploits the frozen rule by narrowing the family
        # posteriors, over-estimating the log-likelihood by tens of units on the paper data.
        modes = self._modes = pt.matrix("modes")  # (F, K)
        # The curvature is the Fisher information plus the prior's precision: positive
        # definite for every theta, unlike the observed Hessian far from the optimum. (For
        # the t prior, its Fisher-type curvature (nu + K) / (nu + q) Sigma^-1 at the modes,
        # positive definite where the t's own Hessian need not be.)
        g0 = pt.grad(family_logdensity(modes).sum(), modes)  # (F, K)
        lam_cells = lam.T[cols]  # (cells, K)

        def fisher_curvature(alpha):
            """The scores' Fisher information plus the prior's (Fisher-type) curvature at alpha (F, K)."""
            w = score_information(linear_predictor(alpha), floor, phi_cell, eps, kappa)  # (cells,)
            outer = w[:, None, None] * lam_cells[:, :, None] * lam_cells[:, None, :]
            prior_precision = chol_inv.T @ chol_inv
            if df is not None:
                prior_precision = family_effect_weight(mahalanobis(alpha), K, df)[:, None, None] * prior_precision
            return per_family_sum(pt.moveaxis(outer, 0, -1)).transpose(2, 0, 1) + prior_precision

        info = fisher_curvature(modes)
        # info = R R' (R lower); S = R'^{-1} then satisfies S S' = info^{-1}.
        self._R = _batched_cholesky(info, K)
        step = _solve_upper_t(self._R, _solve_lower(self._R, [g0[:, k] for k in range(K)]))
        self._center = modes + pt.stack(step, axis=1)
        self._family_logdensity = family_logdensity
        self._family_loglik, self._chol = family_loglik, chol

        # Curvature of h_l in alpha, for finding the modes. Families are independent, so
        # the gradient of the sum stacks the per-family gradients.
        alpha = pt.matrix("alpha")
        h = family_logdensity(alpha)
        g = pt.grad(h.sum(), alpha)
        H = pt.stack([pt.grad(g[:, j].sum(), alpha) for j in range(K)], axis=1)  # (F, K, K)
        # With the t prior also the Fisher-type curvature, for the steps where h_l is not
        # locally concave (see family_modes).
        outputs = [h, g, H] if df is None else [h, g, H, fisher_curvature(alpha)]
        self.family_curvature = compile_function([alpha, theta], outputs, "family_curvature")

    def _log_integrand(self, z: pt.TensorVariable) -> pt.TensorVariable:
        """log of h_l's exponential at ``center + R'^{-1} z`` times the scale's Jacobian.

        ``z`` is (Q, K), the same nodes for every family, or (Q, F, K); the result is (Q, F).
        """
        K = self.K
        rhs = [z[:, k][None, :] if z.ndim == 2 else z[:, :, k].T for k in range(K)]  # (1 or F, Q)
        offsets = _solve_upper_t(self._R, rhs)  # K x (F, Q)
        nodes = pt.stack(offsets, axis=-1).swapaxes(0, 1) + self._center[None]  # (Q, F, K)
        log_det = -sum(pt.log(self._R[k][k]) for k in range(K))
        return self._family_logdensity(nodes) + log_det

    @cached_property
    def _rule_inputs(self) -> tuple[pt.TensorVariable, pt.TensorVariable]:
        """Symbolic nodes (Q, K) and log-weights (Q,): the rule is an input of the compiled functions."""
        return pt.matrix("z"), pt.vector("logw")

    def _per_family_graph(self) -> pt.TensorVariable:
        """log p(Y_l) per family by the rule of the inputs ``z``, ``logw`` placed at ``center``, scale ``R'^{-1}``."""
        z, logw = self._rule_inputs
        return pt.logsumexp(self._log_integrand(z) + logw[:, None], axis=0)

    def importance(
        self, theta: np.ndarray, modes: np.ndarray, n_draws: int = 20_000, seed: int = 0, df: float = 5.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """log p(Y_l) per family by importance sampling, and its Monte Carlo standard error.

        The reference the rules are checked against: ``n_draws`` draws per family from a
        multivariate t (``df`` degrees of freedom, shape 1.5 times the adaptive rule's
        covariance) around each family's mode, so that the weights have finite variance
        even where the family's posterior has heavier tails than the normal.
        """
        fn = self.importance_function()
        K, F, scale = self.K, self.n_families, np.sqrt(1.5)
        rng = np.random.default_rng(seed)
        # Independent draws for each family, so that the families' errors do not add up.
        z = rng.standard_normal((n_draws, F, K)) / np.sqrt(rng.chisquare(df, (n_draws, F, 1)) / df) * scale
        log_q = scipy.stats.multivariate_t.logpdf(z.reshape(-1, K), shape=scale**2 * np.eye(K), df=df)
        # In batches: every draw evaluates the likelihood of every observed score.
        chunks = np.array_split(z, -(-n_draws // 200))
        # Two halves of the batches, one per worker (for fewer, larger transfers).
        halves = [h for h in (chunks[: len(chunks) // 2], chunks[len(chunks) // 2 :]) if h]
        log_w = np.concatenate(
            fork_map(lambda part: np.concatenate([fn(theta, modes, c) for c in part]), halves, self.n_jobs)
        )
        log_w = log_w - log_q.reshape(n_draws, F)
        estimate = scipy.special.logsumexp(log_w, axis=0) - np.log(n_draws)
        w = np.exp(log_w - estimate)  # relative weights, mean 1
        return estimate, w.std(axis=0) / np.sqrt(n_draws)

    def importance_function(self):
        """``(theta, modes, z) -> log integrand`` at per-family nodes ``z`` (Q, F, K), compiled once."""
        if "importance" not in self._compiled:
            z = pt.tensor3("z")
            self._compiled["importance"] = compile_function(
                [self._theta, self._modes, z], self._log_integrand(z), "importance"
            )
        return self._compiled["importance"]

    def prior_monte_carlo(
        self, theta: np.ndarray, n_draws: int = 100_000, seed: int = 0, batch: int = 200
    ) -> tuple[np.ndarray, np.ndarray]:
        """log p(Y_l) per family by plain Monte Carlo over the prior (the authors' estimator).

        The log of the mean of ``p(Y_l | alpha)`` over ``n_draws`` draws ``alpha ~ N(0, Sigma)``
        per family (independent draws for each family; from the t with
        ``family_effects="student-t"``). Unbiased for ``p(Y_l)`` but, by Jensen's
        inequality, biased *low* for its log, the more so the narrower a family's
        posterior is against the prior (most draws miss it): a check of how the authors'
        Monte Carlo objective reads at a given ``theta``, not a reference value (that is
        :meth:`importance`).

        Returns
        -------
        estimate, se : ndarray (F,)
            The log-mean-exp per family, and the standard error of the mean likelihood
            relative to its value (the delta-method standard error of the log).
        """
        if "prior" not in self._compiled:
            z = pt.tensor3("z")  # (Q, F, K) standard normal
            self._compiled["prior"] = compile_function([self._theta, z], self._family_loglik(z @ self._chol.T))
        fn = self._compiled["prior"]
        rng = np.random.default_rng(seed)
        # One running log-sum-exp (and sum of squared weights) per family, batch by batch:
        # 100,000 draws x 170 families x 4 skills would not fit in memory as one array.
        log_sum, log_sq = np.full(self.n_families, -np.inf), np.full(self.n_families, -np.inf)
        for start in range(0, n_draws, batch):
            z = rng.standard_normal((min(batch, n_draws - start), self.n_families, self.K))
            if self.df is not None:  # the t as a scale mixture of normals
                z = z / np.sqrt(rng.gamma(self.df / 2, 2 / self.df, size=(*z.shape[:2], 1)))
            loglik = fn(theta, z)
            log_sum = np.logaddexp(log_sum, scipy.special.logsumexp(loglik, axis=0))
            log_sq = np.logaddexp(log_sq, scipy.special.logsumexp(2 * loglik, axis=0))
        estimate = log_sum - np.log(n_draws)
        # Relative variance of the mean: (E[w^2] / E[w]^2 - 1) / n.
        rel_var = np.expm1(log_sq - np.log(n_draws) - 2 * estimate) / n_draws
        return estimate, np.sqrt(np.clip(rel_var, 0, None))

    def objective(self, n_nodes: int | str):
        """``(theta, modes) -> (log-likelihood, gradient)`` by the rule ``n_nodes``.

        One compiled function serves every rule (the Laplace screen's single node, the
        refinement's product rule or cubature, the Hessian's): the rule's nodes and weights
        are inputs, not constants, so the graph is rewritten and compiled once.
        """
        if "objective" not in self._compiled:
            value = self._per_family_graph().sum()
            inputs = [self._theta, self._modes, *self._rule_inputs]
            self._compiled["objective"] = compile_function(inputs, [value, pt.grad(value, self._theta)], "objective")
        return self._with_rule(self._compiled["objective"], n_nodes)

    def per_family(self, n_nodes: int | str):
        """``(theta, modes) -> log p(Y_l)`` for every family, by the rule ``n_nodes``."""
        if "per_family" not in self._compiled:
            inputs = [self._theta, self._modes, *self._rule_inputs]
            self._compiled["per_family"] = compile_function(inputs, self._per_family_graph(), "per_family")
        return self._with_rule(self._compiled["per_family"], n_nodes)

    def _with_rule(self, fn, n_nodes: int | str):
        z, logw = quadrature_rule(self.K, n_nodes)
        return lambda theta, modes: fn(theta, modes, z, logw)

    @property
    def value_and_grad(self):
        """The objective by the rule given at construction (see :meth:`objective`)."""
        return self.objective(self.n_nodes)

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

    def from_free_values(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """theta from values of the free variables on their own scale (``lam_anchor`` and
        ``phi`` positive ...), mapped by the model's transforms as PyMC maps initial values;
        variables left out (or not in this model) take the model's default."""
        free = {rv.name for rv in self._model.free_RVs}
        to_theta = make_initial_point_fn(model=self._model, jitter_rvs=set(), return_transformed=True,
                                         overrides={k: np.asarray(v, float) for k, v in values.items() if k in free})
        return self.flatten(to_theta(0))

    def free_values(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """The free variables (but the family effects) on their own scale at ``theta``: the
        inverse of :meth:`from_free_values`."""
        if "free" not in self._compiled:
            rvs = [self._model.values_to_rvs[v] for v in self._pieces]
            exprs = graph_replace(self._model.replace_rvs_by_values(rvs), self._pieces, strict=False)
            self._compiled["free"] = (compile_function([self._theta], exprs, "free"), [rv.name for rv in rvs])
        fn, names = self._compiled["free"]
        return dict(zip(names, fn(theta), strict=True))

    def hessian(
        self, theta: np.ndarray, modes: np.ndarray, n_nodes: int | str | None = None, step: float = 1e-5
    ) -> np.ndarray:
        """Hessian of the log-likelihood (rule ``n_nodes``, default the objective's) in theta.

        Central differences of the exact gradient: symbolic second derivatives of this
        graph take minutes to compile; 2 x dim(theta) gradient calls take seconds and are
        accurate to about ``step**2``.
        """
        grad = self.objective(self.n_nodes if n_nodes is None else n_nodes)

        def columns(block):
            return [(grad(theta + step * e, modes)[1] - grad(theta - step * e, modes)[1]) / (2 * step) for e in block]

        eye = np.eye(len(theta))
        blocks = [b for b in (eye[: len(theta) // 2], eye[len(theta) // 2 :]) if len(b)]
        H = np.concatenate(fork_map(columns, blocks, self.n_jobs))
        return 0.5 * (H + H.T)

    @cached_property
    def natural(self):
        """theta -> dict of ``beta``, ``lam``, ``b``, ``phi``, ``corr`` (and ``score_eps`` for the mixture)."""
        fn = compile_function([self._theta], list(self._natural.values()), "natural")
        return lambda th: dict(zip(self._natural, fn(th), strict=True))

    def natural_jacobian(self, theta: np.ndarray, step: float = 1e-6) -> np.ndarray:
        """Jacobian of the flattened natural parameters (in ``natural`` order) wrt theta, by central differences."""

        def flat(th):
            return np.concatenate([v.ravel() for v in self.natural(th).values()])

        return np.column_stack([(flat(theta + step * e) - flat(theta - step * e)) / (2 * step)
                                for e in np.eye(len(theta))])  # fmt: skip


# Small K x K linear algebra batched over families, unrolled into element-wise
# operations: PyTensor's batched linalg ops loop over the batch in Python, which made
# each evaluation several times slower. Matrices are nested lists of (F,) tensors.
def _batched_cholesky(A: pt.TensorVariable, K: int) -> list[list]:
    L = [[None] * K for _ in range(K)]
    for j in range(K):
        L[j][j] = pt.sqrt(A[:, j, j] - sum((L[j][k] ** 2 for k in range(j)), start=pt.as_tensor(0.0)))
        for i in range(j + 1, K):
            off = A[:, i, j] - sum((L[i][k] * L[j][k] for k in range(j)), start=pt.as_tensor(0.0))
            L[i][j] = off / L[j][j]
    return L


def _solve_lower(L: list[list], b: list) -> list:
    """Solve L y = b by forward substitution (b: K tensors of shape (F,) or (F, Q))."""
    y = []
    for i in range(len(b)):
        acc = b[i] - sum((_bc(L[i][k], b[i]) * y[k] for k in range(i)), start=pt.as_tensor(0.0))
        y.append(acc / _bc(L[i][i], b[i]))
    return y


def _solve_upper_t(L: list[list], b: list) -> list:
    """Solve L' x = b by back substitution."""
    K = len(b)
    x = [None] * K
    for i in reversed(range(K)):
        acc = b[i] - sum((_bc(L[k][i], b[i]) * x[k] for k in range(i + 1, K)), start=pt.as_tensor(0.0))
        x[i] = acc / _bc(L[i][i], b[i])
    return x


def _bc(v: pt.TensorVariable, like: pt.TensorVariable) -> pt.TensorVariable:
    """Broadcast a per-family (F,) value against a right-hand side of shape (F,) or (F, Q)."""
    return v[:, None] if like.ndim == 2 else v


def family_modes(
    parts: MarginalLikelihood,
    theta: np.ndarray,
    start: np.ndarray | None = None,
    tol: float = 1e-8,
    max_iter: int = 50,
) -> tuple[np.ndarray, np.ndarray]:
    """Each family's mode of ``h_l`` and ``S`` with ``S S' = (-H)^{-1}`` (H the Hessian there).

    Damped Newton, all families at once; a family's step is halved until its ``h_l``
    does not decrease. With Student-t family effects, Fisher scoring (the scores' Fisher
    information plus the t's curvature ``(nu + K) / (nu + q) Sigma^-1``) where ``h_l`` is not
    locally concave: the t's density flattens far out (and the scores' likelihood is flat
    beyond the link's bound), where a floored ``-H`` would step to a spurious, flat "mode"
    millions of units away.
    """
    F, K = parts.n_families, parts.K

    def evaluate(a):
        h, g, H, *fisher = parts.family_curvature(a, theta)
        curvature = nearest_positive_definite(-H)
        if fisher:
            concave = np.all(np.linalg.eigvalsh(-H) > 0, axis=-1)[:, None, None]
            # Floored too: far out the t's curvature vanishes, and with a near-singular Sigma the
            # scores' information plus it can be singular in floating point.
            curvature = np.where(concave, curvature, nearest_positive_definite(fisher[0]))
        return h, g, curvature, H

    def converged(old, new, _moved):
        return np.abs(new[0] - old[0]).max() < tol and np.abs(new[1]).max() < 1e-5

    a, (_, _, _, H) = damped_newton(evaluate, np.zeros((F, K)) if start is None else start, max_iter=max_iter,
                                    slack=1e-12, converged=converged)  # fmt: skip
    # A symmetric square root from the eigendecomposition: unlike a Cholesky factor of the
    # inverse it cannot fail when -H is nearly singular far from the optimum.
    w, V = np.linalg.eigh(nearest_positive_definite(np.where(np.isfinite(H), -H, np.eye(K))))
    return a, (V / np.sqrt(w)[..., None, :]) @ np.swapaxes(V, -1, -2)


def nearest_positive_definite(M: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """The symmetric part of ``M`` with its eigenvalues floored at ``floor``, batched over leading axes.

    ``floor=0`` gives the nearest positive semi-definite matrix (in the Frobenius norm).
    """
    M = 0.5 * (M + np.swapaxes(M, -1, -2))
    w, V = np.linalg.eigh(M)
    return (V * np.maximum(w, floor)[..., None, :]) @ np.swapaxes(V, -1, -2)


# ---------------------------------------------------------------- shared with the analyses
def damped_newton(
    evaluate, start: np.ndarray, *, max_iter: int = 50, tol: float = 1e-6, slack: float = 1e-9, converged=None
):
    """Maximize a batch of smooth functions by damped Newton steps, each element on its own.

    Parameters
    ----------
    evaluate : callable
        ``x (..., K) -> (h (...), g (..., K), C (..., K, K), extra)``: the values, their
        gradients, a positive-definite curvature to step with (``-H`` where that is positive
        definite, else a Fisher information or a floored ``-H``), and anything else the
        caller wants back at the optimum.
    start : ndarray (..., K)
    max_iter : int
        Newton steps at most.
    tol : float
        Stop when no element moves by more than this.
    slack : float
        A step is halved (up to 30 times) where ``h`` would drop by more than
        ``slack * (1 + |h|)`` (rounding).
    converged : callable, optional
        ``(state before, state after, largest move) -> bool``, checked after each step;
        default: the largest move is below ``tol``.

    Returns
    -------
    x : ndarray (..., K)
    state : tuple
        ``evaluate(x)``.
    """
    x = np.array(start, float)
    state = evaluate(x)
    for _ in range(max_iter):
        h, g, curvature = state[:3]
        step = _newton_step(curvature, g)
        t = np.ones(h.shape)
        for _ in range(30):
            trial = x + t[..., None] * step
            new = evaluate(trial)
            worse = ~(new[0] >= h - slack * (1 + np.abs(h)))
            if not worse.any():
                break
            t = np.where(worse, 0.5 * t, t)
        moved = np.max(np.abs(t[..., None] * step), initial=0.0)
        x, state, before = trial, new, state
        if (converged(before, state, moved) if converged else moved < tol):
            break
    return x, state


def _newton_step(curvature: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``curvature^-1 g``, batched; on the spectrum floored relative to its largest eigenvalue where
    the curvature is singular in floating point (a near-singular Sigma at a trial point)."""
    try:
        return np.linalg.solve(curvature, g[..., None])[..., 0]
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(0.5 * (curvature + np.swapaxes(curvature, -1, -2)))
        w = np.maximum(w, 1e-12 * np.maximum(np.abs(w).max(axis=-1, keepdims=True), 1e-300))
        return np.einsum("...kl,...l->...k", V, np.einsum("...lk,...l->...k", V, g) / w)


def natural_map(model: pm.Model, names) -> tuple[list[str], object]:
    """The map from the unconstrained parameters ``theta`` to the model's variables ``names``, from the model graph.

    ``theta`` holds every free variable but the family effects (which the marginal
    likelihood integrates out), flattened in the model's order on PyMC's unconstrained
    scale: the layout of :class:`MarginalLikelihood` and of an ``mle`` fit's ``param``.

    Returns
    -------
    labels : list of str
        ``theta``'s entries, e.g. ``"beta[0]"``, ``"lam_anchor_log__[1]"`` (an ``mle`` fit's ``param``).
    function : callable
        ``theta -> list`` of the values of ``names``.
    """
    theta, pieces, labels = theta_pieces(model)
    exprs = model.replace_rvs_by_values([model[n] for n in names])
    return labels, compile_function([theta], graph_replace(exprs, pieces, strict=False))
