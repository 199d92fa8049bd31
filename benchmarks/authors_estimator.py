"""The authors' log-likelihood estimator evaluated at our MLE: does it read higher than our value?

The authors maximize a Monte Carlo estimate of the marginal log-likelihood: per family, the
log of the mean likelihood over draws of the family effect from its prior N(0, Sigma).
This script evaluates that estimator (:meth:`MarginalLikelihood.prior_monte_carlo`) at our
optimum for several seeds, next to our reference (importance sampling around each
family's mode, :meth:`MarginalLikelihood.importance`). By Jensen's inequality the log of
a Monte Carlo mean is biased low, so at a given theta it cannot read systematically above
the exact value.

    python benchmarks/authors_estimator.py --fit mle_k4.nc            # a saved K = 4 paper fit
    python benchmarks/authors_estimator.py --K 4 --draws 100000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
from provenance import CODE_VERSION

import bayes_lsl as bl
from bayes_lsl.fitting.marginal import MarginalLikelihood, family_modes

#: The authors' reported log-likelihoods on the paper data (their AIC / -2 + n_params).
AUTHORS_LOGLIK = {1: 2728.4, 2: 2971.4, 3: 3062.0, 4: 3123.5, 5: 3149.9, 6: 3162.3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", default=None, help="a saved mle fit of the paper data (default: fit one)")
    parser.add_argument("--K", type=int, default=4)
    parser.add_argument("--draws", type=int, default=100_000, help="prior draws per family (default 100,000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--is-draws", type=int, default=20_000, help="importance draws per family for the reference")
    args = parser.parse_args()
    commit = CODE_VERSION
    print(f"# {time.strftime('%Y-%m-%d')} on {platform.node()} ({os.cpu_count()} cores), commit {commit}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the paper data's scores below their floors
        data = bl.load_leaderboard("paper")
    fit = bl.load_fit(args.fit, data=data) if args.fit else bl.fit(data, K=args.K, method="mle", progress=False)
    K = int(fit.attrs["K"])
    parts = MarginalLikelihood(bl.build_model(data, K=K), data, 1)
    theta = fit["mle"]["theta_hat"].values
    modes, _ = family_modes(parts, theta)
    reference, ref_se = parts.importance(theta, modes, n_draws=args.is_draws, seed=0)
    print(f"K = {K}, {len(data.families)} families; fit's marginal_loglik {fit.attrs['marginal_loglik']:.2f}")
    print(f"importance sampling ({args.is_draws} draws per family): {reference.sum():.2f} "
          f"+- {np.sqrt((ref_se**2).sum()):.2f}")  # fmt: skip
    print(f"authors' reported value: {AUTHORS_LOGLIK.get(K, float('nan')):.1f}")
    print("| seed | prior draws per family | authors' estimator | its delta-method se | minus IS | wall s |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        t0 = time.perf_counter()
        estimate, se = parts.prior_monte_carlo(theta, n_draws=args.draws, seed=seed)
        print(f"| {seed} | {args.draws} | {estimate.sum():.2f} | {np.sqrt((se**2).sum()):.2f} | "
              f"{estimate.sum() - reference.sum():.2f} | {time.perf_counter() - t0:.0f} |", flush=True)  # fmt: skip
        worst = np.argsort(estimate - reference)[:3]
        print("  most under-estimated families: " + ", ".join(
            f"{data.families[i]} ({estimate[i] - reference[i]:.2f})" for i in worst))  # fmt: skip


if __name__ == "__main__":
    main()
