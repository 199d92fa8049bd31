"""Saving fits to disk and reading them back (NetCDF-4 through h5netcdf)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError, FitFileError
from bayes_lsl.files import atomic_path
from bayes_lsl.fitting.result import FitInfo, data_fingerprint

ENGINE = "h5netcdf"
#: What a fit file is, for the errors of :func:`load_fit`.
NOT_A_FIT = (
    "a fit file is the NetCDF file written by 'bayes-lsl fit' (e.g. bayes-lsl fit --data example --K 2 --out "
    "fit.nc) or by bayes_lsl.save_fit"
)
#: Prefix of attrs stored as JSON: NetCDF attributes cannot hold booleans, None, dicts,
#: empty or nested lists, and lists of strings come back as arrays.
_JSON = "json:"


def _encode(value):
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, np.generic):
        return _encode(value.item())
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return _JSON + json.dumps(value)


def _decode(value):
    if isinstance(value, str) and value.startswith(_JSON):
        return json.loads(value[len(_JSON) :])
    if isinstance(value, np.generic):
        return value.item()
    return value


def _map_attrs(tree: xr.DataTree, func) -> xr.DataTree:
    tree = tree.copy()
    for node in tree.subtree:
        node.attrs = {k: func(v) for k, v in node.attrs.items()}
        for var in node.variables.values():
            var.attrs = {k: func(v) for k, v in var.attrs.items()}
    return tree


def save_fit(fit: xr.DataTree, path: str | os.PathLike) -> Path:
    """Write a fit to a NetCDF file, atomically.

    The file is written next to its destination and then renamed over it, so that an
    interrupted save never leaves a truncated fit behind.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit`.
    path : path
        Destination (``.nc``); its directory must exist.

    Returns
    -------
    Path
        The path written.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = bl.save_fit(fit, Path(folder) / "fit.nc")
    ...     back = bl.load_fit(path)
    >>> bl.FitInfo.from_tree(back).attrs() == bl.FitInfo.from_tree(fit).attrs()  # the same contract
    True
    >>> float(abs(back.posterior["lam"] - fit.posterior["lam"]).max())
    0.0
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        _map_attrs(fit, _encode).to_netcdf(tmp, engine=ENGINE)
    return path


def load_fit(path: str | os.PathLike, data: ScalingData | None = None) -> xr.DataTree:
    """Read a fit written by :func:`save_fit`, fully into memory (the file is closed).

    Parameters
    ----------
    path : path
        The file.
    data : ScalingData, optional
        The data the fit will be used with; it must be the data it was fitted to.

    Returns
    -------
    xarray.DataTree

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    FitFileError
        The file is not a fit written by :func:`save_fit` (the message says how to make
        one), or was written by a newer bayes_lsl in a format this one cannot read.
    BayesLslError
        ``data`` is not the data set the fit was made on.

    Notes
    -----
    Fits saved in an older format are brought up to date in memory (see
    :data:`bayes_lsl.fitting.result.FORMAT_VERSION`); the file is not changed.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map"); data = bl.load_example()
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = bl.save_fit(fit, Path(folder) / "fit.nc")
    ...     back = bl.load_fit(path, data=data)  # checks that the fit was made on these data
    >>> sorted(back.children)
    ['constant_data', 'log_likelihood', 'posterior']
    >>> back.posterior["lam"].sel(skill="skill_1", benchmark="math").item() > 0  # an anchor loading
    True
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no fit file at {str(path)!r}")
    try:
        with xr.open_datatree(path, engine=ENGINE) as stored:
            fit = stored.load().copy()
    except Exception as err:  # h5py, xarray and netCDF errors alike: the reader's words mean nothing to a user
        raise FitFileError(f"{str(path)!r} is not a fit: {NOT_A_FIT}") from err
    fit = _map_attrs(fit, _decode)
    # A NetCDF file from elsewhere reads fine but would fail later with a KeyError: say so now.
    try:
        info = FitInfo.from_tree(fit)
    except FitFileError as err:
        if str(err).startswith("not a fit"):
            raise FitFileError(f"{str(path)!r} is a NetCDF file but {err}; {NOT_A_FIT}") from None
        raise FitFileError(f"{str(path)!r}: {err}") from None
    fit.attrs = {**fit.attrs, **info.attrs()}  # an older format, in today's terms
    if data is not None:
        stored_print, given = fit.attrs.get("data_fingerprint"), data_fingerprint(data)
        if stored_print != given:
            raise BayesLslError(
                f"the fit in {str(path)!r} was made on data with fingerprint {stored_print!r}, but the data "
                f"given has fingerprint {given!r}: a fit cannot be applied to a different data set"
            )
    return fit
