"""Wall time of 5-fold cross-validation at K = 4 with its folds fitted one after another or side by side.

Each run is a whole ``bl.cross_validate(data, n_folds, K=K, n_jobs=jobs)`` call: splitting,
the fold fits (``mle``), the predictions and the bootstrap scoring. The runs alternate
between the ``--jobs`` values, ``--repeats`` times, and every run's predictions are
checked to be identical to the first's. Prints one line per run and the speed-up of each
``--jobs`` value over ``--jobs 1`` (by the median of its runs).

    python benchmarks/parallel_cv.py                          # paper data, K = 4, 5 folds, --jobs 1 2
    python benchmarks/parallel_cv.py --repeats 2 --warmup
    # a cold compile cache (a fresh compile directory per run), on the shipped example
    PYTENSOR_FLAGS=base_compiledir=/tmp/cold1 python benchmarks/parallel_cv.py --data example --K 2 --jobs 1
    PYTENSOR_FLAGS=base_compiledir=/tmp/cold2 python benchmarks/parallel_cv.py --data example --K 2 --jobs 2

With 5 equal folds on 2 workers the speed-up cannot exceed 5/3 = 1.67 (3 rounds of fits
against 5); folds of unequal length can do a little better or worse.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
import pytensor
from provenance import CODE_VERSION

import bayes_lsl as bl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="leaderboard", choices=["leaderboard", "example"],
                        help="example: the shipped simulated set (160 models), for the cold-cache runs")  # fmt: skip
    parser.add_argument("--variant", default="paper", choices=["paper", "raw"])
    parser.add_argument("--K", type=int, default=4)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", action="store_true",
                        help="fit once first (one start, no check), so that the compile cache is warm")  # fmt: skip
    args = parser.parse_args()

    commit = CODE_VERSION
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = bl.load_leaderboard(args.variant) if args.data == "leaderboard" else bl.load_example()
    print(f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
          f"compiledir {pytensor.config.compiledir}", flush=True)  # fmt: skip
    if args.warmup:
        t0 = time.perf_counter()
        bl.fit(data, K=args.K, method="mle", n_starts=1, check_draws=0, progress=False)
        print(f"warm-up fit: {time.perf_counter() - t0:.1f} s", flush=True)

    seconds: dict[int, list[float]] = {jobs: [] for jobs in args.jobs}
    first = None
    for repeat in range(args.repeats):
        for jobs in args.jobs:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = bl.cross_validate(data, args.folds, K=args.K, seed=args.seed, n_jobs=jobs, progress=False)
            seconds[jobs].append(time.perf_counter() - t0)
            first = first if first is not None else result.predictions
            same = result.predictions.equals(first)
            print(f"run {repeat + 1}, n_jobs={jobs}: {seconds[jobs][-1]:.1f} s (load average before: {load:.1f}; "
                  f"MAE {result.summary.loc['overall', 'mae']:.5f}; predictions identical to the first run: {same})",
                  flush=True)  # fmt: skip
    if 1 in seconds:
        serial = float(np.median(seconds[1]))
        rows = [{"n_jobs": jobs, "runs": len(s), "median s": float(np.median(s)), "speed-up": serial / np.median(s)}
                for jobs, s in seconds.items()]  # fmt: skip
        print(pd.DataFrame(rows).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
