"""Shared fixtures: the leaderboard files (found as the package finds them) and small simulated sets."""

from __future__ import annotations

import os

# One BLAS thread per test process, set before numpy loads. OpenBLAS otherwise starts a
# thread per core in each xdist worker, and on 2 cores the two workers' spinning threads
# slow each other down several-fold (the MLE coverage test: 36 s with one thread, 255 s
# with the default beside the notebooks test). The notebook kernels inherit it.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import contextlib  # noqa: E402
import io  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from shared import shared_file, shared_fit  # noqa: E402

from bayes_lsl.simulate import random_design, random_parameters, simulate  # noqa: E402

#: Set (to 1) where the leaderboard files must be there, as in CI: a missing file fails the data tests.
REQUIRE_DATA = "BAYES_LSL_REQUIRE_DATA"


def leaderboard_folder(folder: Path) -> Path:
    """Link the leaderboard files, found as the package finds them, into ``folder``; skip if they cannot be had.

    ``$BAYES_LSL_DATA``, the user cache, or the checked download
    (:func:`bayes_lsl.sources.locate`). The links follow the layout of a data directory
    (the v2 dump in ``raw/``), wherever each file was found. When the files cannot be
    had (offline, nothing local) the calling test is skipped with the reason, unless
    ``$BAYES_LSL_REQUIRE_DATA`` is set (as in CI), which makes that a failure.
    """
    from bayes_lsl.sources import DataNotFoundError, locate

    try:
        found = {key: locate(key) for key in ("v1", "v2", "dump_v1", "dump_v2")}
    except DataNotFoundError as err:
        if os.environ.get(REQUIRE_DATA, "") not in ("", "0"):
            pytest.fail(f"{REQUIRE_DATA} is set but the leaderboard files cannot be had: {err}")
        pytest.skip(f"leaderboard files not available: {err}")
    (folder / "raw").mkdir(parents=True, exist_ok=True)
    for key, path in found.items():
        link = folder / ("raw" if key.startswith("dump") else "") / path.name
        link.unlink(missing_ok=True)
        link.symlink_to(path.resolve())
    return folder


def pytest_collection_modifyitems(config, items):
    """The notebooks' execution, the longest test by far, first.

    xdist's workers take tests in this order: the worker that takes the notebooks is busy
    with them while the other runs the rest; taken last, they would run alone at the end.
    """
    items.sort(key=lambda item: item.get_closest_marker("notebooks") is None)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A directory with the leaderboard files (see :func:`leaderboard_folder`)."""
    return leaderboard_folder(tmp_path_factory.mktemp("leaderboard"))


@pytest.fixture(scope="session")
def paper(data_dir):
    import bayes_lsl as bl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bl.load_leaderboard("paper", data_dir=data_dir, download=False)


@pytest.fixture(scope="session")
def small_sim():
    """K=2, J=6: 30 families of 4 models, 15% of scores missing."""
    params = random_parameters(K=2, J=6, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, truth = simulate(params, random_design(30, 4, seed=1), missing=0.15, seed=2)
    return data, truth


# ------------------------------------------------ fits shared by the test files
# Made once per test run, whatever the number of xdist workers (tests/shared.py).
FIT_K = 2


@pytest.fixture(scope="session")
def other_sim_data():
    """A second, different simulated data set."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, _ = simulate(random_parameters(K=2, J=6, seed=2), random_design(10, 3, seed=2), seed=2)
    return data


@pytest.fixture(scope="session")
def map_fit(small_sim, tmp_path_factory):
    from bayes_lsl import fit

    return shared_fit(tmp_path_factory, "map", lambda: fit(small_sim[0], K=FIT_K, method="map", seed=0, progress=False))


@pytest.fixture
def cli_fit_options(map_fit, tmp_path, monkeypatch):
    """``options(args)``: the options that ``bayes-lsl fit --data example --K 2 --method map
    *args`` passes to :func:`bayes_lsl.fit`, which is stubbed (it returns ``map_fit``): how
    each model option's shell flags are checked without a fit."""
    import bayes_lsl.fitting
    from bayes_lsl.cli import main

    given: dict = {}

    def fake_fit(data, **options):
        given.update(options)
        return map_fit

    monkeypatch.setattr(bayes_lsl.fitting, "fit", fake_fit)

    def options(args: list[str]) -> dict:
        given.clear()
        out = tmp_path / f"fit{len(list(tmp_path.iterdir()))}.nc"
        command = ["fit", "--data", "example", "--K", "2", "--method", "map", *args, "--out", str(out), "--quiet"]
        assert main(command) == 0
        return dict(given)

    return options


@pytest.fixture(scope="session")
def advi_fit(small_sim, tmp_path_factory):
    from bayes_lsl import fit

    def make():
        return fit(small_sim[0], K=FIT_K, method="advi", seed=0, progress=False, n=5000, draws=500)

    return shared_fit(tmp_path_factory, "advi", make)


@pytest.fixture(scope="session")
def nuts_fit(small_sim, tmp_path_factory):
    from bayes_lsl import fit

    def make():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a short run may flag a chain
            return fit(small_sim[0], K=FIT_K, method="nuts", seed=0, progress=False, chains=2, tune=200, draws=200)

    return shared_fit(tmp_path_factory, "nuts", make)


@pytest.fixture(scope="session")
def mle_fit(small_sim, tmp_path_factory):
    from bayes_lsl import fit

    return shared_fit(tmp_path_factory, "mle", lambda: fit(small_sim[0], K=FIT_K, method="mle", seed=0, progress=False))


@pytest.fixture(scope="session")
def example_fit(tmp_path_factory) -> tuple[Path, str]:
    """``bayes-lsl fit --data example --K 2 --method mle``, run once: the fit file and what the command printed."""
    from bayes_lsl.cli import main

    def write(path: Path) -> None:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(["fit", "--data", "example", "--K", "2", "--method", "mle", "--out", str(path), "--quiet"])
        assert code == 0, printed.getvalue()
        path.with_suffix(".out").write_text(printed.getvalue())

    path = shared_file(tmp_path_factory, "example_mle.nc", write)
    return path, path.with_suffix(".out").read_text()
