"""Time the fitting methods on the leaderboard data and print the figures.

Usage (from the repository root, with BAYES_LSL_DATA set)::

    python benchmarks/bench_fit.py mle --variant paper --K 4
    python benchmarks/bench_fit.py sweep --variant paper --Ks 1 2 3 4 5 6 7 8
    python benchmarks/bench_fit.py advi --variant raw
    python benchmarks/bench_fit.py nuts --variant raw --init-mle --centered partial

Each run prints one Markdown table row per fit; copy them into benchmarks/README.md with
the date and the machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
import warnings

import numpy as np

import bayes_lsl as bl


def _header() -> None:
    machine = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)"
    print(f"# {time.strftime('%Y-%m-%d')} on {machine}")


def _mle_row(what: str, variant: str, K: int, a: dict, wall: float) -> str:
    return (f"| {what} | {variant} | {K} | {a['marginal_loglik']:.2f} +- {a['marginal_loglik_mc_se']:.2f} | "
            f"{a['marginal_loglik_objective']:.2f} | {a['aic']:.1f} | {a['bic']:.1f} | "
            f"{a['n_agree']}/{a['n_starts']} | {a['grad_norm']:.2g} | {wall:.1f} |")  # fmt: skip


def bench_mle(data, K: int, variant: str, **opts) -> bl.fit:
    t0 = time.perf_counter()
    fit = bl.fit(data, K=K, method="mle", progress=False, **opts)
    print(_mle_row("mle", variant, K, fit.attrs, time.perf_counter() - t0))
    return fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["mle", "sweep", "map", "advi", "nuts"])
    parser.add_argument("--variant", default="paper", choices=["paper", "raw"])
    parser.add_argument("--K", type=int, default=4)
    parser.add_argument("--Ks", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--init-mle", action="store_true", help="nuts: start the chains at the MLE")
    parser.add_argument("--n-starts", type=int, default=None)
    parser.add_argument("--adaptation", default="draw_diag", choices=["draw_diag", "diag", "low_rank"],
                        help="nuts (nutpie)")  # fmt: skip
    parser.add_argument("--centered", nargs="?", const="true", default=None,
                        choices=["false", "true", "partial"],
                        help="family effects (default: fit's; bare --centered: centered)")  # fmt: skip
    parser.add_argument("--target-accept", type=float, default=0.8, help="nuts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    centered = {"false": False, "true": True}.get(args.centered, args.centered)
    warnings.simplefilter("ignore", UserWarning)
    data = bl.load_leaderboard(args.variant)
    opts = {} if args.n_starts is None else {"n_starts": args.n_starts}
    _header()
    if args.what in ("mle", "sweep"):
        print("| method | variant | K | log-lik (IS) | objective | AIC | BIC | starts agree | grad norm | wall s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        t0 = time.perf_counter()
        if args.what == "mle":
            bench_mle(data, args.K, args.variant, **opts)
            return
        # The sweep as users run it: select_k, with its cheaper options and warm starts;
        # each K's result is logged as it finishes.
        logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
        logging.getLogger("bayes_lsl").setLevel(logging.INFO)
        sweep = bl.select_k(data, Ks=args.Ks, progress=False, **opts)
        table = sweep.table
        for K, fit in sweep.fits.items():
            print(_mle_row("sweep", args.variant, K, fit.attrs, table.loc[K, "wall_time_s"]))
        print(f"sweep total: {time.perf_counter() - t0:.1f} s")
        return
    init = bl.fit(data, K=args.K, method="mle", progress=False) if args.init_mle else None
    t0 = time.perf_counter()
    options = {"init": init} if init is not None else {}
    if args.what == "nuts":
        options["adaptation"] = args.adaptation
        options["target_accept"] = args.target_accept
    fit = bl.fit(data, K=args.K, method=args.what, progress=False, centered=centered, seed=args.seed, **options)
    wall = time.perf_counter() - t0
    a = fit.attrs
    if args.what == "nuts":
        table = bl.diagnose(fit).table
        n_draws = fit.posterior.sizes["chain"] * fit.posterior.sizes["draw"]
        ess = float(np.nanmin(table["ess_bulk"]))
        print("| method | variant | K | init | wall s | divergences | max R-hat | min bulk ESS | ESS/s | minor modes |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        print(f"| nuts | {args.variant} | {args.K} | {'mle' if init is not None else 'default'} | {wall:.0f} | "
              f"{a['n_divergences']} | {np.nanmax(table['r_hat']):.3f} | {ess:.0f} | {ess / wall:.2f} | "
              f"{a['minor_mode_chains']} | {args.adaptation}, centered={centered}, {n_draws} draws")  # fmt: skip
    else:
        if args.what == "advi":
            extra = f"ELBO {a['elbo_final']:.1f}, converged {a['elbo_converged']}"
        else:
            extra = f"logp {a['map_logp']:.1f}"
        print(f"| {args.what} | {args.variant} | {args.K} | {wall:.1f} s | {extra} |")


if __name__ == "__main__":
    main()
