"""Time ``bl.fit(load_leaderboard(variant), K=4, method="nuts")`` called exactly so, and judge its convergence.

Usage (from the repository root, with BAYES_LSL_DATA set)::

    python benchmarks/nuts_default.py --variants paper raw --seeds 0 1 2 3 4

For each (variant, seed) the whole call is timed (the MLE it fits first, compilation and
sampling), then one Markdown row is printed: max R-hat and min bulk ESS over ``beta``,
``lam``, ``b``, ``phi``, ``corr`` (structural constants left out, as ``bl.diagnose`` does),
min tail ESS, divergences, chains in a minor mode and wall time. Options after ``--option``
(e.g. ``--option draws=2000 --option adaptation=low_rank``) are passed to ``fit`` to
compare settings; without them the call is the default one. Copy the rows into
benchmarks/README.md with the date, the machine, its load and the commit.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import time
import warnings

from provenance import CODE_VERSION

import bayes_lsl as bl

#: The parameters the target is set on (issue 13): max R-hat <= 1.01, min bulk ESS >= 400.
TARGET_VARS = ("beta", "lam", "b", "phi", "corr")


def _option(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def run(variant: str, seed: int, options: dict) -> str:
    """One timed default call; its Markdown row."""
    data = bl.load_leaderboard(variant)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bl.fit(data, K=4, method="nuts", seed=seed, progress=False, **options)
    wall = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = bl.diagnose(fit, var_names=TARGET_VARS)
    table = report.table
    slowest = ", ".join(f"`{i}`" for i in table["ess_bulk"].nsmallest(2).index)
    ess_per_s = table["ess_bulk"].min() / fit.attrs["wall_time_s"]
    warned = "yes" if any("converge" in str(w.message) for w in caught) else "no"
    return (
        f"| {variant} | {seed} | {table['r_hat'].max():.3f} | {table['ess_bulk'].min():.0f} | "
        f"{table['ess_tail'].min():.0f} | {report.divergences} | {fit.attrs['minor_mode_chains'] or 'none'} | "
        f"{wall:.0f} | {fit.attrs['wall_time_s']:.0f} | {ess_per_s:.2f} | {load:.1f} | {warned} | {slowest} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["paper", "raw"], choices=["paper", "raw"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--option", action="append", default=[], type=_option,
                        help="KEY=VALUE passed to fit (compare settings; default: none)")  # fmt: skip
    args = parser.parse_args()
    options = dict(args.option)
    commit = CODE_VERSION
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()} ({os.cpu_count()} cores), commit {commit}, "
          f"options {options or 'none (the default call)'}")  # fmt: skip
    print("| variant | seed | max R-hat | min bulk ESS | min tail ESS | divergences | minor-mode chains | "
          "wall s (whole call) | sampling s | ESS/s (sampling) | load before | warned | slowest |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for variant in args.variants:
        for seed in args.seeds:
            print(run(variant, seed, options), flush=True)


if __name__ == "__main__":
    main()
