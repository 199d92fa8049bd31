"""Shared fixtures: the leaderboard files (from ``$BAYES_LSL_DATA`` or ``../shared``) and small simulated sets."""

from __future__ import annotations

import os

# One BLAS thread per test process, set before numpy loads. OpenBLAS otherwise starts a
# thread per core in each xdist worker, and on 2 cores the two workers' spinning threads
# slow each other down several-fold (the MLE coverage test: 36 s with one thread, 255 s
# with the default beside the notebooks test). The notebook kernels inherit it.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from bayes_lsl.simulate import random_design, random_parameters, simulate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("BAYES_LSL_DATA", REPO.parent / "shared/data/open_llm_leaderboard"))
    if not (path / "df_full_v1.csv").is_file():
        pytest.fail(f"leaderboard files not found in {path}: set BAYES_LSL_DATA to the directory holding them")
    return path


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


# ------------------------------------------------ fits shared by test_approx/sampling/diagnostics/io
# Session-scoped: compiling the model for each method is the slow part.
FIT_K = 2


@pytest.fixture(scope="session")
def other_sim_data():
    """A second, different simulated data set."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, _ = simulate(random_parameters(K=2, J=6, seed=2), random_design(10, 3, seed=2), seed=2)
    return data


@pytest.fixture(scope="session")
def map_fit(small_sim):
    from bayes_lsl import fit

    return fit(small_sim[0], K=FIT_K, method="map", seed=0, progress=False)


@pytest.fixture(scope="session")
def advi_fit(small_sim):
    from bayes_lsl import fit

    return fit(small_sim[0], K=FIT_K, method="advi", seed=0, progress=False, n=5000, draws=500)


@pytest.fixture(scope="session")
def nuts_fit(small_sim):
    from bayes_lsl import fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a short run may flag a chain
        return fit(small_sim[0], K=FIT_K, method="nuts", seed=0, progress=False, chains=2, tune=200, draws=200)


@pytest.fixture(scope="session")
def mle_fit(small_sim):
    from bayes_lsl import fit

    return fit(small_sim[0], K=FIT_K, method="mle", seed=0, progress=False)
