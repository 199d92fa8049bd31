"""The ``bayes-lsl`` command line.

Every command exits 0 on success, 2 with one line ``bayes-lsl: error: ...`` on bad input
(a :class:`~bayes_lsl.errors.BayesLslError` or a file that cannot be read or written), and
1 with the traceback and a "please report" line on anything else (a bug). Output files are
written next to their destination and renamed into place, so a failed command leaves none
behind.

Draws: ``fit --draws`` is what PyMC calls it, the draws kept per chain of ``nuts``;
``predict`` and ``allocate`` take ``--n-draws``, the parameter draws their intervals are
computed from (``--draws`` there is the old spelling, accepted with a warning).

Examples
--------
bayes-lsl data --data leaderboard --variant raw
bayes-lsl fit --data example --K 2 --method mle --out fit.nc
bayes-lsl select-k --data example --Ks 1 2 3 --out ic.csv --plot ic.png
bayes-lsl select-k --data example --Ks 1 2 3 --jobs 2 --no-warm-start --out ic.csv
bayes-lsl predict fit.nc new_models.csv --n-draws 2000 --out predictions.csv
bayes-lsl allocate fit.nc --flops 1e21 1e22 --out allocation.csv
bayes-lsl report fit.nc --out report
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from pathlib import Path
from typing import NoReturn

import pandas as pd
import xarray as xr

from bayes_lsl.data import DataError, ScalingData, load_example, load_leaderboard
from bayes_lsl.errors import BayesLslError
from bayes_lsl.files import atomic_path
from bayes_lsl.fitting import PRESETS
from bayes_lsl.fitting.mle import BIC_N
from bayes_lsl.fitting.nuts import DEPRECATED_INITS as NUTS_OLD_INITS
from bayes_lsl.fitting.nuts import NAMED_INITS as NUTS_INITS
from bayes_lsl.sources import DataNotFoundError

#: Errors that describe bad input (and files that cannot be read or written), reported in
#: one line; anything else is a bug and keeps its traceback.
_USER_ERRORS = (BayesLslError, OSError)


# ------------------------------------------------------------------ input and output
def _read_csv(path: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise DataError(f"no CSV file at {path!r}")
    try:
        return pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path!r} as CSV: {err}") from err


def _load(args: argparse.Namespace) -> ScalingData:
    if args.data == "example":
        return load_example()
    if args.data == "leaderboard":
        try:
            return load_leaderboard(args.variant, data_dir=args.data_dir)
        except DataNotFoundError as err:
            raise err.for_option("--data-dir DIR") from None
    if not Path(args.data).is_file():
        raise DataError(f"--data {args.data!r}: not 'example', 'leaderboard' or an existing CSV file")
    return ScalingData.from_frame(_read_csv(args.data))


def _load_fit(path: str) -> xr.DataTree:
    from bayes_lsl.io import load_fit

    return load_fit(path)


def _out_path(path: str, kind: str = "file") -> Path:
    """Check an output destination before any work, so a long fit does not fail at the end."""
    out = Path(path)
    if not out.parent.is_dir():
        raise OSError(f"cannot write {path!r}: directory {str(out.parent)!r} does not exist")
    if kind == "file" and out.is_dir():
        raise OSError(f"cannot write {path!r}: it is a directory")
    if kind == "dir" and out.exists() and not out.is_dir():
        raise OSError(f"cannot write the report to {path!r}: it is a file")
    return out


def _write_csv(table: pd.DataFrame, path: Path, index: bool = False) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=index)


def _write_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def _agg() -> None:
    # A command line never shows figures, and must work without a display.
    import matplotlib

    matplotlib.use("Agg")


# ------------------------------------------------------------------ commands
def _cmd_data(args: argparse.Namespace) -> None:
    print(_load(args))


def _cmd_fit(args: argparse.Namespace) -> None:
    from bayes_lsl.fitting import fit
    from bayes_lsl.fitting.mle import start_agreement
    from bayes_lsl.io import save_fit

    out = _out_path(args.out)
    data = _load(args)
    options = {}
    if args.method == "nuts":
        # Only what was given: `fit --method nuts` does what bl.fit(data, K, method="nuts") does.
        given = {"centered": {"false": False, "true": True}.get(args.centered, args.centered), "init": args.init,
                 "chains": args.chains, "tune": args.tune, "draws": args.draws}  # fmt: skip
        options = {k: v for k, v in given.items() if v is not None}
    # The design, only where given (the default is fit's: the paper's covariates).
    if args.model is not None:
        options["model"] = args.model
    if args.covariates is not None:
        options["covariates"] = _covariates_option(args.covariates)
    if args.by_kind:
        options["by_kind"] = True
    # The family effects' distribution (issue 14), only where given.
    if args.family_effects != "normal":
        options["family_effects"] = args.family_effects
    if args.family_df is not None:
        options["priors"] = {"family_df": args.family_df}
    # Random family slopes (issue 14), only where given.
    if args.family_slopes is not None:
        options["family_slopes"] = [t.strip() for t in args.family_slopes.split(",")]
    # Heavier-tailed scores (issue 14), only where given.
    if args.scores != "beta":
        options["scores"] = args.scores
    if args.score_kappa is not None:
        options["priors"] = {**options.get("priors", {}), "score_kappa": args.score_kappa}
    result = fit(data, K=args.K, method=args.method, seed=args.seed, progress=not args.quiet, **options)
    save_fit(result, out)
    attrs = result.attrs
    if args.method == "mle":
        print(f"K={args.K}: marginal log-likelihood {attrs['marginal_loglik']:.2f} "
              f"(+- {attrs['marginal_loglik_mc_se']:.2f}), AIC {attrs['aic']:.1f}, "
              f"BIC {attrs['bic']:.1f} (n = {attrs['bic_sample_size']} {attrs['bic_n']}; "
              f"{start_agreement(attrs)})")  # fmt: skip
    print(f"wrote {out}")


def _covariates_option(value: str) -> str | list[str]:
    """``--covariates``: a set's name, or terms separated by commas."""
    return [t.strip() for t in value.split(",")] if "," in value else value


