"""The ``bayes-lsl`` command line.

Examples
--------
bayes-lsl data --data leaderboard --variant raw
bayes-lsl fit --data example --K 2 --method mle --out fit.nc
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from bayes_lsl.data import DataError, ScalingData, load_example, load_leaderboard
from bayes_lsl.sources import DataNotFoundError


def _load(args: argparse.Namespace) -> ScalingData:
    if args.data == "example":
        return load_example()
    if args.data == "leaderboard":
        return load_leaderboard(args.variant, data_dir=args.data_dir)
    path = Path(args.data)
    if not path.is_file():
        raise DataError(f"--data {args.data!r}: not 'example', 'leaderboard' or an existing CSV file")
    return ScalingData.from_frame(pd.read_csv(path))


def _cmd_data(args: argparse.Namespace) -> None:
    print(_load(args))


def _cmd_fit(args: argparse.Namespace) -> None:
    from bayes_lsl.inference import fit
    from bayes_lsl.io import save_fit

    data = _load(args)
    result = fit(data, K=args.K, method=args.method, seed=args.seed, progress=not args.quiet)
    out = save_fit(result, args.out)
    attrs = result.attrs
    if args.method == "mle":
        print(f"K={args.K}: marginal log-likelihood {attrs['marginal_loglik']:.2f}, AIC {attrs['aic']:.1f}, "
              f"BIC {attrs['bic']:.1f} ({attrs['n_agree']}/{attrs['n_starts']} starts agree)")  # fmt: skip
    print(f"wrote {out}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayes-lsl",
        description="Latent-skill scaling laws for LLMs (arXiv:2512.06553).",
        epilog="Example: bayes-lsl fit --data example --K 2 --out fit.nc",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add_data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default="leaderboard", help="'leaderboard', 'example' or a CSV path (wide layout)")
        p.add_argument("--variant", default="paper", choices=["paper", "raw"], help="leaderboard variant")
        p.add_argument("--data-dir", default=None, help="directory of the leaderboard files ($BAYES_LSL_DATA)")
        p.add_argument("--quiet", action="store_true", help="no progress bars or info messages")

    p = sub.add_parser("data", help="load and validate data, print a summary",
                       epilog="Example: bayes-lsl data --data leaderboard --variant raw")  # fmt: skip
    add_data_args(p)
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("fit", help="fit the model and save the fit (NetCDF)",
                       epilog="Example: bayes-lsl fit --data leaderboard --K 4 --method mle --out fit.nc")  # fmt: skip
    add_data_args(p)
    p.add_argument("--K", type=int, default=4, help="number of skills (default 4)")
    p.add_argument("--method", default="mle", choices=["mle", "map", "advi", "nuts"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="fit.nc", help="output file (written atomically)")
    p.set_defaults(func=_cmd_fit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    for noisy in ("pytensor", "pymc", "filelock", "numba", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        args.func(args)
    except (DataError, DataNotFoundError, OSError, ValueError) as err:
        print(f"bayes-lsl: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
