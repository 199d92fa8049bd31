"""Standard errors at one optimum with PyTensor's g++ flags and with the package's default (issue 17).

Usage (from the repository root, with BAYES_LSL_DATA set)::

    python benchmarks/compile_flags_se.py

Fits the README quickstart (K = 4, ``mle``, seed 0) with the default settings, then, at its
optimum, recomputes the family modes, the finite-difference Hessian and the delta-method
standard errors of the natural parameters with functions compiled under each flag set
(``-O1 -g0`` with the precompiled header, and PyTensor's ``-O3 -g``), and prints the largest
relative difference: what the flags alone change, apart from where the optimizer stops.
"""

from __future__ import annotations

import numpy as np

import bayes_lsl as bl
from bayes_lsl.fitting import marginal
from bayes_lsl.fitting.marginal import MarginalLikelihood, family_modes
from bayes_lsl.fitting.mle import information_covariance


def main() -> None:
    data = bl.load_leaderboard()
    fit = bl.fit(data, K=4, method="mle", seed=0, progress=False)
    print("loglik", fit.attrs["marginal_loglik"], "objective", fit.attrs["marginal_loglik_objective"], flush=True)
    model = bl.build_model(data, K=4)
    theta = fit.mle["theta_hat"].values
    se = {}
    for name, flags, pch in [("new", "-O1 -g0", True), ("old", "", False)]:
        marginal.COMPILE_CXXFLAGS, marginal.USE_PCH = flags, pch
        parts = MarginalLikelihood(model, data, 3)
        modes, _ = family_modes(parts, theta)
        cov, _, _ = information_covariance(-parts.hessian(theta, modes), parts.labels)
        jac = parts.natural_jacobian(theta)
        se[name] = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", jac, cov, jac), 0, None))
        print(name, "objective at the optimum", parts.objective(3)(theta, modes)[0], flush=True)
    m = se["old"] > 0
    rel = np.abs(se["new"][m] - se["old"][m]) / se["old"][m]
    print("natural-parameter standard errors at the same optimum: largest relative difference", rel.max(),
          "median", np.median(rel))  # fmt: skip


if __name__ == "__main__":
    main()
