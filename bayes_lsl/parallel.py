"""Independent fits side by side, through joblib, behind one progress bar.

:func:`run_tasks` hands the tasks to :class:`joblib.Parallel` with whatever backend is
active: loky processes on this machine by default, a Dask or Ray cluster inside
``with joblib.parallel_backend("dask"):`` (or ``"ray"``), without any other change.
Results come back in task order; what each task computes (its seed included) depends
only on the task, so results do not depend on the number of workers or on which
finishes first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from tqdm.auto import tqdm

from bayes_lsl.errors import BayesLslError


def _check_n_jobs(n_jobs: int) -> int:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise BayesLslError(f"n_jobs must be a nonzero integer (1: in this process, -1: every worker), got {n_jobs!r}")
    return n_jobs


def _indexed(func: Callable[[Any], Any], index: int, task: Any) -> tuple[int, Any]:
    # Results may arrive in any order (return_as="generator_unordered"); the index puts them back.
    # One process per task: a fit's own forked phases (bayes_lsl.fitting.marginal.fork_map)
    # would put two processes of every worker on the same cores. Their numbers are the same.
    previous = os.environ.get("BAYES_LSL_JOBS")
    os.environ["BAYES_LSL_JOBS"] = "1"
    try:
        return index, func(task)
    finally:
        if previous is None:
            os.environ.pop("BAYES_LSL_JOBS", None)
        else:
            os.environ["BAYES_LSL_JOBS"] = previous


def run_tasks(
    func: Callable[[Any], Any],
    tasks: Iterable[Any],
    n_jobs: int = 1,
    *,
    progress: bool = True,
    desc: str | None = None,
) -> list:
    """``[func(task) for task in tasks]``, on ``n_jobs`` workers, with one progress bar.

    Parameters
    ----------
    func : callable
        Called once per task with the task as its only argument. It must be picklable
        for ``n_jobs != 1`` (a module-level function or a :func:`functools.partial` of
        one; loky and Dask also take closures through cloudpickle) and should not show
        progress bars of its own.
    tasks : iterable
        The tasks, each holding everything its result depends on (a seed included).
    n_jobs : int
        ``1`` (the default) runs the tasks one after another in this process, without
        joblib, so tracebacks stay plain. Otherwise the number of joblib workers
        (``-1``: as many as the backend has) of the active backend: loky processes, or
        the cluster of ``joblib.parallel_backend("dask")``.
    progress : bool
        Show one bar for the whole job, advanced as each task finishes.
    desc : str, optional
        The bar's label.

    Returns
    -------
    list
        The results, in the order of ``tasks``.

    Raises
    ------
    ValueError
        If ``n_jobs`` is 0 or not an integer.
    """
    _check_n_jobs(n_jobs)
    tasks = list(tasks)
    results: list = [None] * len(tasks)
    with tqdm(total=len(tasks), desc=desc, disable=not progress) as bar:
        if n_jobs == 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                results[i] = func(task)
                bar.update()
            return results
        from joblib import Parallel, delayed

        # Unordered, so that the bar moves when any task ends, not only the next in line.
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        for i, result in parallel(delayed(_indexed)(func, i, task) for i, task in enumerate(tasks)):
            results[i] = result
            bar.update()
    return results
