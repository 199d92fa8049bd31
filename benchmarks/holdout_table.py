"""Held-out scores of our fits and the baseline, with cluster-bootstrap intervals and paired differences.

For each variant, K and method asked for, either the authors' protocol (``--protocol
paper``: fit without the 41 held-out models, predict the 11 test models' 102 scores) or
cross-validation by family (``--protocol cv``, 5 folds). Every row gets the MAE, the
coverage and width of the 95% intervals, and the proper scores (mean CRPS, 95% interval
score and log predictive density, :mod:`bayes_lsl.scores`), each with its family-group
bootstrap interval and, for every row but the reference, the paired difference of the
MAE, CRPS, interval score and log density minus the reference's (the first baseline
loss) on the same resamples. Prints a Markdown table.

    python benchmarks/holdout_table.py --variants paper raw --Ks 3 4 5 --methods baseline mle nuts
    python benchmarks/holdout_table.py --variants paper --Ks 4 --methods mle --dispersion covariates
    python benchmarks/holdout_table.py --protocol cv --variants paper raw --Ks 4 --methods baseline mle
    python benchmarks/holdout_table.py --variants paper raw --Ks 3 4 5 --methods baseline mle --jobs 2
    python benchmarks/holdout_table.py --protocol largest --Ks 4 --methods baseline mle \
        --config paper={} --config by-kind='{"by_kind": true}'

``--protocol largest`` is ``cross_validate(..., scheme="largest-in-family")`` (5 folds):
each family's largest model held out and predicted from the rest of the family. Each
``--config NAME=JSON`` is a configuration of ``fit``'s options (every method but the
baseline gets one row per configuration; ``--dispersion`` is the shortcut for the one
option it names).

``--save-predictions DIR`` writes each row's predictions; with ``--reuse-predictions`` a
fitted method's row is scored from the saved file instead of fitted again (the baseline
is always refitted: it takes seconds).

NUTS chains start at the MLE, with the ``partial`` parameterization.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from functools import partial
from pathlib import Path

import pandas as pd
from provenance import CODE_VERSION

import bayes_lsl as bl
from bayes_lsl.baseline import LOSSES
from bayes_lsl.holdout import N_BOOT, HoldoutResult, score_predictions
from bayes_lsl.parallel import run_tasks
from bayes_lsl.report import markdown_table

#: Protocols: the authors' held-out models, or cross-validation by this scheme.
PROTOCOLS = {"paper": None, "cv": "family", "largest": "largest-in-family"}
#: The proper scores in the table: summary name, column label.
PROPER = (("crps", "crps"), ("interval_score", "interval score"), ("log_density", "log density"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="paper", choices=list(PROTOCOLS))
    parser.add_argument("--variants", nargs="+", default=["paper", "raw"])
    parser.add_argument("--Ks", nargs="+", type=int, default=[3, 4, 5])
    parser.add_argument("--methods", nargs="+", default=["baseline", "mle", "nuts"])
    parser.add_argument("--baseline-losses", nargs="+", default=list(LOSSES), choices=LOSSES,
                        help="the first is the reference of the paired differences")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=N_BOOT)
    parser.add_argument("--dispersion", default="benchmark", choices=["benchmark", "covariates"])
    parser.add_argument("--config", action="append", default=[], metavar="NAME=JSON",
                        help="a configuration of fit's options, e.g. by-kind='{\"by_kind\": true}' (repeatable)")
    parser.add_argument("--out", default=None, help="also write the rows as CSV")
    parser.add_argument("--save-predictions", default=None, help="folder for each row's predictions (CSV)")
    parser.add_argument("--reuse-predictions", action="store_true", help="score saved predictions, do not refit")
    parser.add_argument("--jobs", type=int, default=1, help="rows fitted side by side (joblib workers; -1: all cores)")
    args = parser.parse_args()

    commit = CODE_VERSION
    scoring = {"n_boot": args.n_boot, "seed": args.seed, "progress": False}
    datasets, runs = {}, []
    configs = [json.loads(item.split("=", 1)[1]) for item in args.config] or [{"dispersion": args.dispersion}]
    labels = {_options_key(c): item.split("=", 1)[0] for c, item in zip(configs, args.config, strict=False)}
    for variant in args.variants:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            datasets[variant] = bl.load_leaderboard(variant=variant)
        # The baseline first: it is the reference of every paired difference.
        for method in sorted(args.methods, key=lambda m: m != "baseline"):
            # nuts: the default start (dispersed around the MLE) and parameterization, named in the saved runs.
            nuts = {"init": "mle-dispersed", "centered": "partial"} if method == "nuts" else {}
            runs += [(variant, method, None, {"loss": loss}) for loss in args.baseline_losses] if method == "baseline" \
                else [(variant, method, K, config | nuts) for K in args.Ks for config in configs]  # fmt: skip
    folder = Path(args.save_predictions or ".")
    saved = {_key(r): folder / f"{args.protocol}-{r[0]}-{r[1]}-{_file_label(r, labels)}.csv" for r in runs}
    reused = {k for k, path in saved.items() if args.reuse_predictions and k[1] != "baseline" and path.is_file()}
    # Every row that needs fitting is an independent task: --jobs runs them side by side.
    fitted = run_tasks(partial(_evaluate, datasets, args.protocol, scoring), [r for r in runs if _key(r) not in reused],
                       n_jobs=args.jobs, desc="held-out grid")  # fmt: skip
    done = dict(zip([_key(r) for r in runs if _key(r) not in reused], fitted, strict=True))
    rows, reference = [], {}
    for variant, method, K, options in runs:
        key = _key((variant, method, K, options))
        if key in reused:
            predictions = pd.read_csv(saved[key])
            kept = {k: v for k, v in scoring.items() if k != "progress"} | {"cluster": "group", "level": 0.95}
            result, seconds = HoldoutResult(predictions, score_predictions(predictions, **kept), [], kept), float("nan")
        else:
            result, seconds = done[key]
        if args.save_predictions:
            saved[key].parent.mkdir(parents=True, exist_ok=True)
            result.predictions.to_csv(saved[key], index=False)
        overall = result.summary.loc["overall"]
        row = {"variant": variant, "method": method, "K": K or "-", "loss": options.get("loss", "-"),
               "config": _config_label(options, labels) if method != "baseline" else "-", "n": int(overall["n"]),
               "clusters": int(overall["clusters"]), "mae": overall["mae"],
               "mae 95%": f"[{overall['mae_lower']:.3f}, {overall['mae_upper']:.3f}]",
               "se (clustered)": overall["mae_se"], "se (iid)": overall["mae_se_iid"],
               "coverage": overall["coverage"],
               "coverage 95%": f"[{overall['coverage_lower']:.2f}, {overall['coverage_upper']:.2f}]"
               if overall["coverage"] == overall["coverage"] else "-",
               "width": overall["width"]}  # fmt: skip
        for name, label in PROPER:
            row[label] = _with_interval(overall, name, "")
        if variant not in reference:
            reference[variant] = result
            row["minus reference"] = "reference"
            for _, label in PROPER:
                row[f"{label} minus reference"] = "reference"
        else:
            diff = result.compare(reference[variant]).loc["overall"]
            row["minus reference"] = _with_interval(diff, "difference", "+")
            for name, label in PROPER:
                row[f"{label} minus reference"] = _with_interval(diff, f"{name}_difference", "+")
        row["seconds"] = seconds
        rows.append(row)
        print(pd.DataFrame(rows[-1:]).round(4).to_string(index=False, header=len(rows) == 1), flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    print(f"\ncommit {commit}, {time.strftime('%Y-%m-%d')}, protocol {args.protocol}, {args.n_boot} resamples\n")
    print(markdown_table(table.round(4)))


def _with_interval(stats: pd.Series, name: str, sign: str) -> str:
    """``value [lower, upper]`` of statistic ``name`` (its ``_lower`` and ``_upper``), or ``-`` if NaN."""
    if stats[name] != stats[name]:
        return "-"
    return f"{stats[name]:{sign}.4f} [{stats[f'{name}_lower']:{sign}.4f}, {stats[f'{name}_upper']:{sign}.4f}]"


def _options_key(options: dict) -> str:
    """A configuration's options as a hashable, canonical string."""
    return json.dumps(options, sort_keys=True)


