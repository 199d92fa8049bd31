"""Time a newcomer's first ``bl.fit`` (issue 17): whole processes, cold and warm compile cache.

Usage (from the repository root, with BAYES_LSL_DATA set)::

    python benchmarks/first_fit.py                 # cold, then warm: the README quickstart fit, K = 4
    python benchmarks/first_fit.py --warm 2        # two warm runs after the cold one
    python benchmarks/first_fit.py --sweep         # also select_k(K = 1..8), twice: the second is warm
    python benchmarks/first_fit.py --compiledir D  # reuse D (skips the cold run if it exists)

Each run is a fresh ``python`` process running the quickstart
``bl.fit(bl.load_leaderboard(), K=4, method="mle")``; "cold" has an empty PyTensor compile
directory (``PYTENSOR_FLAGS=base_compiledir=<new temporary dir>``), "warm" the same
directory again. The table gives the process's wall time, the fit's own phase timings
(``timings_phases``/``timings_s``), the compilation time per compiled function
(``compile_functions``/``compile_s``), and the log-likelihood. ``--env NAME=VALUE``
(repeatable) passes settings to the child processes, e.g. ``--env
BAYES_LSL_PYTENSOR_MODE=NUMBA`` to compare backends.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from provenance import CODE_VERSION

CHILD = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import bayes_lsl as bl
t_import = time.perf_counter() - t0
data = bl.load_leaderboard()
K, sweep, seed = int(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
out = {"import_s": t_import, "code": bl.__file__}
if sweep:
    tic = time.perf_counter()
    table = bl.select_k(data, Ks=list(range(1, 9)), seed=seed, progress=False).table
    out["sweep_s"] = time.perf_counter() - tic
    out["sweep_loglik"] = [float(v) for v in table["marginal_loglik"]]
    out["sweep_wall"] = [float(v) for v in table["wall_time_s"]]
else:
    tic = time.perf_counter()
    fit = bl.fit(data, K=K, method="mle", seed=seed, progress=False)
    a = fit.attrs
    out |= {"fit_s": time.perf_counter() - tic, "loglik": a["marginal_loglik"], "mc_se": a["marginal_loglik_mc_se"],
            "objective": a["marginal_loglik_objective"], "phases": dict(zip(a["timings_phases"], a["timings_s"])),
            "compile": list(zip(a.get("compile_functions", []), a.get("compile_s", []))),
            "lam_se": [float(v) for v in fit.mle["lam_se"].values.ravel()],
            "beta_se": [float(v) for v in fit.mle["beta_se"].values.ravel()]}
import resource
usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
# CPU seconds of this process and of its waited-for children (g++, the forked workers): unlike
# wall time, not inflated by other processes on the machine.
out |= {"cpu_self_s": usage[0].ru_utime + usage[0].ru_stime, "cpu_children_s": usage[1].ru_utime + usage[1].ru_stime}
print("RESULT " + json.dumps(out))
"""


def run_child(compiledir: str, K: int, sweep: bool, seed: int, env_extra: dict[str, str]) -> dict:
    env = dict(os.environ)
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("base_compiledir=")]
    env["PYTENSOR_FLAGS"] = ",".join([*flags, f"base_compiledir={compiledir}"])
    env |= env_extra
    tic = time.perf_counter()
    # Run outside the checkout, so that PYTHONPATH (or the installed package) decides which code runs.
    proc = subprocess.run([sys.executable, "-c", CHILD, str(K), "1" if sweep else "0", str(seed)],
                          env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())  # fmt: skip
    wall = time.perf_counter() - tic
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"child failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :]) | {"process_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--K", type=int, default=4)
    parser.add_argument("--warm", type=int, default=1, help="warm runs after the cold one")
    parser.add_argument("--sweep", action="store_true", help="also time select_k(K = 1..8) warm")
    parser.add_argument("--compiledir", help="compile directory to use (default: a new temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="write the runs' results as JSON to this file")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the child processes")
    args = parser.parse_args()
    env_extra = dict(item.split("=", 1) for item in args.env)
    compiledir = args.compiledir or tempfile.mkdtemp(prefix="pytensor_cold_")
    cold = not os.path.exists(compiledir) or not os.listdir(compiledir)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()} ({platform.machine()}, "
          f"{os.cpu_count()} cores), commit {CODE_VERSION}, load {os.getloadavg()[0]:.1f}, "
          f"env {env_extra or '-'}, compiledir {compiledir}")  # fmt: skip
    runs = (["cold"] if cold else []) + ["warm"] * args.warm
    results = []
    for what in runs:
        r = run_child(compiledir, args.K, False, args.seed, env_extra)
        results.append((what, r))
        print(f"  {what} ({r['code']}): process {r['process_s']:.1f} s, loglik {r['loglik']:.2f}, "
              f"phases {r['phases']}, compile {r['compile']}", file=sys.stderr, flush=True)  # fmt: skip
        if args.save:
            with open(args.save, "w") as f:
                json.dump(results, f)
    phases = list(results[0][1]["phases"])
    print(f"\n| run | process s | CPU s (process + children) | import s | fit s | {' | '.join(phases)} | compile s "
          "| log-lik (IS) | objective |")  # fmt: skip
    print("|---" * (len(phases) + 9) + "|")
    for what, r in results:
        comp = sum(s for _, s in r["compile"])
        print(f"| {what} | {r['process_s']:.1f} | {r['cpu_self_s']:.1f} + {r['cpu_children_s']:.1f} | "
              f"{r['import_s']:.1f} | {r['fit_s']:.1f} | "
              + " | ".join(f"{r['phases'][p]:.1f}" for p in phases)
              + f" | {comp:.1f} | {r['loglik']:.2f} +- {r['mc_se']:.2f} | {r['objective']:.2f} |")  # fmt: skip
    print("\nCompilation per function, s (in the order compiled):\n")
    print("| run | " + " | ".join(name for name, _ in results[0][1]["compile"]) + " |")
    print("|---" * (len(results[0][1]["compile"]) + 1) + "|")
    for what, r in results:
        print(f"| {what} | " + " | ".join(f"{s:.1f}" for _, s in r["compile"]) + " |")
    ref = results[0][1]
    for what, r in results[1:]:
        d_lam = max(abs(a - b) for a, b in zip(r["lam_se"], ref["lam_se"], strict=True))
        print(f"\n{what} vs first run: max |lam_se difference| {d_lam:.2g}")
    print("\nlam_se (first run):", " ".join(f"{v:.4g}" for v in ref["lam_se"]))
    if args.sweep:
        # The first sweep compiles the K != 4 graphs; the second is the warm one.
        for what in ("sweep, first (compiles K != 4)", "sweep, warm"):
            r = run_child(compiledir, args.K, True, args.seed, env_extra)
            print(f"\nselect_k K = 1..8, {what}: process {r['process_s']:.1f} s, sweep {r['sweep_s']:.1f} s, "
                  f"per K {[round(v, 1) for v in r['sweep_wall']]}, log-lik {[round(v, 2) for v in r['sweep_loglik']]}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