def _cmd_select_k(args: argparse.Namespace) -> None:
    from bayes_lsl.selection import select_k

    out = _out_path(args.out)
    plot = _out_path(args.plot) if args.plot else None
    data = _load(args)
    table = select_k(data, Ks=args.Ks, seed=args.seed, progress=not args.quiet, bic_n=args.bic_n,
                     warm_start=not args.no_warm_start, n_jobs=args.jobs).table  # fmt: skip
    fig = None
    if plot:
        _agg()
        from bayes_lsl.plots import plot_information_criteria

        fig = plot_information_criteria(table)  # drawn before writing anything, so a failure leaves no table
    _write_csv(table, out, index=True)
    if fig is not None:
        _write_figure(fig, plot)
    print(table[["marginal_loglik", "n_params", "aic", "bic"]].to_string(float_format="{:.1f}".format))
    print(f"BIC's n: {args.bic_n}")
    print(f"wrote {out}" + (f" and {plot}" if plot else ""))


def _cmd_predict(args: argparse.Namespace) -> None:
    from bayes_lsl.predict import predict

    out = _out_path(args.out)
    fit = _load_fit(args.fit)
    new = _read_csv(args.csv)
    try:
        table = predict(fit, new, level=args.level, seed=args.seed, n_draws=args.n_draws, kind=args.kind)
    except DataError as err:
        raise DataError(f"{args.csv}: {err}") from err
    _write_csv(table, out)
    print(f"wrote {out}: {args.kind} of {table['model'].nunique()} model(s), {len(table)} rows")


def _cmd_allocate(args: argparse.Namespace) -> None:
    import numpy as np

    from bayes_lsl.allocation import allocate, paper_budgets
    from bayes_lsl.plots import plot_allocation

    if not args.flops and not args.paper_budgets:
        raise BayesLslError("no budgets: give --flops F [F ...] and/or --paper-budgets")
    out = _out_path(args.out)
    plot = _out_path(args.plot) if args.plot else None
    fit = _load_fit(args.fit)
    budgets = list(args.flops or []) + (list(paper_budgets(fit)) if args.paper_budgets else [])
    table = allocate(
        fit, np.unique(budgets), skill=args.skill, benchmark=args.benchmark, constrained=not args.unconstrained,
        level=args.level, n_draws=args.n_draws, seed=args.seed,
    )  # fmt: skip
    fig = None
    if plot:
        _agg()
        fig = plot_allocation(table)
    _write_csv(table, out)
    if fig is not None:
        _write_figure(fig, plot)
    print(f"wrote {out}: {table['flops'].nunique()} budget(s) x {table['target'].nunique()} target(s)"
          + (f", and {plot}" if plot else ""))  # fmt: skip
    print(f"  sizes in billions of parameters, tokens in trillions; {int(table['set_by_box'].sum())} of "
          f"{len(table)} optima set by the data's box rather than the data (column set_by_box)")  # fmt: skip


def _cmd_report(args: argparse.Namespace) -> None:
    _agg()
    from bayes_lsl.report import write_report

    out = _out_path(args.out, kind="dir")
    index = write_report(_load_fit(args.fit), out)
    print(f"wrote {index}")


