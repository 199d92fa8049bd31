"""Held-out scores of our fits and the baseline, with cluster-bootstrap intervals and paired differences.

For each variant, K and method asked for, either the authors' protocol (``--protocol
paper``: fit without the 41 held-out models, predict the 11 test models' 102 scores) or
cross-validation by family (``--protocol cv``, 5 folds). Every row gets the MAE with its
family-group bootstrap interval and, for every row but the reference, the paired
difference of its MAE minus the reference's (the first baseline loss) on the same
resamples. Prints a Markdown table.

    python benchmarks/holdout_table.py --variants paper raw --Ks 3 4 5 --methods baseline mle nuts
    python benchmarks/holdout_table.py --variants paper --Ks 4 --methods mle --dispersion covariates
    python benchmarks/holdout_table.py --protocol cv --variants paper raw --Ks 4 --methods baseline mle

``--save-predictions DIR`` writes each row's predictions; with ``--reuse-predictions`` a
fitted method's row is scored from the saved file instead of fitted again (the baseline
is always refitted: it takes seconds).

NUTS chains start at the MLE, with the ``partial`` parameterization.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import warnings
from pathlib import Path

import pandas as pd

import bayes_lsl as bl
from bayes_lsl.baseline import LOSSES
from bayes_lsl.holdout import N_BOOT, HoldoutResult, score_predictions
from bayes_lsl.report import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="paper", choices=["paper", "cv"])
    parser.add_argument("--variants", nargs="+", default=["paper", "raw"])
    parser.add_argument("--Ks", nargs="+", type=int, default=[3, 4, 5])
    parser.add_argument("--methods", nargs="+", default=["baseline", "mle", "nuts"])
    parser.add_argument("--baseline-losses", nargs="+", default=list(LOSSES), choices=LOSSES,
                        help="the first is the reference of the paired differences")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=N_BOOT)
    parser.add_argument("--dispersion", default="benchmark", choices=["benchmark", "covariates"])
    parser.add_argument("--out", default=None, help="also write the rows as CSV")
    parser.add_argument("--save-predictions", default=None, help="folder for each row's predictions (CSV)")
    parser.add_argument("--reuse-predictions", action="store_true", help="score saved predictions, do not refit")
    args = parser.parse_args()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    scoring = {"n_boot": args.n_boot, "seed": args.seed, "progress": False}
    rows = []
    for variant in args.variants:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = bl.load_leaderboard(variant=variant)
        reference = None
        # The baseline first: it is the reference of every paired difference.
        for method in sorted(args.methods, key=lambda m: m != "baseline"):
            runs = [(None, {"loss": loss}) for loss in args.baseline_losses] if method == "baseline" else [
                (K, {"dispersion": args.dispersion} | ({"init": "mle", "centered": "partial"} if method == "nuts"
                                                       else {})) for K in args.Ks]  # fmt: skip
            for K, options in runs:
                name = f"{args.protocol}-{variant}-{method}-{options.get('loss', 'K' + str(K))}"
                saved = Path(args.save_predictions or ".") / f"{name}.csv"
                t0 = time.perf_counter()
                reused = args.reuse_predictions and method != "baseline" and saved.is_file()
                if reused:
                    predictions = pd.read_csv(saved)
                    kept = {k: v for k, v in scoring.items() if k != "progress"} | {"cluster": "group", "level": 0.95}
                    result = HoldoutResult(predictions, score_predictions(predictions, **kept), [], kept)
                elif args.protocol == "paper":
                    result = bl.evaluate_holdout(data, "paper", K=K or 4, method=method, **scoring, **options)
                else:
                    result = bl.cross_validate(data, 5, K=K or 4, method=method, **scoring, **options)
                seconds = time.perf_counter() - t0
                if args.save_predictions:
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    result.predictions.to_csv(saved, index=False)
                overall = result.summary.loc["overall"]
                row = {"variant": variant, "method": method, "K": K or "-", "loss": options.get("loss", "-"),
                       "dispersion": options.get("dispersion", "-"), "n": int(overall["n"]),
                       "clusters": int(overall["clusters"]), "mae": overall["mae"],
                       "mae 95%": f"[{overall['mae_lower']:.3f}, {overall['mae_upper']:.3f}]",
                       "se (clustered)": overall["mae_se"], "se (iid)": overall["mae_se_iid"],
                       "coverage": overall["coverage"],
                       "coverage 95%": f"[{overall['coverage_lower']:.2f}, {overall['coverage_upper']:.2f}]"
                       if overall["coverage"] == overall["coverage"] else "-",
                       "width": overall["width"]}  # fmt: skip
                if reference is None:
                    reference = result
                    row["minus reference"] = "reference"
                else:
                    diff = result.compare(reference).loc["overall"]
                    row["minus reference"] = (f"{diff['difference']:+.4f} [{diff['difference_lower']:+.4f}, "
                                              f"{diff['difference_upper']:+.4f}]")  # fmt: skip
                row["seconds"] = float("nan") if reused else seconds
                rows.append(row)
                print(pd.DataFrame(rows[-1:]).round(4).to_string(index=False, header=len(rows) == 1), flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    print(f"\ncommit {commit}, {time.strftime('%Y-%m-%d')}, protocol {args.protocol}, {args.n_boot} resamples\n")
    print(markdown_table(table.round(4)))


if __name__ == "__main__":
    main()
