"""Simulation-based calibration of mle (Wald), nuts and nuts with centered family effects.

Run (replications are appended to ``OUT/sbc_<method>.csv`` in chunks, so a run can be
stopped and resumed or extended: replications already in the file are skipped)::

    python benchmarks/sbc.py --method mle nuts nuts-centered --reps 200 --n-jobs 16 --out benchmarks/sbc
    python benchmarks/sbc.py --plot --out benchmarks/sbc

``--plot`` reads every ``sbc_*.csv`` in ``OUT``, draws the rank ECDF minus the uniform CDF
of every parameter with its simultaneous 95% band (``sbc_<method>.png``) and prints, per
method and parameter, the uniformity test of :func:`bayes_lsl.sbc.rank_uniformity`
(Holm-adjusted over the parameters at family-wise level ``--level``). See
``benchmarks/README.md`` for the results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from provenance import CODE_VERSION

from bayes_lsl.model.priors import merge_priors
from bayes_lsl.sbc import (
    SBC_METHODS,
    SKIPPED,
    SbcDesign,
    design_dict,
    ecdf_band,
    failed_fits,
    rank_columns,
    rank_dispersion,
    rank_uniformity,
    run_sbc,
)


def _not_fitted(table: pd.DataFrame) -> str:
    """``"F failed, S skipped"``: fits that raised apart from data sets ``--skip-clipped`` left out."""
    skipped = int((table["error"].astype(str) == SKIPPED).sum())
    return f"{int(failed_fits(table).sum()) - skipped} failed, {skipped} skipped"


def run(method: str, reps: int, seed: int, n_jobs: int, out: Path, design: SbcDesign, chunk: int,
        first: int = 0) -> None:
    """Replications ``first .. reps - 1`` of ``method`` not yet in ``OUT/sbc_<method>.csv``, appended in chunks."""
    path = out / f"sbc_{method}.csv"
    meta_path = out / f"sbc_{method}.json"
    # The merged priors, not only the overrides: a run resumed after the defaults changed
    # would mix replications of two models.
    meta = {"method": method, "seed": seed, "design": design_dict(design), "priors": merge_priors(design.priors)}
    if path.exists():
        old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        # A file written before a design field or a prior existed had that field's default.
        if "design" in old:
            old["design"] = design_dict(SbcDesign()) | old["design"]
        if "priors" in old:
            old["priors"] = merge_priors(design.priors) | old["priors"]
        if {k: old.get(k) for k in meta} != meta:
            sys.exit(f"{path} was made with other settings ({meta_path}): use another --out or the same settings")
        done = set(pd.read_csv(path, usecols=["rep"])["rep"])
    else:
        done = set()
    todo = [r for r in range(first, reps) if r not in done]
    print(f"{method}: {len(done)} replication(s) in {path}, {len(todo)} to run", flush=True)
    for start in range(0, len(todo), chunk):
        tic = time.perf_counter()
        table = run_sbc(method, todo[start : start + chunk], seed=seed, design=design, n_jobs=n_jobs)
        table.to_csv(path, mode="a", header=not path.exists(), index=False)
        meta |= {"commit": CODE_VERSION, "machine": f"{platform.node()} ({platform.processor() or platform.machine()})",
                 "n_jobs": n_jobs, "updated_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}  # fmt: skip
        meta_path.write_text(json.dumps(meta, indent=1))
        print(f"{method}: +{len(table)} replications ({_not_fitted(table)}) in "
              f"{time.perf_counter() - tic:.0f} s, median {table['wall_s'].median():.0f} s each",
              flush=True)  # fmt: skip


def plot(table: pd.DataFrame, title: str, path: Path, level: float = 0.95) -> None:
    """Rank ECDF minus the uniform CDF per parameter, with the simultaneous ``level`` band."""
    import matplotlib.pyplot as plt

    ok = table[~failed_fits(table)]
    names = rank_columns(ok)
    n_draws = int(ok["n_draws"].iloc[0])
    band = ecdf_band(len(ok), n_draws, level=level)
    ncol = 6
    nrow = math.ceil(len(names) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.2 * ncol, 1.7 * nrow), sharex=True, sharey=True)
    z = band["z"].to_numpy()
    for ax, name in zip(axes.ravel(), names, strict=False):
        ranks = ok[name].to_numpy(float)
        ecdf = (ranks[:, None] <= np.arange(n_draws)).mean(axis=0)
        ax.fill_between(z, band["lower"], band["upper"], color="0.85", step="post", lw=0)
        ax.step(z, ecdf - z, where="post", lw=1, color="C0")
        ax.axhline(0, color="0.4", lw=0.5)
        ax.set_title(name, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: rank ECDF - uniform, {len(ok)} replications, {level:.0%} simultaneous band", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _markdown(frame: pd.DataFrame) -> str:
    """A markdown table (pandas' to_markdown needs the optional tabulate)."""
    cells = frame.reset_index().map(lambda v: f"{v:.3f}" if isinstance(v, float) else str(v))
    rows = [list(cells.columns), ["---"] * cells.shape[1], *cells.to_numpy().tolist()]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def summarize(out: Path, level: float) -> None:
    for path in sorted(out.glob("sbc_*.csv")):
        method = path.stem.removeprefix("sbc_")
        table = pd.read_csv(path, keep_default_na=False, na_values=[""]).drop_duplicates("rep", keep="last")
        result = rank_uniformity(table, level=level)
        plot(table, method, out / f"sbc_{method}.png")
        ok = table[~failed_fits(table)]
        print(f"\n## {method}: {len(table)} replications ({_not_fitted(table)}), ranks among "
              f"{ok['n_draws'].iloc[0]} draws; {int((~result['passes']).sum())} of {len(result)} parameters fail "
              f"uniformity at family-wise level {level} (Holm); median wall {ok['wall_s'].median():.0f} s/fit; "
              f"median share of clipped "
              f"scores {ok['clipped_share'].median():.2f}; divergences in {int((ok['n_divergences'] > 0).sum())} "
              "fits")  # fmt: skip
        spread = rank_dispersion(ok[rank_columns(ok)].to_numpy(float), int(ok["n_draws"].iloc[0]), level=level)
        print(f"rank dispersion (mean 12 (u - 1/2)^2 per replication, {spread['expected']:.3f} if calibrated): "
              f"{spread['mean']:.3f} +- {spread['tolerance']:.3f} at level {level}: "
              f"{'pass' if spread['passes'] else 'FAIL'}\n")  # fmt: skip
        print(_markdown(result.assign(passes=result["passes"].map({True: "pass", False: "FAIL"}))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", nargs="+", choices=sorted(SBC_METHODS), default=["mle"])
    parser.add_argument("--reps", type=int, default=200, help="replications 0 .. reps-1 (default 200)")
    parser.add_argument("--first", type=int, default=0,
                        help="first replication (default 0): two machines can share a run, e.g. --first 150 "
                             "on one and --reps 150 on the other, their CSVs concatenated")
    parser.add_argument("--n-jobs", type=int, default=1, help="workers, one fit each (-1: every core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/sbc"))
    parser.add_argument("--chunk", type=int, default=0, help="replications per appended chunk (default 2 x workers)")
    parser.add_argument("--n-draws", type=int, default=99, help="draws the ranks are taken among")
    parser.add_argument("--tune", type=int, default=500, help="nuts: tuning steps per chain")
    parser.add_argument("--draws", type=int, default=500, help="nuts: draws per chain (thinned to --n-draws)")
    parser.add_argument("--chains", type=int, default=2, help="nuts: chains (run one after the other)")
    parser.add_argument("--families", type=int, default=40)
    parser.add_argument("--models-per-family", type=int, default=3)
    parser.add_argument("--benchmarks", type=int, default=4, help="the paper's first J benchmarks")
    parser.add_argument("--K", type=int, default=2)
    parser.add_argument("--eps", type=float, default=None,
                        help="simulated scores are clipped into [eps, 1 - eps] (default: ScalingData's 1e-3)")
    parser.add_argument("--skip-clipped", action="store_true",
                        help="fit only the data sets with no clipped score (SbcDesign.skip_clipped)")
    parser.add_argument("--prior", action="append", default=[], metavar="NAME=VALUE",
                        help="prior override for simulation and fit (repeatable); default: the package's priors")
    parser.add_argument("--plot", action="store_true", help="plot and summarize the CSVs in --out instead")
    parser.add_argument("--level", type=float, default=0.05, help="family-wise test level of the summary")
    args = parser.parse_args(argv)
    if args.plot:
        summarize(args.out, args.level)
        return
    priors = {k: float(v) for k, v in (p.split("=", 1) for p in args.prior)}
    design = SbcDesign(K=args.K, n_benchmarks=args.benchmarks, n_families=args.families,
                       models_per_family=args.models_per_family, n_draws=args.n_draws, chains=args.chains,
                       tune=args.tune, draws=args.draws, priors=priors, eps=args.eps,
                       skip_clipped=args.skip_clipped)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    workers = args.n_jobs if args.n_jobs > 0 else os.cpu_count() or 1
    for method in args.method:
        run(method, args.reps, args.seed, args.n_jobs, args.out, design, args.chunk or 2 * workers, args.first)


if __name__ == "__main__":
    main()
