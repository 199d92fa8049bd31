"""``diagnose``: one table of R-hat and ESS, plus the sampler's health."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from bayes_lsl import diagnose

K, J = 2, 6  # the shared fits (conftest.FIT_K) on small_sim

#: Entries per variable: beta (3 x K), lam without the anchor block's off-diagonal zeros,
#: b and phi (J), corr's strict lower triangle, and alpha (family x K).
N_PARAMETER_ENTRIES = 3 * K + (K * J - K * (K - 1)) + J + J + K * (K - 1) // 2


def _iid_like(fit: xr.DataTree, chains: int = 4, draws: int = 1000, seed: int = 0) -> xr.DataTree:
    """The fit with its posterior replaced by independent draws (constant entries kept)."""
    rng = np.random.default_rng(seed)
    post = fit["posterior"].to_dataset().isel(chain=[0] * chains, draw=[0] * draws)
    post = post.assign_coords(chain=np.arange(chains), draw=np.arange(draws))
    for name, da in post.data_vars.items():
        moving = (fit["posterior"][name].std(("chain", "draw")) > 1e-9).values
        post[name] = da + rng.normal(size=da.shape) * moving
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros((chains, draws), bool)),
            "energy": (("chain", "draw"), rng.normal(size=(chains, draws))),  # BFMI ~ 2
        }
    )
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    tree.attrs = dict(fit.attrs, minor_mode_chains=[])
    return tree


def test_one_row_per_parameter_entry(nuts_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 2 x 200 draws need not pass
        result = diagnose(nuts_fit)
    table = result.table
    n_families = nuts_fit.posterior.sizes["family"]
    assert len(table) == N_PARAMETER_ENTRIES + n_families * K and table.index.is_unique
    assert (table["variable"] == "alpha").sum() == n_families * K
    assert list(table.columns) == ["variable", "r_hat", "ess_bulk", "ess_tail", "failed"]
    assert "lam[skill_1, ifeval]" not in table.index  # a structural zero
    assert "corr[skill_1, skill_1]" not in table.index and "corr[skill_2, skill_1]" in table.index
    assert table[["r_hat", "ess_bulk", "ess_tail"]].notna().all().all()
    assert result.divergences == int(nuts_fit["sample_stats"]["diverging"].sum())
    assert len(result.bfmi_per_chain) == 2
    assert result.summary["divergences"] == result.divergences and "table" not in result.summary
    assert repr(result).startswith(f"Diagnostics of {len(table)} entries: ")
    assert "<table" in result._repr_html_()


def test_well_mixed_draws_pass_quietly(nuts_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = diagnose(_iid_like(nuts_fit))
    table = result.table
    assert result.ok and not result.problems and (table["failed"] == "").all()
    assert repr(result).startswith(f"Diagnostics of {len(table)} entries: ok")
    assert (table["r_hat"] < 1.01).all() and (table["ess_bulk"] > 400).all()


def test_failures_are_flagged_and_warned(nuts_fit):
    tree = _iid_like(nuts_fit)
    post = tree["posterior"].to_dataset()
    post["b"] = post["b"] + xr.DataArray([0.0, 0, 0, 3.0], dims="chain")  # one chain elsewhere
    tree["posterior"] = xr.DataTree(post)
    stats = tree["sample_stats"].to_dataset()
    stats["diverging"][1, :3] = True
    tree["sample_stats"] = xr.DataTree(stats)
    with pytest.warns(UserWarning, match=r"6 of .* fail .*'r_hat': 6.*3 divergent"):
        result = diagnose(tree)
    assert sorted(result.failed) == sorted(f"b[{b}]" for b in nuts_fit["posterior"].coords["benchmark"].values)
    assert result.table.loc["b[math]", "failed"].startswith("r_hat")
    assert result.divergences_per_chain == [0, 3, 0, 0] and not result.ok
    assert "FAILED" in repr(result) and "3 divergent transitions" in repr(result)


def test_point_fits_have_nothing_to_diagnose(map_fit):
    with pytest.raises(ValueError, match="need draws"):
        diagnose(map_fit)


def test_unknown_variable(nuts_fit):
    with pytest.raises(ValueError, match="unknown variable"):
        diagnose(nuts_fit, var_names=("lambda",))


def test_a_family_effect_that_does_not_mix_is_flagged(nuts_fit):
    """Every parameter mixes, but one family's effect sits elsewhere in one chain: the
    table and the warning show it."""
    tree = _iid_like(nuts_fit)
    post = tree["posterior"].to_dataset()
    family = str(post["family"].values[3])
    shift = xr.DataArray([0.0, 0, 0, 3.0], dims="chain") * (post["family"] == family) * (post["skill"] == "skill_2")
    post["alpha"] = post["alpha"] + shift
    tree["posterior"] = xr.DataTree(post)
    with pytest.warns(UserWarning, match=r"1 of .* fail"):
        result = diagnose(tree)
    assert result.failed == [f"alpha[{family}, skill_2]"]
    assert result.table.loc[f"alpha[{family}, skill_2]", "failed"].startswith("r_hat")
