"""The fit contract (``bayes_lsl.fitting.result``): what a fit carries, and files across format versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import bayes_lsl as bl
from bayes_lsl.errors import BayesLslError, FitFileError
from bayes_lsl.fitting.result import FORMAT_VERSION, FitInfo
from bayes_lsl.model.parameterization import model_parameterization
from bayes_lsl.model.priors import PRIORS_BEFORE_ISSUE_13

#: A ``map`` fit of the example (K = 2, priors={"lam_sigma": 1.5}) saved by bayes_lsl before
#: FitInfo (format 1: the prior overrides as a repr string, ``centered`` instead of the
#: parameterization's name).
FORMAT_1 = Path(__file__).parent / "data" / "fit_format1.nc"


def test_a_format_1_file_loads_in_todays_terms():
    fit = bl.load_fit(FORMAT_1, data=bl.load_example())
    info = FitInfo.from_tree(fit)
    assert (info.method, info.K, info.parameterization) == ("map", 2, "non-centered")
    assert dict(info.priors) == {**PRIORS_BEFORE_ISSUE_13, "lam_sigma": 1.5}  # the defaults then
    assert fit.attrs["format_version"] == FORMAT_VERSION
    assert info.anchors == ("math", "ifeval")


def test_saving_and_loading_keeps_the_contract(tmp_path):
    fit = bl.load_fit(FORMAT_1)
    path = bl.save_fit(fit, tmp_path / "fit.nc")
    again, before = FitInfo.from_tree(bl.load_fit(path)), FitInfo.from_tree(fit)
    assert again == before
    other = bl.load_fit(path)
    other.attrs["K"] = 3
    assert again != FitInfo.from_tree(other)


def test_a_newer_format_is_refused_with_its_version(tmp_path):
    fit = bl.load_fit(FORMAT_1)
    fit.attrs["format_version"] = FORMAT_VERSION + 7
    path = bl.save_fit(fit, tmp_path / "future.nc")
    with pytest.raises(FitFileError, match=f"format {FORMAT_VERSION + 7}.*up to {FORMAT_VERSION}"):
        bl.load_fit(path)


def test_a_netcdf_file_that_is_not_a_fit_is_refused(tmp_path):
    path = tmp_path / "other.nc"
    xr.DataTree.from_dict({"posterior": xr.Dataset({"beta": ("x", np.zeros(3))})}).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(FitFileError, match="not a fit"):
        bl.load_fit(path)
    with pytest.raises(BayesLslError, match="expected a fit"):
        FitInfo.from_tree(xr.Dataset())


def test_standardize_matches_the_data():
    data = bl.load_example()
    info = FitInfo.from_tree(bl.load_fit(FORMAT_1))
    np.testing.assert_allclose(info.standardize(data.size, data.tokens), data.x)


@pytest.mark.parametrize(("centered", "name"), [(False, "non-centered"), (True, "centered"), ("partial", "partial")])
def test_the_model_records_its_parameterization(centered, name):
    model = bl.build_model(bl.load_example(), K=2, centered=centered)
    assert model_parameterization(model) == name


def test_mle_refuses_the_partial_parameterization():
    from bayes_lsl.fitting.mle import fit_mle

    data = bl.load_example()
    with pytest.raises(BayesLslError, match="partial"):
        fit_mle(bl.build_model(data, K=2, centered="partial"), data, seed=0, progress=False)


def test_user_errors_are_one_family():
    assert issubclass(bl.DataError, bl.BayesLslError) and issubclass(bl.BayesLslError, ValueError)
    with pytest.raises(bl.BayesLslError, match="unknown method"):
        bl.fit(bl.load_example(), K=2, method="gibbs")
