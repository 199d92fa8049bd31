"""How much the allocation rests on family effects being independent of size and tokens: a Mundlak check.

The model assumes ``alpha_l`` independent of the covariates. Tokens barely vary within the
leaderboard's families, so the token slope is learnt mostly from differences between
families, where it is confounded with their training recipes. Mundlak's device: add each
family's mean covariates ``xbar_l`` as extra covariates, ``theta_i = x_i' b_w + xbar_l' g +
alpha_l``. Then ``b_w`` is the *within*-family slope (what more parameters or tokens do in
a family, the question the allocation asks), ``b_w + g`` the *between*-family slope (how
families of different sizes and tokens differ), and ``g = 0`` gives back the model's pooled
slope. The script fits both K = 4 MLEs (paper variant) and prints Markdown: the slopes on
the raw log scale with standard errors, the likelihood-ratio test of ``g = 0``, and the
optimal allocation at a few budgets under each slope.

The extra covariates are put in here, in the script, by widening the covariate matrix the
model is built from (a ``ScalingData`` whose ``x`` has the family means appended and whose
``terms`` name them); the package's model math is unchanged.

Usage::

    export BAYES_LSL_DATA=../shared/data/open_llm_leaderboard
    python benchmarks/mundlak_check.py --fits /tmp/alloc_fits
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import chi2

import bayes_lsl as bl
from bayes_lsl.data import COVARIATES, ScalingData
from bayes_lsl.design import design_matrix
from bayes_lsl.report import markdown_table

MEANS = tuple(f"family_mean_{name}" for name in COVARIATES)
BUDGETS = (1e21, 1e22, 1e23, 1e24)


@dataclasses.dataclass(frozen=True, eq=False)
class MundlakData(ScalingData):
    """The scores with each family's mean covariates appended to every model's covariates."""

    @property
    def x(self) -> np.ndarray:
        p = len(COVARIATES)
        x = (design_matrix(COVARIATES, self.size, self.tokens) - self.covariate_center[:p]) / self.covariate_scale[:p]
        counts = np.bincount(self.family_index)
        means = np.stack([np.bincount(self.family_index, weights=col) for col in x.T], axis=1) / counts[:, None]
        return np.hstack([x, means[self.family_index]])


def mundlak_fit(data: ScalingData, K: int = 4, **options) -> xr.DataTree:
    """The MLE with the family means as extra covariates."""
    fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(data) if f.init}
    # The means are standardized already (means of standardized covariates): center 0, scale 1.
    p = len(COVARIATES)
    wide = MundlakData(**fields | {"terms": COVARIATES + MEANS,
                                   "covariate_center": np.r_[data.covariate_center[:p], np.zeros(p)],
                                   "covariate_scale": np.r_[data.covariate_scale[:p], np.ones(p)]})  # fmt: skip
    return bl.fit(wide, K=K, method="mle", progress=False, **options)


def cached(path: Path, make) -> xr.DataTree:
    if path.exists():
        return bl.load_fit(path)
    start = time.perf_counter()
    result = make()
    print(f"<!-- fitted {path.name} in {time.perf_counter() - start:.0f} s -->")
    bl.save_fit(result, path)
    return result


def slopes(fit: xr.DataTree) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pooled, or within and between, slopes (covariate x skill) on the raw log scale, with standard errors."""
    p = len(COVARIATES)
    scale = np.asarray(fit.attrs["covariate_scale"], float)[:p, None]
    beta = fit["posterior"]["beta"].isel(chain=0, draw=0).transpose("covariate", "skill").values
    se = fit["mle"]["beta_se"].transpose("covariate", "skill").values
    if beta.shape[0] == p:
        return {"pooled": (beta / scale, se / scale)}
    out = {"within": (beta[:p] / scale, se[:p] / scale)}
    # The between slope b_w + g: its standard error needs the covariance of the two, from the
    # MLE's covariance (beta is its own unconstrained parameter, flattened covariate-major).
    labels = [str(label) for label in fit["mle"]["param"].values]
    index = np.array([labels.index(f"beta[{i}]") for i in range(beta.size)]).reshape(beta.shape)
    cov = fit["mle"]["theta_cov"].values
    w, g = index[:p], index[p:]
    var = cov[w, w] + cov[g, g] + 2 * cov[w, g]
    out["between"] = ((beta[:p] + beta[p:]) / scale, np.sqrt(var) / scale)
    return out


