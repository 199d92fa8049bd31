"""The Laplace approximation of a seen family's effect (``predict``, ``compare_families``)
against importance sampling of the same conditional posterior."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
import xarray as xr

from bayes_lsl.parameters import PARAMETERS, conditional_family_effects, family_cells, importance_family_effects

#: The accuracy asked of the approximation: its mean (the mode) within half a posterior
#: standard deviation of the exact mean, its standard deviations within 20%. Predictive
#: intervals add the Beta noise and the parameters' uncertainty on top, so errors of this
#: size in one family's effect move them by a fraction of their width.
MEAN_TOL, SD_RATIO = 0.5, (0.8, 1.25)


def _point(fit: xr.DataTree) -> xr.Dataset:
    """The fit's point estimate as one parameter draw."""
    return fit.posterior.to_dataset()[list(PARAMETERS)].isel(chain=0).rename(draw="sample")


def _compare(fit: xr.DataTree, families: list[str], n_draws: int = 20_000) -> dict[str, np.ndarray]:
    params, cells = _point(fit), family_cells(fit, families)
    floors = np.asarray(fit.attrs["floors"])
    mode, chol = conditional_family_effects(params, cells, len(families), floors)
    mean, cov, ess = importance_family_effects(params, cells, len(families), floors, n_draws=n_draws, seed=0)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    return {"mean_error": (mode - mean) / sd, "sd_ratio": np.sqrt((chol**2).sum(-1)) / sd, "ess": ess / n_draws}


def _check(result: dict[str, np.ndarray]) -> None:
    assert (result["ess"] > 0.5).all()  # the reference itself is reliable
    assert (np.abs(result["mean_error"]) < MEAN_TOL).all(), result["mean_error"]
    assert ((result["sd_ratio"] > SD_RATIO[0]) & (result["sd_ratio"] < SD_RATIO[1])).all(), result["sd_ratio"]


def _families(fit: xr.DataTree) -> list[str]:
    """The three families with the most models and three with a single model (the most
    skewed posteriors: one model's scores)."""
    counts = Counter(map(str, fit["constant_data"]["model_family"].values))
    return [f for f, _ in counts.most_common(3)] + [f for f, n in counts.items() if n == 1][:3]


def test_laplace_matches_importance_sampling_on_simulated_data(mle_fit):
    _check(_compare(mle_fit, [str(f) for f in mle_fit["constant_data"]["family"].values[:6]]))


@pytest.mark.slow
def test_laplace_matches_importance_sampling_on_the_paper_data(paper):
    """A K = 2 fit of the paper data (the sweep's cheaper settings: the check concerns the
    family effects given the parameters, not the optimum's last digits)."""
    import bayes_lsl as bl
    from bayes_lsl.selection import SWEEP_OPTIONS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # K = 2: a flat loading direction (priors' spread)
        fit = bl.fit(paper, K=2, method="mle", progress=False, **SWEEP_OPTIONS)
    _check(_compare(fit, _families(fit)))


# ------------------------------------------------ the shared numerical pieces
def test_nearest_positive_definite_floors_the_eigenvalues():
    from bayes_lsl.fitting.marginal import nearest_positive_definite

    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    M = (Q * np.array([3.0, 1.0, -2.0, 0.0])) @ Q.T
    M[0, 1] += 0.5  # not symmetric: its symmetric part is floored
    out = nearest_positive_definite(M, floor=0.1)
    np.testing.assert_allclose(out, out.T)
    w_in, w_out = np.linalg.eigvalsh(0.5 * (M + M.T)), np.linalg.eigvalsh(out)
    np.testing.assert_allclose(w_out, np.maximum(w_in, 0.1), atol=1e-12)
    np.linalg.cholesky(out)
    np.testing.assert_allclose(nearest_positive_definite(np.eye(3) * 2), np.eye(3) * 2)
    batch = nearest_positive_definite(np.stack([M, -M]), floor=0.0)  # batched; floor 0: semi-definite
    assert batch.shape == (2, 4, 4) and np.linalg.eigvalsh(batch).min() >= -1e-12


def test_damped_newton_finds_the_modes_of_a_batch():
    """Each element of a batch of concave functions (a quartic term makes Newton overshoot
    without damping) gets its own maximizer."""
    from bayes_lsl.fitting.marginal import damped_newton

    centers = np.array([[1.0, -2.0], [3.0, 0.5], [-4.0, 2.0]])

    def evaluate(x):
        d = x - centers
        h = -((d**2).sum(-1)) - 0.5 * (d**4).sum(-1)
        g = -2 * d - 2 * d**3
        curvature = np.einsum("...i,ij->...ij", 2 + 6 * d**2, np.eye(2))
        return h, g, curvature, "extra"

    x, state = damped_newton(evaluate, np.zeros((3, 2)), tol=1e-10)
    np.testing.assert_allclose(x, centers, atol=1e-8)
    assert state[3] == "extra" and np.allclose(state[0], 0.0)


def test_newton_step_survives_a_curvature_singular_in_floating_point():
    """A near-singular Sigma makes the family-mode curvature singular to LAPACK: the step stays finite."""
    from bayes_lsl.fitting.marginal import _newton_step

    rng = np.random.default_rng(0)
    regular = np.eye(3)[None] * 2.0 + 0.1
    g = rng.standard_normal((2, 3))
    v = np.array([1.0, 1.0, 0.0])
    singular = np.outer(v, v) + np.diag([0.0, 0.0, 1.0])  # rank 2: solve raises
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.solve(np.stack([regular[0], singular]), g[..., None])
    step = _newton_step(np.stack([regular[0], singular]), g)
    assert np.all(np.isfinite(step))
    # Where solve works, the step is exactly solve's.
    np.testing.assert_array_equal(_newton_step(regular, g[:1]), np.linalg.solve(regular, g[:1, :, None])[..., 0])
    # In the well-determined direction the floored step is the Newton one.
    assert step[1, 2] == pytest.approx(g[1, 2])
