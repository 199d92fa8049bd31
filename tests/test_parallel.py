"""Many fits in parallel: joblib's loky processes and a Dask cluster give the serial result."""

from __future__ import annotations

import os
import time
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest

import bayes_lsl as bl
import bayes_lsl.parallel
from bayes_lsl.parallel import run_tasks
from bayes_lsl.simulate import random_design, random_parameters, simulate

#: What select_k's fits are made of here: the cheapest settings that still fit (10 families).
CHEAP = {"check_draws": 500, "screen_maxiter": 50, "refine_maxiter": 50}


def _seeded_draw(task: tuple[int, float]) -> float:
    """A task's result from its own seed; the first tasks sleep longest, so they finish last."""
    seed, pause = task
    time.sleep(pause)
    return float(np.random.default_rng(seed).normal())


@pytest.fixture(scope="module")
def tiny():
    """10 families of 3 models, K = 2."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, _ = simulate(random_parameters(K=2, J=6, seed=2), random_design(10, 3, seed=2), seed=2)
    return data


def _same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    # Everything but the clock: the fits are deterministic given their seed, wherever they run.
    pd.testing.assert_frame_equal(a.drop(columns="wall_time_s"), b.drop(columns="wall_time_s"), check_exact=True)


def _same_holdout(a: bl.holdout.HoldoutResult, b: bl.holdout.HoldoutResult) -> None:
    pd.testing.assert_frame_equal(a.predictions, b.predictions, check_exact=True)
    pd.testing.assert_frame_equal(a.summary, b.summary, check_exact=True)


def test_run_tasks_keeps_task_order_and_shows_one_bar(monkeypatch):
    bars = []
    real_tqdm = bayes_lsl.parallel.tqdm

    def counting_tqdm(*args, **kwargs):
        bars.append(real_tqdm(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(bayes_lsl.parallel, "tqdm", counting_tqdm)
    tasks = [(seed, 0.6 if seed < 2 else 0.0) for seed in range(6)]
    serial = run_tasks(_seeded_draw, tasks, n_jobs=1, progress=False)
    assert serial == [_seeded_draw(task) for task in tasks]
    # Two workers, the first tasks finishing last: the results still come in task order.
    assert run_tasks(_seeded_draw, tasks, n_jobs=2, desc="draws") == serial
    assert len(bars) == 2 and bars[-1].total == bars[-1].n == len(tasks) and bars[-1].desc == "draws"


def _fit_jobs(_task) -> str | None:
    return os.environ.get("BAYES_LSL_JOBS")


def test_workers_run_each_fit_in_one_process(monkeypatch):
    # A fit forks its own phases unless BAYES_LSL_JOBS=1: inside a worker that would double
    # the processes on the same cores.
    monkeypatch.delenv("BAYES_LSL_JOBS", raising=False)
    assert run_tasks(_fit_jobs, range(4), n_jobs=2, progress=False) == ["1"] * 4
    assert "BAYES_LSL_JOBS" not in os.environ  # this process is left as it was


@pytest.mark.parametrize("n_jobs", [0, 1.5, True, "2"])
def test_bad_n_jobs_is_named(n_jobs):
    with pytest.raises(ValueError, match="n_jobs must be a nonzero integer"):
        run_tasks(_seeded_draw, [(0, 0.0)], n_jobs=n_jobs)


def test_select_k_refuses_warm_start_in_parallel(tiny):
    # Refused before any fit: a warm start needs the fit at K - 1 first.
    with pytest.raises(ValueError, match="n_jobs=2 needs warm_start=False"):
        bl.select_k(tiny, Ks=[1, 2], n_jobs=2, progress=False)


@pytest.mark.slow  # four MLE fits; the Dask test checks the same engine by default
def test_select_k_in_two_processes_is_the_serial_result(tiny):
    serial = bl.select_k(tiny, Ks=[1, 2], warm_start=False, progress=False, **CHEAP)
    parallel = bl.select_k(tiny, Ks=[1, 2], warm_start=False, progress=False, n_jobs=2, **CHEAP)
    _same_table(serial.table, parallel.table)
    assert list(parallel.fits) == [1, 2] and parallel.best == serial.best
    for K in (1, 2):
        np.testing.assert_array_equal(parallel.fits[K].posterior["lam"], serial.fits[K].posterior["lam"])


@pytest.fixture(scope="module")
def serial_cv(tiny):
    return bl.cross_validate(tiny, n_folds=3, method="baseline", n_boot=200, progress=False)


def test_cross_validate_in_two_processes_is_the_serial_result(tiny, serial_cv):
    _same_holdout(serial_cv, bl.cross_validate(tiny, n_folds=3, method="baseline", n_boot=200, progress=False,
                                               n_jobs=2))  # fmt: skip
    assert sorted(serial_cv.predictions["fold"].unique()) == [0, 1, 2] and len(serial_cv.fits) == 3


def test_dask_cluster_gives_the_serial_result(tiny, serial_cv):
    distributed = pytest.importorskip("dask.distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
        joblib.parallel_backend("dask"),
    ):
        with distributed.get_task_stream(client) as stream:
            result = bl.cross_validate(tiny, n_folds=3, method="baseline", n_boot=200, progress=False, n_jobs=-1)
    # The folds ran as tasks on the cluster's workers, not in this process.
    assert len(stream.data) >= 3
    _same_holdout(serial_cv, result)


@pytest.mark.slow
def test_dask_cluster_fits_give_the_serial_result(tiny):
    """select_k's PyTensor fits on a Dask cluster of 2 processes equal the serial ones."""
    distributed = pytest.importorskip("dask.distributed")
    serial = bl.select_k(tiny, Ks=[1, 2], warm_start=False, progress=False, **CHEAP)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster),
        joblib.parallel_backend("dask"),
    ):
        parallel = bl.select_k(tiny, Ks=[1, 2], warm_start=False, progress=False, n_jobs=-1, **CHEAP)
    _same_table(serial.table, parallel.table)
