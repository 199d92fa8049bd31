"""Where a K = 4 ``mle`` fit's compilation goes, per compiled function (issue 17).

Usage (from the repository root, with BAYES_LSL_DATA set)::

    python benchmarks/compile_profile.py                    # a new, empty compile directory
    python benchmarks/compile_profile.py --compiledir D     # reuse D (warm when it was filled before)
    python benchmarks/compile_profile.py --env BAYES_LSL_PYTENSOR_MODE=NUMBA

Runs in a fresh child process (so the compile directory and flags are its own): builds
the model of the README quickstart, then compiles the functions a fit compiles, in the
fit's order, and for each prints wall seconds, CPU seconds of the process and of its
children (g++ runs as a child, so ``getrusage(RUSAGE_CHILDREN)`` is the C compiler's
time), the number of C modules that landed in the compile directory, and the number of
nodes of the compiled graph. Then it times a few calls of the objective (compiled code's
run time, to weigh lighter compiler flags against it).
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

CHILD = r"""
import glob, json, os, resource, sys, time
import numpy as np

def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime

def modules():
    import pytensor
    return len(glob.glob(os.path.join(pytensor.config.compiledir, "tmp*", "mod.*")))

t0 = time.perf_counter()
import bayes_lsl as bl
from bayes_lsl.fitting import marginal
from bayes_lsl.fitting.marginal import MarginalLikelihood, family_modes
from bayes_lsl.fitting.mle import anchored_start, default_nodes
rows = []
def step(name, fn):
    w0, (s0, c0), m0 = time.perf_counter(), cpu(), modules()
    out = fn()
    w1, (s1, c1), m1 = time.perf_counter(), cpu(), modules()
    rows.append({"name": name, "wall": w1 - w0, "cpu_self": s1 - s0, "cpu_children": c1 - c0, "modules": m1 - m0})
    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return out

data = step("import + load", bl.load_leaderboard)
K = int(sys.argv[1])
model = step("build_model", lambda: bl.build_model(data, K=K))
parts = step("family_curvature: compile", lambda: MarginalLikelihood(model, data, default_nodes(K)))
parts.n_jobs = 1
theta = step("free: compile + anchored start", lambda: anchored_start(data, K, parts))
F = parts.n_families
step("family_curvature: first call", lambda: parts.family_curvature(np.zeros((F, K)), theta))
modes, _ = step("family modes (Newton)", lambda: family_modes(parts, theta))
obj = step("objective: compile", lambda: parts.objective(default_nodes(K)))
step("objective: first call", lambda: obj(theta, modes))
step("importance: compile + 200 draws", lambda: parts.importance(theta, modes, n_draws=200))
step("natural: compile + call", lambda: parts.natural(theta))
nodes = {name: len(fn.maker.fgraph.apply_nodes) for name, fn in [
    ("objective", parts._compiled["objective"]), ("importance", parts._compiled["importance"]),
    ("family_curvature", parts.family_curvature)]}
obj1 = parts.objective(1)
obj1(theta, modes)
tic = time.perf_counter(); [obj(theta, modes) for _ in range(5)]; t_obj = (time.perf_counter() - tic) / 5
tic = time.perf_counter(); [obj1(theta, modes) for _ in range(20)]; t_obj1 = (time.perf_counter() - tic) / 20
tic = time.perf_counter(); [parts.family_curvature(modes, theta) for _ in range(20)]
t_curv = (time.perf_counter() - tic) / 20
tic = time.perf_counter(); parts.importance(theta, modes, n_draws=2000); t_is = time.perf_counter() - tic
v, g = obj(theta, modes)
print("RESULT " + json.dumps({"rows": rows, "nodes": nodes, "call_objective_s": t_obj, "call_laplace_s": t_obj1,
                               "call_curvature_s": t_curv, "importance_2000_s": t_is,
                               "value": float(v), "grad_norm": float(np.linalg.norm(g)),
                               "total_wall": time.perf_counter() - t0, "cpu": cpu(), "mode": marginal.COMPILE_MODE}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--K", type=int, default=4)
    parser.add_argument("--compiledir", help="base compile directory (default: a new temporary one)")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the child process")
    parser.add_argument("--flags", default="", help="extra PYTENSOR_FLAGS, e.g. 'gcc__cxxflags=-O1'")
    args = parser.parse_args()
    compiledir = args.compiledir or tempfile.mkdtemp(prefix="pytensor_prof_")
    env = dict(os.environ) | dict(item.split("=", 1) for item in args.env)
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("base_compiledir=")]
    flags += [f for f in args.flags.split(",") if f]
    env["PYTENSOR_FLAGS"] = ",".join([*flags, f"base_compiledir={compiledir}"])
    os.makedirs(compiledir, exist_ok=True)
    cold = not os.listdir(compiledir)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}, {'cold' if cold else 'warm'}, PYTENSOR_FLAGS={env['PYTENSOR_FLAGS']}, "
          f"env {args.env or '-'}", flush=True)  # fmt: skip
    tic = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(args.K)], env=env, stdout=subprocess.PIPE, text=True,
                          cwd=tempfile.gettempdir())  # fmt: skip
    wall = time.perf_counter() - tic
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"child failed (exit {proc.returncode})")
    r = json.loads(lines[-1][len("RESULT ") :])
    print("| step | wall s | CPU s (python) | CPU s (g++ etc.) | C modules |")
    print("|---|---|---|---|---|")
    for row in r["rows"]:
        print(f"| {row['name']} | {row['wall']:.1f} | {row['cpu_self']:.1f} | {row['cpu_children']:.1f} | "
              f"{row['modules']} |")  # fmt: skip
    print(f"\nprocess wall {wall:.1f} s, CPU self {r['cpu'][0]:.1f} s + children {r['cpu'][1]:.1f} s; "
          f"graph nodes {r['nodes']}; per call: objective {r['call_objective_s']:.3f} s, Laplace "
          f"{r['call_laplace_s']:.3f} s, curvature {r['call_curvature_s']:.4f} s, importance 2000 draws "
          f"{r['importance_2000_s']:.2f} s; value {r['value']:.6f}, |grad| {r['grad_norm']:.6f}")  # fmt: skip


if __name__ == "__main__":
    main()
