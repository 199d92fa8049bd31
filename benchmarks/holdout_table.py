"""The authors' held-out protocol: MAE, coverage and width for our fits and the baseline.

Fits without the 41 held-out models and predicts the 11 test models' 102 scores, for
each variant, K and method asked for, then prints a Markdown table.

    python benchmarks/holdout_table.py --variants paper raw --Ks 3 4 5 --methods mle nuts baseline
    python benchmarks/holdout_table.py --variants paper --Ks 4 --methods mle --dispersion covariates

NUTS chains start at the MLE, with the ``partial`` parameterization.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import warnings

import pandas as pd

import bayes_lsl as bl
from bayes_lsl.report import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["paper", "raw"])
    parser.add_argument("--Ks", nargs="+", type=int, default=[3, 4, 5])
    parser.add_argument("--methods", nargs="+", default=["mle", "nuts", "baseline"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dispersion", default="benchmark", choices=["benchmark", "covariates"])
    parser.add_argument("--out", default=None, help="also write the rows as CSV")
    args = parser.parse_args()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = []
    for variant in args.variants:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = bl.load_leaderboard(variant=variant)
        for method in args.methods:
            for K in [None] if method == "baseline" else args.Ks:
                options = {"init": "mle", "centered": "partial"} if method == "nuts" else {}
                if method != "baseline":
                    options["dispersion"] = args.dispersion
                t0 = time.perf_counter()
                result = bl.evaluate_holdout(data, "paper", K=K or 4, method=method, seed=args.seed, progress=False,
                                             **options)  # fmt: skip
                overall = result.summary.loc["overall"]
                rows.append({"variant": variant, "method": method, "K": K or "-",
                             "dispersion": args.dispersion if method != "baseline" else "-", "n": int(overall["n"]),
                             "mae": overall["mae"], "mae_se": overall["mae_se"], "coverage": overall["coverage"],
                             "width": overall["width"], "seconds": time.perf_counter() - t0})  # fmt: skip
                print(pd.DataFrame(rows[-1:]).round(4).to_string(index=False, header=len(rows) == 1), flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    print(f"\ncommit {commit}, {time.strftime('%Y-%m-%d')}\n")
    print(markdown_table(table.round(3)))


if __name__ == "__main__":
    main()