# ------------------------------------------------------------------ parser
class _Renamed(argparse.Action):
    """An option's old spelling: still accepted, with a one-line warning naming the new one."""

    def __init__(self, option_strings, dest, new: str, **kwargs) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"bayes-lsl: warning: {option_string} is now {self.new} in '{parser.prog}' (the old name will be "
              f"removed)", file=sys.stderr)  # fmt: skip
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"bayes-lsl: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bayes-lsl",
        description="Latent-skill scaling laws for LLMs (arXiv:2512.06553).",
        epilog="Example: bayes-lsl fit --data example --K 2 --out fit.nc\n"
        "Example: bayes-lsl report fit.nc --out report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help: str, examples: list[str], description: str = "") -> argparse.ArgumentParser:
        epilog = "\n".join(f"Example: bayes-lsl {name} {e}" for e in examples)
        p = sub.add_parser(name, help=help, description=description or help, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        p.add_argument("--quiet", action="store_true", help="no progress bars or info messages")
        p.set_defaults(func=func)
        return p

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default="leaderboard",
                       help="'leaderboard' (default), 'example' (the shipped simulated set) or a CSV path "
                            "(columns model, family, size, tokens and one per benchmark)")  # fmt: skip
        p.add_argument("--variant", default="paper", choices=["paper", "raw"], help="leaderboard variant")
        p.add_argument("--data-dir", default=None, help="directory of the leaderboard files ($BAYES_LSL_DATA)")

    def fit_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("fit", metavar="FIT", help="a fit saved by 'bayes-lsl fit' (NetCDF)")

    def draw_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--level", type=float, default=0.95, help="probability of the intervals (default 0.95)")
        p.add_argument("--n-draws", type=int, default=1000, metavar="N",
                       help="parameter draws the intervals are computed from (default 1000)")  # fmt: skip
        # The old spelling (bayes_lsl 0.1); "fit --draws" means the draws per chain, as in PyMC.
        p.add_argument("--draws", type=int, dest="n_draws", action=_Renamed, new="--n-draws", help=argparse.SUPPRESS)
        p.add_argument("--seed", type=int, default=0, help="seed (default 0)")

    p = command("data", _cmd_data, "load and validate data, print a summary",
                ["--data leaderboard --variant raw", "--data my_scores.csv"])  # fmt: skip
    data_args(p)

    p = command("fit", _cmd_fit, "fit the model and save the fit (NetCDF)",
                ["--data example --K 2 --method mle --out fit.nc",
                 "--data leaderboard --variant raw --K 4 --method nuts --out nuts.nc --quiet"])  # fmt: skip
    data_args(p)
    p.add_argument("--K", type=int, default=4, help="number of skills (default 4)")
    p.add_argument("--method", default="mle", choices=["mle", "map", "advi", "nuts"],
                   help="mle: the paper's estimator (default); map, advi, nuts: Bayesian")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of every random step (default 0)")
    p.add_argument("--init", default=None, choices=[*NUTS_INITS, *NUTS_OLD_INITS],
                   help="nuts: mle-dispersed (default: each chain at its own draw around the MLE, fitted "
                        "first), mle-point (every chain at the MLE; 'mle' is its old name) or default "
                        "(PyMC's start)")  # fmt: skip
    p.add_argument("--centered", default=None, choices=["partial", "true", "false"],
                   help="nuts: parameterization of the family effects (default partial; see build_model)")  # fmt: skip
    p.add_argument("--chains", type=int, default=None, help="nuts: chains (default: fit's, 4)")
    p.add_argument("--tune", type=int, default=None, help="nuts: tuning steps per chain (default: fit's, 1000)")
    p.add_argument("--draws", type=int, default=None, help="nuts: kept draws per chain (default: fit's, 5000)")
    p.add_argument("--model", default=None, choices=sorted(PRESETS),
                   help="a named configuration: paper (the default: the paper's model) or extended (base and "
                        "tuned models apart, no size x tokens interaction: for predicting larger models)")
    p.add_argument("--covariates", default=None, metavar="NAME",
                   help="covariates of the skills: paper (default: log size, log tokens, their product), "
                        "no-interaction, compute (log of size x tokens), or terms separated by commas "
                        "(e.g. log_size,log_compute)")  # fmt: skip
    p.add_argument("--by-kind", action="store_true",
                   help="base and tuned models get their own intercepts and slopes (needs a 'kind' column)")
    p.add_argument("--family-effects", default="normal", choices=["normal", "student-t"],
                   help="distribution of the family effects: normal (default, the paper's) or student-t "
                        "(multivariate t, heavier tails)")  # fmt: skip
    p.add_argument("--family-df", type=float, default=None,
                   help="student-t: its degrees of freedom (default 4)")
    p.add_argument("--family-slopes", default=None, metavar="TERM[,TERM]",
                   help="random family slopes of the skills on these terms of the design (e.g. log_size); "
                        "map, advi, nuts only")  # fmt: skip
    p.add_argument("--scores", default="beta", choices=["beta", "beta-mixture"],
                   help="likelihood of the scores: beta (default, the paper's) or beta-mixture (a mixture of two "
                        "Betas with the same mean, the second wider: heavier tails; its weight is estimated)")
    p.add_argument("--score-kappa", type=float, default=None,
                   help="beta-mixture: the wide component's share of the precision, in (0, 1) (default 0.1)")
    p.add_argument("--out", default="fit.nc", help="output file (default fit.nc)")

    p = command("select-k", _cmd_select_k, "information criteria (AIC, BIC) of mle fits for several K",
                ["--data example --Ks 1 2 3 --out ic.csv --plot ic.png",
                 "--data leaderboard --Ks 1 2 3 4 --jobs 2 --no-warm-start --out ic.csv"])  # fmt: skip
    data_args(p)
    p.add_argument("--Ks", type=int, nargs="+", default=list(range(1, 9)), help="values of K (default 1 to 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of every fit (default 0)")
    p.add_argument("--out", default="select_k.csv", help="output table, one row per K (default select_k.csv)")
    p.add_argument("--plot", default=None, help="also draw AIC and BIC against K into this PNG")
    p.add_argument("--bic-n", choices=BIC_N, default="families",
                   help="what BIC's n counts (default families: the likelihood factorizes over them)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=1,
                   help="fits run side by side in this many processes (default 1; -1: one per core); "
                        "needs --no-warm-start")  # fmt: skip
    p.add_argument("--no-warm-start", action="store_true",
                   help="start each K only from the factor analysis, not also from the optimum at K - 1")  # fmt: skip

    p = command("predict", _cmd_predict, "predictive intervals of benchmark scores for new models",
                ["fit.nc new_models.csv --out predictions.csv",
                 "fit.nc new_models.csv --kind theta --level 0.9 --out skills.csv"],
                description="Predictive mean, median and interval of new models' scores on every benchmark of "
                            "the fit.\nCSV columns: model, family, size (billions of parameters), tokens "
                            "(trillions), and optionally\nobserved scores in [0, 1] in columns named after the "
                            "fit's benchmarks (they condition the prediction).\nThe column 'extrapolation' says how "
                            "far outside the fit's data each model is (a factor, 1 inside); beyond 3 a warning\n"
                            "names the model.")  # fmt: skip
    fit_args(p)
    p.add_argument("csv", metavar="CSV", help="the new models")
    p.add_argument("--out", default="predictions.csv", help="output table (default predictions.csv)")
    p.add_argument("--kind", default="score", choices=["score", "mu", "theta"],
                   help="score (with its Beta noise, default), its mean mu, or the latent skills theta")  # fmt: skip
    draw_args(p)

    p = command("allocate", _cmd_allocate, "compute-optimal parameters and tokens per FLOPs budget",
                ["fit.nc --flops 1e21 1e22 1e23 --out allocation.csv",
                 "fit.nc --paper-budgets --benchmark mmlu --plot allocation.png --out allocation.csv"])  # fmt: skip
    fit_args(p)
    p.add_argument("--flops", type=float, nargs="+", default=None,
                   help="training budgets in FLOPs, F = 6 N D (N parameters, D tokens)")  # fmt: skip
    p.add_argument("--paper-budgets", action="store_true",
                   help="add the paper's 10 budgets: log-spaced from 6 Nmin Dmin to 6 Nmax Dmax, the corners of "
                        "the data's box of sizes and tokens")  # fmt: skip
    target = p.add_mutually_exclusive_group()
    target.add_argument("--skill", default=None, help="a skill (skill_1 or its anchor benchmark); default all")
    target.add_argument("--benchmark", default=None,
                        help="maximize this benchmark's mean score (of a family with alpha = 0) instead")  # fmt: skip
    p.add_argument("--unconstrained", action="store_true",
                   help="let size and tokens leave the data's range (by e^5 each way)")  # fmt: skip
    p.add_argument("--out", default="allocation.csv", help="output table (default allocation.csv)")
    p.add_argument("--plot", default=None, help="also draw the frontier into this PNG")
    draw_args(p)

    p = command("report", _cmd_report, "the main figures (PNG) and tables (CSV, Markdown) of a fit in one folder",
                ["fit.nc --out report"])  # fmt: skip
    fit_args(p)
    p.add_argument("--out", default="report", help="output folder, replaced as a whole (default report)")
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # One line per warning, without the source line a Python warning prints.
    print(f"bayes-lsl: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run ``bayes-lsl`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help (0), or a usage error already printed in one line (2)
        return stop.code if isinstance(stop.code, int) else 2
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    for noisy in ("pytensor", "pymc", "filelock", "numba", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            args.func(args)
    except _USER_ERRORS as err:
        print(f"bayes-lsl: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print("bayes-lsl: internal error (a bug, not your input): please report it to the bayes_lsl issue "
              "tracker with the command and the traceback above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