def point_tree(fit: xr.DataTree, beta_raw: np.ndarray) -> xr.DataTree:
    """A point fit with the given raw-scale slopes (covariate x skill) and the fit's loadings, for allocate."""
    post = fit["posterior"].to_dataset()
    scale = np.asarray(fit.attrs["covariate_scale"], float)[:, None]
    beta = xr.DataArray((beta_raw * scale)[None, None], dims=("chain", "draw", "covariate", "skill"))
    # theta is left as fitted: allocate reads beta and lam only, but every fit carries it.
    kept = post[["lam", "b", "phi", "corr", "alpha", "theta"]]
    posterior = kept.assign(beta=beta.assign_coords(covariate=list(COVARIATES)))
    tree = xr.DataTree.from_dict({"posterior": posterior, "constant_data": fit["constant_data"].to_dataset()})
    tree.attrs = dict(fit.attrs) | {"method": "map"}
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fits", type=Path, default=Path("fits"), help="folder of saved fits (reused)")
    args = parser.parse_args()
    args.fits.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore")
    data = bl.load_leaderboard("paper")

    within_sd = {}
    for name, values in (("log size", np.log(data.size)), ("log tokens", np.log(data.tokens))):
        means = pd.Series(values).groupby(data.family_index).transform("mean").to_numpy()
        within_sd[name] = (np.std(values - means), np.std(values))
    print("Within-family spread of the covariates (sd of the deviation from the family mean, sd overall):\n")
    for name, (within, total) in within_sd.items():
        print(f"- {name}: {within:.3f} of {total:.3f} ({(within / total) ** 2:.1%} of the variance within families)")

    pooled = cached(args.fits / "mle-paper-K4.nc", lambda: bl.fit(data, K=4, method="mle", progress=False))
    wide = cached(args.fits / "mle-paper-K4-mundlak.nc", lambda: mundlak_fit(data))
    ll0, ll1 = pooled.attrs["marginal_loglik"], wide.attrs["marginal_loglik"]
    df = len(MEANS) * 4
    print(f"\nLog-likelihood: pooled {ll0:.2f}, with family means {ll1:.2f}; likelihood ratio {2 * (ll1 - ll0):.1f} "
          f"on {df} df, p = {chi2.sf(2 * (ll1 - ll0), df):.2g}\n")  # fmt: skip

    anchors = list(pooled.attrs["anchors"])[:4]
    table = slopes(pooled) | slopes(wide)
    rows = []
    for kind, (est, se) in table.items():
        for c, covariate in enumerate(COVARIATES):
            rows.append(
                {"slope": kind, "covariate": covariate}
                | {a: f"{est[c, k]:.3f} ({se[c, k]:.3f})" for k, a in enumerate(anchors)}
            )
    print("Slopes per unit of the raw covariates (log B parameters, log T tokens), standard errors in brackets:\n")
    print(markdown_table(pd.DataFrame(rows)))

    out = []
    for kind, (est, _) in table.items():
        alloc = bl.allocate(point_tree(pooled, est), list(BUDGETS), n_draws=1)
        for row in alloc.itertuples():
            out.append({"flops": f"{row.flops:.0e}", "skill": anchors[int(row.target.split("_")[1]) - 1],
                        "slope": kind, "size (B)": f"{row.size_opt:.3g}", "tokens (T)": f"{row.tokens_opt:.3g}",
                        "edge": row.edge})  # fmt: skip
    frame = pd.DataFrame(out).sort_values(["skill", "flops", "slope"], kind="stable")
    print("\nOptimal allocation of the family-average model under each slope (point estimates):\n")
    print(markdown_table(frame))


if __name__ == "__main__":
    main()
