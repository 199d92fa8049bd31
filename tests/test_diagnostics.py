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
            "maxdepth_reached": (("chain", "draw"), np.zeros((chains, draws), bool)),
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
    assert repr(result).startswith(f"Diagnostics of {len(table)} entries (divergences ")
    assert "<table" in result._repr_html_()
    # One row per variable: alpha's entries summarized, each variable's worst entry named.
    by_var = result.by_variable
    assert list(by_var.index) == ["beta", "lam", "b", "phi", "corr", "alpha"]
    assert by_var.loc["alpha", "entries"] == n_families * K
    assert by_var.loc["alpha", "max_r_hat"] == table.loc[table["variable"] == "alpha", "r_hat"].max()
    assert table.loc[by_var.loc["lam", "worst"], "r_hat"] == by_var.loc["lam", "max_r_hat"]
    # nutpie records the transitions that hit the maximum tree depth.
    assert result.treedepth_saturated == int(nuts_fit["sample_stats"]["maxdepth_reached"].sum())
    # The summary is a headline and one line per variable: the family effects do not flood it.
    assert len(repr(result).split("\nFailing")[0].splitlines()) == 3 + len(by_var)  # headline, header, index name, rows


def test_well_mixed_draws_pass_quietly(nuts_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = diagnose(_iid_like(nuts_fit))
    table = result.table
    assert result.ok and not result.problems and (table["failed"] == "").all()
    assert repr(result).startswith(f"Diagnostics of {len(table)} entries (") and ": ok" in repr(result)
    assert result.treedepth_saturated == 0 and result.treedepth_share == 0.0
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


def test_sampler_checklist_low_bfmi_and_tree_depth(nuts_fit):
    """The rest of ArviZ's checklist: a chain whose energy moves like a random walk (low
    E-BFMI) and transitions that hit the maximum tree depth fail the fit, with what failed."""
    tree = _iid_like(nuts_fit)
    stats = tree["sample_stats"].to_dataset()
    rng = np.random.default_rng(1)
    # A random walk's successive differences are far smaller than its spread: E-BFMI near 0.
    stats["energy"][2] = np.cumsum(rng.normal(size=stats.sizes["draw"]))
    stats["maxdepth_reached"][0, :40] = True
    tree["sample_stats"] = xr.DataTree(stats)
    with pytest.warns(UserWarning, match=r"chain\(s\) \[2\] have E-BFMI below 0.3.*40 transitions hit the maximum"):
        result = diagnose(tree)
    assert result.bfmi_per_chain[2] < 0.3 < min(np.delete(result.bfmi_per_chain, 2))
    assert result.treedepth_saturated == 40 and result.treedepth_share == pytest.approx(40 / 4000)
    assert not result.ok and result.failed == []  # every entry mixes; the sampler does not


def test_rank_normalized_r_hat_sees_a_chain_with_another_scale(nuts_fit):
    """Rank-normalized R-hat (its folded part) flags a chain with the right location but
    four times the spread, which R-hat comparing chain means alone would not."""
    tree = _iid_like(nuts_fit)
    post = tree["posterior"].to_dataset()
    deviation = post["phi"] - post["phi"].mean(("chain", "draw"))
    post["phi"] = post["phi"] + xr.DataArray([0.0, 0, 0, 3.0], dims="chain") * deviation
    tree["posterior"] = xr.DataTree(post)
    with pytest.warns(UserWarning, match="fail"):
        result = diagnose(tree, var_names=("phi",))
    assert (result.table["r_hat"] > 1.01).all()
