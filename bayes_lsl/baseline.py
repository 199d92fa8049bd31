"""The paper's strongest baseline: a per-benchmark sigmoid in log FLOPs with family intercepts.

For each benchmark ``j`` separately,

    mu_ij = c_j + (1 - c_j) sigmoid(a_j z_i + d_{l(i), j}),    z_i = standardized log(6 N_i D_i),

with a learned floor ``c_j`` in (0, 1), a slope ``a_j`` and a free intercept ``d_{l, j}`` for
each family ``l`` scored on ``j``, fitted to the observed scores. Unlike the latent-skill
model, benchmarks share nothing: each is a separate regression.

The authors fit it with PyTorch's SmoothL1 loss at ``beta = 0.01`` (``sloth/sloth.py`` in
their repository), quadratic for residuals below 0.01 and absolute above: close to least
absolute deviations, so a few badly fitted scores pull the curve much less than under
least squares. ``loss="smooth_l1"`` (the default) is that loss, ``loss="least_squares"``
the squared error.

The authors' baseline gives a point per score. So that it can be scored by proper rules
(CRPS, log predictive density, interval score: :mod:`bayes_lsl.scores`) next to the
latent-skill model, :meth:`SigmoidBaseline.predict_draws` makes it a predictive
distribution in the least assuming way that keeps its point predictions: the score is
Beta with the sigmoid as its mean and a precision ``phi_j`` per benchmark, estimated from
the training residuals as a quasi-likelihood dispersion is (McCullagh & Nelder 1989,
section 9.2): the Beta variance is ``mu (1 - mu) / (1 + phi)``, so the squared Pearson
residuals ``(y - mu)^2 / (mu (1 - mu))`` summed and divided by the residual degrees of
freedom ``n_j - p_j`` (``p_j``: the floor, the slope and one intercept per family) estimate
``1 / (1 + phi_j)``. Dividing by ``n_j`` instead (or maximizing the Beta likelihood at the
fitted means) would take the curve's in-sample fit for its accuracy: with a free intercept
per family, ``p_j`` is a large share of ``n_j``. A family without a training score on a
benchmark draws its intercept from a normal with the mean and standard deviation of the
fitted intercepts. It remains a plug-in predictive: the curve's and the intercepts'
estimation error is left out of each draw (as the point baseline leaves it out), so its
intervals can be expected to cover too little where the curve is extrapolated.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import least_squares, minimize
from scipy.sparse import csr_array
from scipy.special import expit, logit

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError

#: Ridge on the family intercepts. Tiny, so fitted means are unchanged to plotting precision;
#: it only keeps an intercept finite when a family's scores all sit at the floor or at 1.
RIDGE = 1e-6
#: The authors' SmoothL1 threshold: residuals (on the 0-1 score scale) below it count squared.
SMOOTH_L1_BETA = 0.01
LOSSES = ("smooth_l1", "least_squares")
#: Smallest Beta precision the residuals may give (a variance of mu (1 - mu) / 1.01).
MIN_PRECISION = 0.01


def log_flops(size: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Natural log of training compute ``6 N D``, with size in billions and tokens in trillions."""
    return np.log(6.0) + np.log(np.asarray(size, float) * 1e9) + np.log(np.asarray(tokens, float) * 1e12)