def _key(run: tuple) -> tuple:
    """A hashable name of a row: variant, method, K and its options."""
    variant, method, K, options = run
    return variant, method, K, _options_key(options)


def _config_label(options: dict, labels: dict) -> str | None:
    """The ``--config`` name of a row's fit options (the NUTS start and parameterization aside),
    else its dispersion."""
    config = {k: v for k, v in options.items() if k not in ("init", "centered")}
    return labels.get(_options_key(config), config.get("dispersion"))


def _file_label(run: tuple, labels: dict) -> str:
    """The part of a row's predictions file name after protocol, variant and method."""
    _, method, K, options = run
    if method == "baseline":
        return options["loss"]
    config = _config_label(options, labels)
    return f"K{K}" + (f"-{config}" if config and config != "benchmark" else "")


def _evaluate(datasets: dict, protocol: str, scoring: dict, run: tuple) -> tuple[HoldoutResult, float]:
    """One row's result and its wall time (seconds)."""
    variant, method, K, options = run
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if protocol == "paper":
            result = bl.evaluate_holdout(datasets[variant], "paper", K=K or 4, method=method, **scoring, **options)
        else:
            result = bl.cross_validate(datasets[variant], 5, K=K or 4, method=method, scheme=PROTOCOLS[protocol],
                                       **scoring, **options)  # fmt: skip
    return result, time.perf_counter() - t0


if __name__ == "__main__":
    main()
