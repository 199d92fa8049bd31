"""Saving and loading fits."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from shared import assert_round_trip

from bayes_lsl import load_fit, save_fit
from bayes_lsl.errors import FitFileError
from bayes_lsl.fitting.result import FORMAT_VERSION, FitInfo
from bayes_lsl.model.parameterization import parameterization
from bayes_lsl.model.priors import PRIORS_BEFORE_ISSUE_13


@pytest.mark.parametrize("which", ["map_fit", "nuts_fit"])
def test_round_trip(which, request, tmp_path, small_sim):
    """A fit read back is the fit. The shared fits are themselves read back from their files
    (tests/shared.py, which checks them against the fits as made): here, once more."""
    fit = request.getfixturevalue(which)
    path = save_fit(fit, tmp_path / "fit.nc")
    assert_round_trip(fit, load_fit(path, data=small_sim[0]))
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]  # no temporary file left


def test_loaded_fit_is_in_memory(tmp_path, map_fit):
    path = save_fit(map_fit, tmp_path / "fit.nc")
    loaded = load_fit(path)
    path.unlink()  # the file is closed and not needed any more
    assert np.isfinite(loaded["posterior"]["lam"].values).all()


def test_overwrite(tmp_path, map_fit, nuts_fit):
    path = tmp_path / "fit.nc"
    save_fit(nuts_fit, path)
    save_fit(map_fit, path)
    assert load_fit(path).attrs["method"] == "map"


def test_other_sim_data_is_refused(tmp_path, map_fit, other_sim_data):
    path = save_fit(map_fit, tmp_path / "fit.nc")
    with pytest.raises(ValueError, match=map_fit.attrs["data_fingerprint"]):
        load_fit(path, data=other_sim_data)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        load_fit(tmp_path / "nope.nc")
    bad = tmp_path / "bad.nc"
    bad.write_text("not a netcdf file")
    with pytest.raises(OSError, match="bad.nc") as err:
        load_fit(bad)
    _says_what_a_fit_is(str(err.value))


def test_netcdf_that_is_not_a_fit(tmp_path):
    path = tmp_path / "dataset.nc"
    xr.Dataset({"v": ("x", [1.0])}).to_netcdf(path, engine="h5netcdf")
    message = r"dataset.nc. is a NetCDF file but not a fit: it lacks attrs \[.method."
    with pytest.raises(FitFileError, match=message) as err:
        load_fit(path)
    _says_what_a_fit_is(str(err.value))


def _says_what_a_fit_is(message: str) -> None:
    """The message says what a fit file is and how to make one, in the user's terms (not h5py's)."""
    assert "fit file is the NetCDF file written by 'bayes-lsl fit'" in message  # a sentence's start, or not
    assert "--out fit.nc" in message and "save_fit" in message
    assert "signature" not in message and "synchronously" not in message


def test_a_fit_from_a_newer_format_names_both_versions(tmp_path, map_fit):
    newer = map_fit.copy()
    newer.attrs["format_version"] = FORMAT_VERSION + 1
    path = save_fit(newer, tmp_path / "newer.nc")
    with pytest.raises(FitFileError, match=rf"format {FORMAT_VERSION + 1}.*reads formats up to {FORMAT_VERSION}"):
        load_fit(path)


def test_a_format_1_fit_loads_in_todays_terms(tmp_path, map_fit):
    """Format 1 stored the prior overrides as a repr and ``centered`` as given, with no version."""
    old = map_fit.copy()
    old.attrs = {k: v for k, v in old.attrs.items() if k not in ("format_version", "parameterization")}
    old.attrs |= {"priors": repr({"lam_sigma": 3.0}), "centered": False}
    fit = load_fit(save_fit(old, tmp_path / "old.nc"))
    info = FitInfo.from_tree(fit)
    assert info.format_version == FORMAT_VERSION and fit.attrs["format_version"] == FORMAT_VERSION
    assert dict(info.priors) == {**PRIORS_BEFORE_ISSUE_13, "lam_sigma": 3.0}  # the defaults then
    assert info.parameterization == parameterization(False)
    np.testing.assert_array_equal(fit.posterior["lam"], map_fit.posterior["lam"])
