"""NUTS's log density compiled with and without numba's fastmath: draws and speed.

Each run is a fresh process with its own compile directory, so that "cold" (the process
compiles the model) and "warm" (it loads the compiled functions) can be told apart::

    python benchmarks/nuts_fastmath.py                      # the SBC-sized model (K = 2, 120 models)
    python benchmarks/nuts_fastmath.py --leaderboard        # the paper data, K = 4, as fit(method="nuts") builds it

Per setting (fastmath on, off) and cache state (cold, warm, numba's cache off) it prints
a hash of the draws of a short seeded chain (equal hashes: bit-identical draws) and the
sampling seconds per leapfrog step (tuning's included) of a longer one. See benchmarks/README.md,
"Bit-reproducible NUTS".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from provenance import CODE_VERSION

CHILD = r"""
import hashlib, json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
import pytensor
import nutpie
import bayes_lsl as bl
from bayes_lsl.model import build_model
from bayes_lsl.sbc import SbcDesign, simulate_replication

fastmath, leaderboard, draws = sys.argv[1] == "1", sys.argv[2] == "1", int(sys.argv[3])
if leaderboard:
    data, K, centered = bl.load_leaderboard(), 4, "partial"
else:
    data, _, _ = simulate_replication(120, 0, SbcDesign())
    K, centered = 2, True
model = build_model(data, K=K, centered=centered)
tic = time.perf_counter()
with pytensor.config.change_flags(numba__fastmath=fastmath):
    compiled = nutpie.compile_pymc_model(model)
short = nutpie.sample(compiled, draws=30, tune=30, chains=1, seed=1, progress_bar=False)
compile_s = time.perf_counter() - tic
post = short["posterior"].to_dataset()
digest = hashlib.md5(np.concatenate([post[k].values.ravel() for k in sorted(post.data_vars)]).tobytes()).hexdigest()
tic = time.perf_counter()
long = nutpie.sample(compiled, draws=draws, tune=draws, chains=1, seed=2, progress_bar=False, save_warmup=True)
seconds = time.perf_counter() - tic
steps = sum(int(long[group]["n_steps"].sum()) for group in ("sample_stats", "warmup_sample_stats"))
print("RESULT " + json.dumps({"draws_md5": digest[:12], "compile_and_short_s": compile_s, "sampling_s": seconds,
                              "steps": steps, "us_per_step": 1e6 * seconds / steps}))
"""


def child(fastmath: bool, leaderboard: bool, draws: int, compiledir: str, cache: bool) -> dict:
    flags = f"base_compiledir={compiledir}" + ("" if cache else ",numba__cache=False")
    env = os.environ | {"PYTENSOR_FLAGS": flags}
    proc = subprocess.run([sys.executable, "-c", CHILD, "1" if fastmath else "0", "1" if leaderboard else "0",
                           str(draws)], capture_output=True, text=True, env=env)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leaderboard", action="store_true")
    parser.add_argument("--draws", type=int, default=1000, help="tuning steps and draws of the timed chain")
    args = parser.parse_args()
    print(f"commit {CODE_VERSION}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"{'leaderboard K=4' if args.leaderboard else 'SBC model K=2'}")  # fmt: skip
    print("| fastmath | compile cache | draws (md5 of a seeded chain) | compile + short chain s | s sampling "
          "| leapfrog steps | us per step |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for fastmath in (True, False):
        with tempfile.TemporaryDirectory(prefix="pytensor_fastmath_") as compiledir:
            for state, cache in (("cold", True), ("warm", True), ("numba cache off", False)):
                r = child(fastmath, args.leaderboard, args.draws, compiledir, cache)
                print(f"| {'on' if fastmath else 'off'} | {state} | {r['draws_md5']} | {r['compile_and_short_s']:.1f} "
                      f"| {r['sampling_s']:.1f} | {r['steps']} | {r['us_per_step']:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
