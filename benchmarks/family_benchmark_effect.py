"""Experiment: does a family x benchmark effect improve the held-out predictions?

The held-out errors of a family's test models correlate with the residuals of the same
family's training models on the same benchmark (0.73; see ``benchmarks/README.md``).
This script adds the effect the model lacks, ``u_lj ~ N(0, tau_j^2)`` on the linear
predictor of every score of family ``l`` on benchmark ``j`` (``tau_j ~ HalfNormal``),
samples it with NUTS on the authors' held-out protocol and scores the 102 held-out
predictions, with the model's own posterior predictive (``--tau-scale 0`` leaves the
term out: the control, through the same code).

The term is not part of the package: the extended model is ``bayes_lsl.build_model``'s
plus a potential that swaps each score's log-density for the one with ``u`` added, so the
model's math is not copied here.

    python benchmarks/family_benchmark_effect.py --variant paper --tau-scale 0.5
    python benchmarks/family_benchmark_effect.py --variant paper --tau-scale 0
"""

from __future__ import annotations

import argparse
import time
import warnings

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

import bayes_lsl as bl
from bayes_lsl.fitting.nuts import _initial_values, _run_nutpie
from bayes_lsl.holdout import _held_out_frame, resolve_holdout, score_predictions
from bayes_lsl.model.likelihood import score_logp
from bayes_lsl.parameters import beta_shapes
from bayes_lsl.predict import summarize


def extended_model(data: bl.ScalingData, K: int, tau_scale: float) -> tuple[pm.Model, np.ndarray]:
    """The package's model (``centered="partial"``) plus ``u``; returns it and the (family, benchmark) pairs."""
    model = bl.build_model(data, K, centered="partial")
    rows, cols = np.nonzero(data.observed)
    pair_key = data.family_index[rows] * data.n_benchmarks + cols
    pairs, pair_of_cell = np.unique(pair_key, return_inverse=True)
    if tau_scale == 0:
        return model, pairs
    with model:
        tau = pm.HalfNormal("tau", tau_scale, dims="benchmark")
        u = pm.Normal("u_z", 0.0, 1.0, shape=len(pairs)) * tau[pairs % data.n_benchmarks]
        eta = (model["theta"][rows] * model["lam"].T[cols]).sum(axis=-1) + model["b"][cols]
        y, floor, phi = data.scores[rows, cols], data.floors[cols], model["phi"][cols]
        # The model's y term has eta without u: swap it for the one with u.
        pm.Potential("u_likelihood", (score_logp(y, eta + u[pair_of_cell], floor, phi)
                                      - score_logp(y, eta, floor, phi)).sum())  # fmt: skip
    return model, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--K", type=int, default=4)
    parser.add_argument("--tau-scale", type=float, default=0.5, help="half-normal scale of tau_j; 0: no u")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = bl.load_leaderboard(variant=args.variant)
    removed, test = resolve_holdout(data, "paper")
    train = data.drop_models(removed)
    mle = bl.fit(train, K=args.K, method="mle", check_draws=0, progress=False)
    model, pairs = extended_model(train, args.K, args.tau_scale)
    init = _initial_values(model, train, mle)
    if args.tau_scale:
        init |= {"tau": np.full(train.n_benchmarks, 0.1), "u_z": np.zeros(len(pairs))}
    t0 = time.perf_counter()
    trace = _run_nutpie(model, init, seed=args.seed, progress=False, chains=4, tune=1000, draws=500,
                        target_accept=0.8, cores=2, adaptation="draw_diag")  # fmt: skip
    seconds = time.perf_counter() - t0
    checked = ["beta", "lam", "corr", *(["tau"] if args.tau_scale else [])]
    summary = az.summary(trace, var_names=checked).dropna(subset=["r_hat"])

    # Posterior predictive of the held-out models: their families are all in the fit.
    new, truth = _held_out_frame(data, test)
    post = trace["posterior"].to_dataset().stack(sample=("chain", "draw")).transpose("sample", ...)
    family = [list(train.families).index(f) for f in new["family"]]
    x = train.covariates(new["size"], new["tokens"])
    theta = post["alpha"].values[:, family] + np.einsum("mp,spk->smk", x, post["beta"].values)
    eta = np.einsum("smk,skj->smj", theta, post["lam"].values) + post["b"].values[:, None, :]
    rng = np.random.default_rng(args.seed)
    J = train.n_benchmarks
    if args.tau_scale:
        tau = post["tau"].values  # (S, J)
        u = rng.standard_normal(eta.shape) * tau[:, None, :]  # a pair without scores: its prior
        where = {key: i for i, key in enumerate(pairs)}
        for m, f in enumerate(family):
            for j in range(J):
                if f * J + j in where:
                    u[:, m, j] = post["u_z"].values[:, where[f * J + j]] * tau[:, j]
        eta = eta + u
    S = eta.shape[0]
    phi = np.broadcast_to(post["phi"].values[:, None, :], eta.shape).reshape(S, -1)
    a, b = beta_shapes(eta.reshape(S, -1), np.tile(train.floors, len(new)), phi)
    y = rng.beta(a, b).reshape(eta.shape)
    draws = xr.Dataset({"y": (("sample", "model", "benchmark"), y)},
                       coords={"model": new["model"].to_numpy(), "benchmark": list(train.benchmarks)})  # fmt: skip
    table = truth.merge(summarize(draws, "score"), on=["model", "benchmark"])
    scores = score_predictions(table)

    print(f"variant {args.variant}, K {args.K}, tau scale {args.tau_scale}: sampling {seconds:.0f} s, "
          f"max R-hat {summary['r_hat'].max():.3f}, min bulk ESS {summary['ess_bulk'].min():.0f}, "
          f"divergences {int(trace['sample_stats']['diverging'].sum())}")  # fmt: skip
    if args.tau_scale:
        print("posterior mean of tau:", post["tau"].mean("sample").to_pandas().round(3).to_dict())
    print(scores.round(4).to_string())


if __name__ == "__main__":
    main()
