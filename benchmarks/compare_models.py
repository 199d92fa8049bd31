"""Model configurations compared on held-out scores (``bl.compare_models``), printed as Markdown tables.

    python benchmarks/compare_models.py --variant paper --configs paper covariates --protocols largest-in-family
    python benchmarks/compare_models.py --variant raw --protocols largest-in-family holdout --recalibrate

Configurations are named presets of ``fit`` options (``CONFIGS``); the first is the
reference of the paired differences. Prints the summary table (elpd, MAE, CRPS, coverage,
width with family-group intervals), the paired differences against the reference and the
baseline, the coverage at 50/80/90/95%, and the wall time; ``--out PREFIX`` writes them
as CSV.
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd
from provenance import CODE_VERSION

import bayes_lsl as bl
from bayes_lsl.model_comparison import PROTOCOLS
from bayes_lsl.report import markdown_table

#: Named configurations (options of ``bl.fit``): the presets (``bl.PRESETS``), then single options.
CONFIGS = {
    **{name: {"model": name} for name in bl.PRESETS},
    "covariates": {"dispersion": "covariates"},
    "no-interaction": {"covariates": "no-interaction"},
    "compute": {"covariates": "compute"},
    "by-kind": {"by_kind": True},
    "extended+covariates": {"model": "extended", "dispersion": "covariates"},
    "student-t": {"family_effects": "student-t"},
    "extended+student-t": {"model": "extended", "family_effects": "student-t"},
    # Heavier-tailed scores: a scale mixture of two Betas with the same mean (issue 14).
    "extended+mixture": {"model": "extended", "scores": "beta-mixture"},
    # Family slopes are not in the marginal likelihood: these fit by NUTS (slow: minutes per fit).
    "extended+slopes": {"model": "extended", "family_slopes": "log_size", "method": "nuts"},
}


def _interval(row: pd.Series, name: str, sign: str = "") -> str:
    return f"{row[name]:{sign}.3f} [{row[f'{name}_lower']:{sign}.3f}, {row[f'{name}_upper']:{sign}.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="paper", choices=["paper", "raw"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--protocols", nargs="+", default=["largest-in-family"], choices=list(PROTOCOLS))
    parser.add_argument("--K", type=int, default=4)
    parser.add_argument("--method", default="mle")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--recalibrate", action="store_true")
    parser.add_argument("--out", default=None, help="prefix of the CSV files")
    args = parser.parse_args()

    commit = CODE_VERSION
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = bl.load_leaderboard(variant=args.variant)
        t0 = time.perf_counter()
        comparison = bl.compare_models(data, {name: CONFIGS[name] for name in args.configs}, K=args.K,
                                       method=args.method, protocols=args.protocols, n_folds=args.folds,
                                       seed=args.seed, n_jobs=args.jobs, recalibrate=args.recalibrate)  # fmt: skip
        seconds = time.perf_counter() - t0
    table = comparison.table
    summary = pd.DataFrame({
        "protocol": table["protocol"], "configuration": table["configuration"], "n": table["n"],
        "groups": table["clusters"],
        "elpd (se)": [f"{r['elpd']:.1f} ({r['elpd_se']:.1f})" for _, r in table.iterrows()],
        "MAE [95%]": [_interval(r, "mae") for _, r in table.iterrows()],
        "CRPS [95%]": [_interval(r, "crps") for _, r in table.iterrows()],
        "coverage [95%]": [_interval(r, "coverage") for _, r in table.iterrows()],
        "width": table["width"],
    })  # fmt: skip
    diffs = comparison.differences
    paired = pd.DataFrame({
        "protocol": diffs["protocol"], "configuration": diffs["configuration"], "minus": diffs["against"],
        "MAE [95%]": [_interval(r, "mae_difference", "+") for _, r in diffs.iterrows()],
        "CRPS [95%]": [_interval(r, "crps_difference", "+") for _, r in diffs.iterrows()],
        "elpd [95%]": [f"{r['elpd_difference']:+.1f} [{r['elpd_difference_lower']:+.1f}, "
                       f"{r['elpd_difference_upper']:+.1f}]" for _, r in diffs.iterrows()],
    })  # fmt: skip
    cal = comparison.calibration
    coverage = cal.pivot_table(index=["protocol", "configuration"], columns="level", values="coverage", sort=False)
    print(f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M')}, variant {args.variant}, K={args.K}, {args.method}, "
          f"{args.folds} folds, seed {args.seed}: {seconds:.0f} s\n")  # fmt: skip
    print(markdown_table(summary), markdown_table(paired), markdown_table(coverage.round(3).reset_index()), sep="\n")
    if args.out:
        table.to_csv(f"{args.out}table.csv", index=False)
        diffs.to_csv(f"{args.out}differences.csv", index=False)
        cal.to_csv(f"{args.out}calibration.csv", index=False)


if __name__ == "__main__":
    main()
