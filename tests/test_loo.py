"""Grouped LOO: ArviZ's PSIS on the right log-likelihood for each group, Pareto k per group, refits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import bayes_lsl as bl
from bayes_lsl.errors import BayesLslError
from bayes_lsl.loo import _group_labels, _refit_group, _unconstrained
from bayes_lsl.selection import _loo_table

# High Pareto k on a short NUTS run is expected here: loo warns, the tests read the k column.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def family_loo(nuts_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a short run may leave a family with k > 0.7
        return bl.loo(nuts_fit, "family")


def test_cell_loo_is_arviz_loo(nuts_fit):
    import arviz as az

    ours = bl.loo(nuts_fit, "cell")
    ref = az.loo(nuts_fit, var_name="y", pointwise=True)
    assert ours.elpd_loo == pytest.approx(float(ref.elpd), abs=1e-6)
    assert ours.se == pytest.approx(float(ref.se), rel=1e-6)
    np.testing.assert_allclose(ours.table["pareto_k"], np.asarray(ref.pareto_k).ravel(), atol=1e-8)
    assert ours.p_loo == pytest.approx(float(ref.p), abs=1e-6)


def test_model_loo_sums_each_models_scores(nuts_fit, small_sim):
    data, _ = small_sim
    result = bl.loo(nuts_fit, "model")
    table = result.table
    assert table["group"].tolist() == list(data.models)
    np.testing.assert_array_equal(table["n_scores"], data.observed.sum(axis=1))
    assert (table["quantity"] == "conditional").all()  # every family has 4 models
    assert np.isfinite(table["pareto_k"]).all() and (table["how"] == "psis").all()
    np.testing.assert_allclose(table["p_loo"], table["lppd"] - table["elpd"])
    # A model's scores left out together lose more than each left out alone (they share the model).
    cells = bl.loo(nuts_fit, "cell")
    assert result.elpd_loo < cells.elpd_loo


def test_family_loo_integrates_the_family_effect(nuts_fit, family_loo, small_sim):
    data, _ = small_sim
    table = family_loo.table
    assert table["group"].tolist() == list(data.families) and (table["quantity"] == "integrated").all()
    expected = [data.observed[data.model_family == f].sum() for f in data.families]
    np.testing.assert_array_equal(table["n_scores"], expected)
    assert family_loo.elpd_loo < bl.loo(nuts_fit, "model").elpd_loo


def test_draws_map_to_the_marginal_likelihoods_layout(nuts_fit, small_sim):
    """The integrated log-likelihood's parameter vector reproduces each draw's parameters, and its
    value matches importance sampling of the same integral."""
    from bayes_lsl.fitting.marginal import MarginalLikelihood, family_modes
    from bayes_lsl.model import build_model

    data, _ = small_sim
    params = bl.parameter_draws(nuts_fit, n_draws=3, seed=1)
    ml = MarginalLikelihood(build_model(data, 2), data, 3)
    thetas = _unconstrained(ml, params, 2)
    for s, theta in enumerate(thetas):
        natural = ml.natural(theta)
        for name in ("beta", "lam", "b", "phi", "corr"):
            np.testing.assert_allclose(natural[name], params[name].values[s], atol=1e-10, err_msg=name)
    modes, _ = family_modes(ml, thetas[0])
    quadrature = ml.per_family(3)(thetas[0], modes)
    reference, se = ml.importance(thetas[0], modes, n_draws=4000, seed=0)
    assert np.all(np.abs(quadrature - reference) < 0.05 + 4 * se)


def test_a_model_alone_in_its_family_is_its_family():
    rep = xr.Dataset(coords={"model": ("cell", ["a1", "a1", "a2", "b1", "b1"]),
                             "family": ("cell", ["a", "a", "a", "b", "b"]),
                             "benchmark": ("cell", ["x", "y", "x", "x", "y"])})  # fmt: skip
    labels, integrated = _group_labels(rep, "model")
    assert labels.tolist() == ["a1", "a1", "a2", "b1", "b1"] and integrated == {"b1": "b"}
    labels, integrated = _group_labels(rep, "cell")
    assert labels.tolist()[0] == "a1|x" and integrated == {}


def test_loo_refuses_what_it_cannot_do(map_fit, nuts_fit):
    with pytest.raises(BayesLslError, match="a 'map' fit is a point"):
        bl.loo(map_fit)
    with pytest.raises(BayesLslError, match="group must be one of"):
        bl.loo(nuts_fit, "benchmark")
    with pytest.raises(BayesLslError, match="reloo"):
        bl.loo(nuts_fit, reloo="some")


def test_select_k_reports_the_grouped_loo(nuts_fit, small_sim):
    table = _loo_table({2: nuts_fit}, "model")
    by_model = bl.loo(nuts_fit, "model")
    assert table.loc[2, "loo_group"] == "model"
    assert table.loc[2, "elpd_loo"] == pytest.approx(by_model.elpd_loo)
    assert table.loc[2, "loo_high_k"] == by_model.n_high_k > 0  # a short run: some models' k > 0.7
    with pytest.raises(BayesLslError, match="loo_group"):
        bl.select_k(small_sim[0], [1], loo_group="benchmark", progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("group", ["family", "model"])
def test_exact_refit_agrees_with_psis_where_k_is_small(mle_fit, group):
    """Refitting without a group with a moderate k gives its PSIS value back (measured: within 0.13)."""
    from bayes_lsl.parameters import _fit_data

    result = bl.loo(mle_fit, group)
    row = result.table[result.table["pareto_k"] < 0.5].sort_values("pareto_k").iloc[-1]
    exact = _refit_group(_fit_data(mle_fit), {"method": "mle", "K": 2}, group, row["group"], seed=0, n_draws=1000,
                         nodes=3, fit_options={})  # fmt: skip
    assert exact == pytest.approx(row["elpd"], abs=0.5)
