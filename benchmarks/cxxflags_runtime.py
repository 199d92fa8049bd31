"""Run time per call of the K = 4 objective compiled with different g++ flags, in one process (issue 17).

Usage (from the repository root, with BAYES_LSL_DATA set)::

    PYTENSOR_FLAGS=base_compiledir=D python benchmarks/cxxflags_runtime.py "" "pch -O1 -g0" "-O0 -g0"

A flag set is what ``BAYES_LSL_CXXFLAGS`` would hold (``""``: PyTensor's own ``-O3 -g``),
prefixed with ``pch`` where the precompiled header is used too.

Each flag set compiles the objective (3^4 nodes), the Laplace objective (the same function,
one node) and the family curvature; then the calls alternate between the flag sets, round
after round, so that every set sees the same load from other processes. Prints the median
seconds per call of each, and the largest difference of the values and gradients between
the sets (the flags must not change the numbers beyond rounding).
"""

from __future__ import annotations

import sys
import time

import numpy as np


def main() -> None:
    import bayes_lsl as bl
    from bayes_lsl.fitting import marginal
    from bayes_lsl.fitting.marginal import MarginalLikelihood, family_modes
    from bayes_lsl.fitting.mle import anchored_start

    flag_sets = sys.argv[1:] or ["", "pch -O1 -g0"]
    data = bl.load_leaderboard()
    model = bl.build_model(data, K=4)
    variants = {}
    for flags in flag_sets:
        marginal.USE_PCH = flags.startswith("pch")
        marginal.COMPILE_CXXFLAGS = flags.removeprefix("pch").strip()
        tic = time.perf_counter()
        parts = MarginalLikelihood(model, data, 3)
        parts.n_jobs = 1
        parts.objective(3)
        variants[flags] = parts
        print(f"{flags!r}: compiled in {time.perf_counter() - tic:.1f} s", flush=True)
    first = next(iter(variants.values()))
    theta = anchored_start(data, 4, first)
    modes, _ = family_modes(first, theta)
    calls = {
        "objective 3^4": lambda p: p.objective(3)(theta, modes),
        "objective Laplace": lambda p: p.objective(1)(theta, modes),
        "family curvature": lambda p: p.family_curvature(modes, theta),
    }
    times = {(f, c): [] for f in variants for c in calls}
    outputs = {}
    for _ in range(9):
        for name, call in calls.items():
            for flags, parts in variants.items():
                tic = time.perf_counter()
                outputs[flags, name] = call(parts)
                times[flags, name].append(time.perf_counter() - tic)
    print("\n| flags | " + " | ".join(f"{c}, s per call" for c in calls) + " |")
    print("|---" * (len(calls) + 1) + "|")
    for flags in variants:
        print(f"| `{flags}` | " + " | ".join(f"{np.median(times[flags, c]):.4f}" for c in calls) + " |")
    for name in calls:
        ref = outputs[flag_sets[0], name]
        for flags in flag_sets[1:]:
            pairs = zip(ref, outputs[flags, name], strict=True)
            diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in pairs)
            print(f"{name}: largest |difference| {flags!r} vs {flag_sets[0]!r}: {diff:.3g}")


if __name__ == "__main__":
    main()
