"""Family comparisons from draw-based and mle fits."""

from __future__ import annotations

import numpy as np
import pytest

import bayes_lsl as bl


def test_nuts_comparison_is_the_posterior_difference(nuts_fit, small_sim):
    data, _ = small_sim
    a, b = data.families[:2]
    comp = bl.compare_families(nuts_fit, a, b)
    alpha = nuts_fit.posterior["alpha"]
    diff = (alpha.sel(family=b) - alpha.sel(family=a)).mean(("chain", "draw")).values
    np.testing.assert_allclose(comp.table["mean"].values, diff)
    assert comp.draws["difference"].dims == ("sample", "skill")
    assert ((comp.table.p_greater >= 0) & (comp.table.p_greater <= 1)).all()


def test_mle_comparison_covers_the_true_differences(mle_fit, small_sim):
    # Empirical-Bayes posteriors with parameter uncertainty: over 15 disjoint pairs of
    # families x 2 skills, the 95% intervals must cover the true difference of the drawn
    # effects about 95% of the time (>= 80% allows 3+ misses of 30 by chance).
    data, truth = small_sim
    covered = []
    for i in range(0, 30, 2):
        a, b = data.families[i], data.families[i + 1]
        comp = bl.compare_families(mle_fit, a, b, n_draws=400, seed=i)
        true = truth["alpha"][i + 1] - truth["alpha"][i]
        covered += list((comp.table["lower"].values <= true) & (true <= comp.table["upper"].values))
    assert np.mean(covered) >= 0.8


def test_comparison_reproducible_and_plots(mle_fit, small_sim):
    data, _ = small_sim
    a, b = data.families[:2]
    one = bl.compare_families(mle_fit, a, b, n_draws=300, seed=3)
    two = bl.compare_families(mle_fit, a, b, n_draws=300, seed=3)
    np.testing.assert_array_equal(one.table.values, two.table.values)
    fig = one.plot()
    assert len([ax for ax in fig.axes if ax.get_visible()]) == mle_fit.attrs["K"]


def test_comparison_errors(mle_fit, small_sim):
    data, _ = small_sim
    with pytest.raises(bl.DataError, match="not in the fit"):
        bl.compare_families(mle_fit, data.families[0], "no-such-family")
    with pytest.raises(ValueError, match="different"):
        bl.compare_families(mle_fit, data.families[0], data.families[0])
