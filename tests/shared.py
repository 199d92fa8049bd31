"""Fits and files made once per test run and shared by the test processes (see conftest's fixtures).

Compiling the model for each fit is the slow part of most tests, and under ``pytest -n 2``
each worker has its own session: a fixture made per session would be made once per
worker. Here the first worker to ask makes it, under a lock, and saves it in the run's
temporary folder; the other worker reads it back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import xarray as xr


def shared_file(tmp_path_factory: pytest.TempPathFactory, name: str, write: Callable[[Path], object]) -> Path:
    """The file ``name`` that ``write(path)`` makes, once per test run whatever the number of workers."""
    from filelock import FileLock

    # Under xdist each worker has its own folder in the run's folder, which they share.
    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    path = root / "shared" / name
    path.parent.mkdir(exist_ok=True)
    with FileLock(f"{path}.lock"):
        if not path.is_file():
            write(path)
            assert path.is_file(), f"{write} did not write {path}"
    return path


def shared_fit(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[], xr.DataTree]) -> xr.DataTree:
    """The fit ``make()`` returns, made once per test run, saved, and read back.

    Every worker gets the copy read from the file, also the worker that made it, so that a
    test sees the same fit whichever worker runs it. The worker that makes it checks that
    the copy is the fit (:func:`assert_round_trip`).
    """
    from bayes_lsl import load_fit, save_fit

    def write(path: Path) -> None:
        fit = make()
        save_fit(fit, path)
        assert_round_trip(fit, load_fit(path))

    return load_fit(shared_file(tmp_path_factory, f"{name}.nc", write))


def assert_round_trip(fit: xr.DataTree, loaded: xr.DataTree) -> None:
    """``loaded``, read back from a file of ``fit``, has its groups, values and attrs."""
    assert set(loaded.children) == set(fit.children)
    for group in fit.children:
        xr.testing.assert_identical(loaded[group].to_dataset(), fit[group].to_dataset())
    assert loaded.attrs == fit.attrs  # lists, booleans and all