@dataclass(frozen=True, eq=False)
class SigmoidBaseline:
    """A fitted per-benchmark sigmoid baseline; build it with :func:`fit_baseline`.

    Attributes
    ----------
    benchmarks : tuple of str
        Benchmark names, in the data's order.
    families : tuple of str
        Families of the training data.
    slope, floor : ndarray, shape (J,)
        ``a_j`` and the learned floor ``c_j`` of each benchmark.
    intercept : ndarray, shape (L, J)
        ``d_{l, j}``; NaN where family ``l`` has no training score on benchmark ``j``.
    flops_center, flops_scale : float
        Mean and standard deviation of the training models' log FLOPs.
    loss : str
        The loss it was fitted with (see :func:`fit_baseline`).
    precision : ndarray, shape (J,), optional
        ``phi_j``: the Beta precision of each benchmark's scores about the fitted curve
        (for :meth:`predict_draws`; ``None`` in objects built without it).
    eps : float
        The training data's ``eps`` (scores clipped into ``[eps, 1 - eps]``), for scoring
        the log density as the latent-skill model's likelihood would.
    """

    benchmarks: tuple[str, ...]
    families: tuple[str, ...]
    slope: np.ndarray
    floor: np.ndarray
    intercept: np.ndarray
    flops_center: float
    flops_scale: float
    loss: str = "smooth_l1"
    precision: np.ndarray | None = None
    eps: float = 1e-3

    def predict(self, new_models: pd.DataFrame) -> pd.DataFrame:
        """Predicted mean score of new models on every benchmark.

        A family without a training score on a benchmark (a held-out family, say) gets the
        mean of the fitted family intercepts of that benchmark: the typical family.

        Parameters
        ----------
        new_models : DataFrame
            Columns ``model``, ``family``, ``size`` (billions of parameters) and ``tokens``
            (trillions of tokens); other columns are ignored.

        Returns
        -------
        DataFrame
            Columns ``model``, ``family``, ``benchmark``, ``mean``: one row per model and benchmark.

        Raises
        ------
        ValueError
            If a column is missing or a size or token count is not a positive number.
        """
        new, z, d = self._design(new_models)
        J = len(self.benchmarks)
        typical = np.nanmean(self.intercept, axis=0)
        mean = self.floor + (1.0 - self.floor) * expit(self.slope * z[:, None] + np.where(np.isnan(d), typical, d))
        return pd.DataFrame({
            "model": np.repeat(new["model"].to_numpy(), J),
            "family": np.repeat(new["family"].to_numpy(), J),
            "benchmark": np.tile(self.benchmarks, len(new)),
            "mean": mean.ravel(),
        })  # fmt: skip

    def predict_draws(self, new_models: pd.DataFrame, *, n_draws: int = 1000, seed: int = 0) -> xr.Dataset:
        """Draws of new models' scores from the baseline's predictive distribution.

        Each score is ``Beta(mu phi_j, (1 - mu) phi_j)`` about the fitted curve ``mu``; a
        family without a training score on benchmark ``j`` draws its intercept from
        ``N(mean_j, sd_j^2)``, the mean and standard deviation of the benchmark's fitted
        intercepts (see the module's notes). Seen families keep their fitted intercept.

        Parameters
        ----------
        new_models : DataFrame
            As in :meth:`predict`.
        n_draws : int
            Draws per score.
        seed : int
            Seeds the draws.

        Returns
        -------
        xarray.Dataset
            ``y``, ``mu`` and ``phi`` (sample, model, benchmark), as
            :func:`bayes_lsl.predict_draws` gives them for the latent-skill model.

        Raises
        ------
        BayesLslError
            If the baseline was built without ``precision`` (fit it with
            :func:`fit_baseline`), or as :meth:`predict`.
        """
        if self.precision is None:
            raise BayesLslError("precision: this baseline has no Beta precision; fit it with fit_baseline")
        if n_draws < 1:
            raise BayesLslError(f"n_draws must be at least 1, got {n_draws}")
        new, z, d = self._design(new_models)
        rng = np.random.default_rng(seed)
        center, spread = np.nanmean(self.intercept, axis=0), np.nanstd(self.intercept, axis=0, ddof=1)
        unseen = np.isnan(d)
        drawn = center + spread * rng.standard_normal((n_draws, *d.shape))
        d = np.where(unseen, drawn, d)  # (sample, model, benchmark)
        mu = self.floor + (1.0 - self.floor) * expit(self.slope * z[:, None] + d)
        phi = np.broadcast_to(self.precision, mu.shape)
        y = rng.beta(mu * phi, (1.0 - mu) * phi)
        dims = ("sample", "model", "benchmark")
        coords = {"sample": np.arange(n_draws), "model": new["model"].astype(str).to_numpy(),
                  "benchmark": list(self.benchmarks)}  # fmt: skip
        return xr.Dataset({"y": (dims, y), "mu": (dims, mu), "phi": (dims, np.array(phi))}, coords=coords)

    def _design(self, new_models: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Validated new models, their standardized log FLOPs, and their families' fitted
        intercepts (model x benchmark; NaN where the family has no training score)."""
        missing = [c for c in ("model", "family", "size", "tokens") if c not in new_models.columns]
        if missing:
            raise BayesLslError(f"new_models lacks column(s) {missing}; it needs model, family, size, tokens")
        new = new_models.reset_index(drop=True)
        for col in ("size", "tokens"):
            values = pd.to_numeric(new[col], errors="coerce")
            bad = np.flatnonzero(~(values > 0) | ~np.isfinite(values))
            if len(bad):
                i = bad[0]
                bad_value, model = new.at[i, col], new.at[i, "model"]
                raise BayesLslError(
                    f"column {col!r}: {bad_value!r} in row {i} (model {model!r}) is not a positive number"
                )
        z = (log_flops(new["size"], new["tokens"]) - self.flops_center) / self.flops_scale
        lookup = {f: i for i, f in enumerate(self.families)}
        unknown = np.full(len(self.benchmarks), np.nan)
        d = np.array([self.intercept[lookup[f]] if f in lookup else unknown for f in new["family"].astype(str)])
        return new, z, d.reshape(len(new), len(self.benchmarks))


def fit_baseline(data: ScalingData, loss: str = "smooth_l1") -> SigmoidBaseline:
    """Fit the sigmoid baseline to every benchmark of ``data``.

    Parameters
    ----------
    data : ScalingData
        Training scores; missing scores are skipped.
    loss : {"smooth_l1", "least_squares"}
        ``"smooth_l1"``: the authors' loss, SmoothL1 with ``beta = 0.01``
        (:data:`SMOOTH_L1_BETA`), robust to a few scores far from the curve;
        ``"least_squares"``: squared error.

    Returns
    -------
    SigmoidBaseline

    Raises
    ------
    ValueError
        For an unknown ``loss``.

    Notes
    -----
    With a free intercept per family, only the curvature within families pins down the floor;
    on the leaderboard several floors go to 0 (its chance floors are not imposed).
    """
    if loss not in LOSSES:
        raise BayesLslError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    x = log_flops(data.size, data.tokens)
    center, scale = float(x.mean()), float(x.std())
    z = (x - center) / scale
    L, J = len(data.families), data.n_benchmarks
    slope, floor, intercept = np.empty(J), np.empty(J), np.full((L, J), np.nan)
    precision = np.empty(J)
    for j in range(J):
        seen = data.observed[:, j]
        fams, fam = np.unique(data.family_index[seen], return_inverse=True)
        slope[j], floor[j], d = _fit_one(z[seen], fam, len(fams), data.scores[seen, j], data.floors[j], loss)
        intercept[fams, j] = d
        mu = floor[j] + (1.0 - floor[j]) * expit(slope[j] * z[seen] + d[fam])
        precision[j] = beta_precision(data.scores[seen, j], mu, n_parameters=2 + len(fams))
    return SigmoidBaseline(data.benchmarks, data.families, slope, floor, intercept, center, scale, loss, precision,
                           float(data.eps))  # fmt: skip


def beta_precision(y: np.ndarray, mu: np.ndarray, n_parameters: int) -> float:
    """Beta precision ``phi`` of scores ``y`` about fitted means ``mu``, from Pearson residuals.

    ``(n - p) / sum((y - mu)^2 / (mu (1 - mu))) - 1``: the squared Pearson residuals
    estimate ``1 / (1 + phi)``, and their sum is divided by the residual degrees of freedom
    ``n - p`` (``p = n_parameters``) rather than ``n``, as a dispersion is in
    quasi-likelihood (see the module's notes). At least :data:`MIN_PRECISION`.

    Raises
    ------
    BayesLslError
        If there are no residual degrees of freedom (``n <= n_parameters``).
    """
    dof = len(y) - n_parameters
    if dof < 1:
        raise BayesLslError(f"n_parameters: {n_parameters} parameters leave no residual degree of freedom "
                            f"in {len(y)} scores to estimate the precision")  # fmt: skip
    mu = np.clip(mu, 1e-9, 1 - 1e-9)
    pearson = float(np.sum((y - mu) ** 2 / (mu * (1 - mu))))
    return max(dof / max(pearson, 1e-300) - 1.0, MIN_PRECISION)


def _fit_one(
    z: np.ndarray, fam: np.ndarray, n_fam: int, y: np.ndarray, chance: float, loss: str
) -> tuple[float, float, np.ndarray]:
    """Fit one benchmark; parameters are (logit floor, slope, family intercepts)."""
    n, root_ridge = len(y), np.sqrt(RIDGE)

    def parts(theta):
        c, a, d = expit(theta[0]), theta[1], theta[2:]
        s = expit(a * z + d[fam])
        return c, d, s

    def residuals(theta):
        c, d, s = parts(theta)
        return np.concatenate([c + (1 - c) * s - y, root_ridge * d])

    # Each score touches three parameters: a sparse Jacobian, which also spares the dense SVD
    # (slow under BLAS thread contention) that least_squares would otherwise run.
    rows = np.concatenate([np.arange(n), np.arange(n), np.arange(n), n + np.arange(n_fam)])
    cols = np.concatenate([np.zeros(n, int), np.ones(n, int), 2 + fam, 2 + np.arange(n_fam)])

    def jacobian(theta):
        c, _, s = parts(theta)
        dmu_deta = (1 - c) * s * (1 - s)
        values = np.concatenate([c * (1 - c) * (1 - s), dmu_deta * z, dmu_deta, np.full(n_fam, root_ridge)])
        return csr_array((values, (rows, cols)), shape=(n + n_fam, 2 + n_fam))

    # Start at the chance floor (a floor of exactly 0 has no logit) and each family's mean score.
    c0 = float(np.clip(chance, 0.01, 0.9))
    fam_mean = np.bincount(fam, weights=y, minlength=n_fam) / np.bincount(fam, minlength=n_fam)
    d0 = logit(np.clip((fam_mean - c0) / (1 - c0), 0.02, 0.98))
    theta = least_squares(residuals, np.concatenate([[logit(c0), 1.0], d0]), jac=jacobian, tr_solver="lsmr").x
    if loss == "smooth_l1":
        # From the least-squares fit, L-BFGS on the SmoothL1 sum and its gradient J' psi(r). (scipy's
        # Huber loss in least_squares has the same minimizer, but at this small threshold it took
        # thousands of trust-region steps and stopped short of the optimum.) The tiny ridge goes
        # through the same loss; it only keeps intercepts finite.
        def objective(theta):
            value, psi = smooth_l1(residuals(theta))
            return value, jacobian(theta).T @ psi

        result = minimize(objective, theta, jac=True, method="L-BFGS-B",
                          options={"maxiter": 20_000, "maxfun": 40_000, "ftol": 1e-12, "gtol": 1e-9})  # fmt: skip
        if not result.success:
            warnings.warn(f"SmoothL1 fit of the baseline did not converge: {result.message}", stacklevel=3)
        theta = result.x
    return theta[1], expit(theta[0]), theta[2:]


def smooth_l1(residuals: np.ndarray, beta: float = SMOOTH_L1_BETA) -> tuple[float, np.ndarray]:
    """PyTorch's SmoothL1 loss summed over ``residuals``, and its derivative per residual.

    ``0.5 r^2 / beta`` where ``|r| < beta``, ``|r| - 0.5 beta`` elsewhere: continuous with a
    continuous first derivative, ``clip(r / beta, -1, 1)``.
    """
    size = np.abs(residuals)
    value = np.where(size < beta, 0.5 * residuals**2 / beta, size - 0.5 * beta)
    return float(value.sum()), np.clip(residuals / beta, -1.0, 1.0)
