"""Proper scoring rules against closed forms, brute force and hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from bayes_lsl.errors import BayesLslError
from bayes_lsl.scores import crps, interval_score, log_predictive_density


def _normal_crps(mean: float, sd: float, y: np.ndarray) -> np.ndarray:
    """Closed form (Gneiting & Raftery 2007, eq. 21 evaluated for a normal)."""
    z = (y - mean) / sd
    return sd * (z * (2 * scipy.stats.norm.cdf(z) - 1) + 2 * scipy.stats.norm.pdf(z) - 1 / np.sqrt(np.pi))


def test_crps_of_a_normal_sample_is_the_closed_form():
    # 200,000 draws: the estimate's Monte Carlo sd is below 0.003 sd here; 0.01 leaves room.
    draws = np.random.default_rng(0).normal(0.3, 2.0, size=200_000)
    y = np.array([-4.0, 0.0, 0.3, 1.0, 6.0])
    np.testing.assert_allclose(crps(draws[:, None], y), _normal_crps(0.3, 2.0, y), atol=0.01 * 2.0)


def test_crps_equals_the_pairwise_sum_and_the_point_forecast_is_the_absolute_error():
    rng = np.random.default_rng(1)
    draws = rng.beta(2, 5, size=(30, 4, 3))  # draws on axis 1
    y = rng.uniform(size=(4, 3))
    got = crps(np.moveaxis(draws, 0, 1), y, axis=1)
    brute = np.abs(draws - y).mean(0) - np.abs(draws[:, None] - draws[None]).sum((0, 1)) / (2 * 30 * 29)
    np.testing.assert_allclose(got, brute, rtol=1e-12)
    assert crps(np.full(5, 0.4), 0.7) == pytest.approx(0.3)
    assert np.isnan(crps(draws, np.nan)).all()
    with pytest.raises(BayesLslError, match="at least 2 draws"):
        crps(np.ones((1, 3)), 0.5)


def test_interval_score_by_hand():
    lower, upper = np.array([0.2, 0.2, 0.2, 0.2]), np.array([0.5, 0.5, 0.5, 0.5])
    y = np.array([0.3, 0.1, 0.8, 0.5])
    # inside: the width; below by 0.1: 0.3 + 40 x 0.1; above by 0.3: 0.3 + 40 x 0.3; on the end: width.
    np.testing.assert_allclose(interval_score(lower, upper, y), [0.3, 4.3, 12.3, 0.3])
    np.testing.assert_allclose(interval_score(0.2, 0.5, 0.1, alpha=0.5), 0.3 + 4 * 0.1)
    with pytest.raises(BayesLslError, match="alpha"):
        interval_score(0.2, 0.5, 0.1, alpha=1.0)


def test_interval_score_is_proper_for_the_true_quantiles():
    # Expected score under N(0, 1) is smallest at the true 2.5% and 97.5% quantiles.
    y = np.random.default_rng(2).normal(size=400_000)
    q = scipy.stats.norm.ppf(0.975)
    expected = {c: interval_score(-c, c, y).mean() for c in (0.8 * q, q, 1.25 * q)}
    assert expected[q] < expected[0.8 * q] and expected[q] < expected[1.25 * q]


def test_log_predictive_density_of_one_beta_is_scipys():
    y = np.array([0.01, 0.3, 0.77, 0.999])
    got = log_predictive_density(np.full((1, 4), 2.5), np.full((1, 4), 7.0), y)
    np.testing.assert_allclose(got, scipy.stats.beta.logpdf(y, 2.5, 7.0), rtol=1e-12)


def test_log_predictive_density_is_the_log_mean_density_and_stable():
    a, b = np.array([2.0, 50.0, 3.0]), np.array([5.0, 20.0, 1.5])
    y = 0.4
    mixture = np.log(scipy.stats.beta.pdf(y, a, b).mean())
    assert log_predictive_density(a, b, y) == pytest.approx(mixture, rel=1e-12)
    # Densities of ~exp(-3000), all zero in floating point: the log is still finite and exact.
    sharp_a, sharp_b = np.array([9000.0, 9100.0]), np.array([1000.0, 900.0])
    logs = scipy.stats.beta.logpdf(0.5, sharp_a, sharp_b)
    assert np.all(np.exp(logs) == 0)
    assert log_predictive_density(sharp_a, sharp_b, 0.5) == pytest.approx(np.logaddexp(*logs) - np.log(2))


def test_log_predictive_density_clips_scores_on_the_boundary():
    a, b = np.array([[2.0]]), np.array([[3.0]])
    assert log_predictive_density(a, b, 0.0) == pytest.approx(scipy.stats.beta.logpdf(1e-3, 2.0, 3.0))
    assert log_predictive_density(a, b, 1.0, eps=1e-2) == pytest.approx(scipy.stats.beta.logpdf(0.99, 2.0, 3.0))
    assert np.isnan(log_predictive_density(a, b, np.nan))
