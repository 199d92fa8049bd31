"""A fit's main figures and tables in one folder, linked from an ``index.md``.

The folder is built next to its destination and renamed into place, so a failed report
leaves neither a half-written folder nor a damaged previous one.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.files import atomic_dir
from bayes_lsl.fitting.result import PARAMETERS, SAMPLE_DIMS, FitInfo
from bayes_lsl.parameters import parameter_intervals

logger = logging.getLogger(__name__)

#: Attrs of the fitting method worth a line in the summary, when the method sets them.
_SUMMARY_ATTRS = ("marginal_loglik", "marginal_loglik_mc_se", "aic", "bic", "bic_n",
                  "bic_sample_size", "n_params", "n_observations", "integration_error", "n_agree", "n_starts",
                  "agree_tol", "n_agree_refined", "n_refined", "converged", "bayes_lsl_version")  # fmt: skip
#: Decimals of the summary's quantities that are compared across fits (a Monte Carlo
#: standard error of 0.06 and K comparisons need more than 4 significant digits).
_SUMMARY_DECIMALS = {"marginal_loglik": 2, "marginal_loglik_mc_se": 2, "aic": 2, "bic": 2, "integration_error": 3}


def parameter_table(fit: xr.DataTree, level: float = 0.95) -> pd.DataFrame:
    """Estimates of ``beta``, ``lam``, ``b``, ``phi`` and ``corr`` with their uncertainty.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit`.
    level : float
        Probability of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per entry (``corr`` below its diagonal only): ``parameter`` (e.g.
        ``lam[skill_1, mmlu]``), ``estimate`` and, for ``mle`` fits, ``se`` with Wald
        bounds ``lower``, ``upper`` built on the unconstrained scale and mapped back
        (:func:`bayes_lsl.parameters.mle_intervals`: inside the parameter space, so not
        ``estimate +- z se`` for ``phi``, ``corr`` and the anchor loadings); for
        draw-based fits the posterior mean, ``sd`` and central interval; for ``map`` fits
        the estimate only.

    Examples
    --------
    >>> from bayes_lsl.report import parameter_table
    >>> # fit = bl.fit(bl.load_example(), K=2, method="map")
    >>> table = parameter_table(fit)  # a map fit: the estimate only
    >>> list(table.columns)
    ['parameter', 'estimate']
    >>> table["parameter"].tolist()[:3]
    ['beta[log_size, skill_1]', 'beta[log_size, skill_2]', 'beta[log_tokens, skill_1]']
    >>> len(table)  # beta 3 x 2, lam 2 x 8, b and phi 8 each, corr 1 (below the diagonal)
    39
    """
    info = FitInfo.from_tree(fit)
    table = parameter_intervals(fit, PARAMETERS, level=level)
    post = fit["posterior"]
    if info.method == "mle":
        spread = {name: fit["mle"][f"{name}_se"] for name in PARAMETERS}
    elif info.has_draws:
        spread = {name: post[name].std(SAMPLE_DIMS) for name in PARAMETERS}
    else:
        spread = {}
    if spread:
        # parameter_intervals lists each variable's entries in its dim order: flatten alike.
        dims = {name: [d for d in post[name].dims if d not in SAMPLE_DIMS] for name in PARAMETERS}
        column = "se" if info.method == "mle" else "sd"
        table.insert(table.columns.get_loc("lower"), column,
                     np.concatenate([spread[n].transpose(*dims[n]).values.ravel() for n in PARAMETERS]))
    K = info.K
    i, j = np.divmod(np.arange(K * K), K)
    keep = np.ones(len(table), bool)
    keep[np.flatnonzero(table["variable"] == "corr")] = j < i  # symmetric, unit diagonal: the lower triangle
    columns = ["parameter", "estimate", *(["se" if info.method == "mle" else "sd", "lower", "upper"] if spread else [])]
    return table.loc[keep, columns].reset_index(drop=True)


def fit_summary(fit: xr.DataTree) -> pd.DataFrame:
    """The fit's attrs worth reporting (for ``mle``: log-likelihood, AIC, BIC, ``n_params``) as two columns.

    Log-likelihood, AIC and BIC are written to 0.01, other numbers to 4 significant digits.
    """
    info = FitInfo.from_tree(fit)
    cd = fit["constant_data"]
    rows = {"method": info.method, "K": info.K, "seed": info.seed}
    rows |= {name: fit.attrs[name] for name in _SUMMARY_ATTRS if name in fit.attrs}
    rows |= {"models": cd.sizes["model"], "families": cd.sizes["family"]}
    rows["benchmarks"] = ", ".join(info.benchmarks)
    values = [f"{v:.{_SUMMARY_DECIMALS[k]}f}" if k in _SUMMARY_DECIMALS else _cell(v) for k, v in rows.items()]
    return pd.DataFrame({"quantity": list(rows), "value": values})


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (numbers to 4 significant digits), without needing ``tabulate``."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * table.shape[1]]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _largest_families(fit: xr.DataTree, n: int = 2) -> list[str]:
    """The ``n`` families with the most models (ties: first seen first)."""
    counts = Counter(map(str, fit["constant_data"]["model_family"].values))
    return [family for family, _ in counts.most_common(n)]


def _figures(fit: xr.DataTree, allocation: pd.DataFrame) -> dict[str, tuple[str, object]]:
    from bayes_lsl.plots import (
        plot_allocation,
        plot_forest,
        plot_loadings,
        plot_scaling_curves,
        plot_skill_correlation,
    )

    method = FitInfo.from_tree(fit).method
    makers = {
        "loadings": ("Loadings of the benchmarks on the skills", lambda: plot_loadings(fit)),
        "skill_correlation": ("Correlation of the family effects", lambda: plot_skill_correlation(fit)),
        "allocation": ("Compute-optimal allocation per skill", lambda: plot_allocation(allocation)),
        "forest": ("Estimates of beta and lam with 95% intervals",
                   lambda: plot_forest({method: fit}, names=("beta", "lam"))),
    }  # fmt: skip
    for family in _largest_families(fit):
        makers[f"scaling_{family}"] = (f"Scaling curves of {family}", lambda f=family: plot_scaling_curves(fit, f))
    return makers


def _tables(fit: xr.DataTree, allocation: pd.DataFrame) -> dict[str, tuple[str, pd.DataFrame]]:
    tables = {
        "summary": ("Fit summary", fit_summary(fit)),
        "parameters": ("Parameter estimates", parameter_table(fit)),
        "allocation": (
            "Compute-optimal allocation at the paper's budgets (sizes in billions of parameters, tokens in trillions)",
            allocation,
        ),
    }
    if FitInfo.from_tree(fit).method == "nuts":
        from bayes_lsl.diagnostics import diagnose

        tables["diagnostics"] = ("Convergence diagnostics", diagnose(fit).table.rename_axis("entry").reset_index())
    return tables


def write_report(fit: xr.DataTree, out_dir: str | os.PathLike, *, data: ScalingData | None = None) -> Path:
    """Write a fit's main figures (PNG) and tables (CSV and Markdown) into one folder.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit` or :func:`bayes_lsl.load_fit`.
    out_dir : path
        The folder to create; an existing one is replaced as a whole. Its parent must exist.
    data : ScalingData, optional
        The data the fit was made on; checked against the fit, and summarized in the index.

    Returns
    -------
    Path
        The folder's ``index.md``, which shows the fit summary and the figures and links
        the tables: ``summary``, ``parameters`` (with standard errors for ``mle``,
        posterior sd for draw-based fits), ``allocation`` (at
        :func:`bayes_lsl.allocation.paper_budgets`) and, for ``nuts``, ``diagnostics``.
        Figures: ``loadings``, ``skill_correlation``, ``allocation``, ``forest`` (beta and
        lam) and ``scaling_<family>`` for the two families with the most models.
    """
    import matplotlib.pyplot as plt

    from bayes_lsl.allocation import allocate, paper_budgets
    from bayes_lsl.fitting.result import data_fingerprint

    info = FitInfo.from_tree(fit)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OSError(f"cannot write the report to {str(out)!r}: it is a file")
    if data is not None and data_fingerprint(data) != info.data_fingerprint:
        raise BayesLslError("the data given are not the data the fit was made on")
    with atomic_dir(out) as tmp:
        logger.info("report: allocation at the paper's budgets")
        allocation = allocate(fit, paper_budgets(fit))
        index = [f"# bayes_lsl report: {info.method} fit, K = {info.K}\n"]
        if data is not None:
            index.append(f"```\n{data}\n```\n")
        tables = _tables(fit, allocation)
        index.append(markdown_table(tables["summary"][1]))
        index.append("## Tables\n")
        for name, (title, table) in tables.items():
            table.to_csv(tmp / f"{name}.csv", index=False)
            (tmp / f"{name}.md").write_text(f"# {title}\n\n" + markdown_table(table))
            index.append(f"- {title}: [{name}.md]({name}.md), [{name}.csv]({name}.csv)")
        index.append("\n## Figures\n")
        for name, (title, make) in _figures(fit, allocation).items():
            logger.info("report: %s", name)
            fig = make()
            fig.savefig(tmp / f"{name}.png", dpi=120)
            plt.close(fig)  # a notebook would otherwise show every figure again
            index.append(f"### {title}\n\n![{title}]({name}.png)\n")
        (tmp / "index.md").write_text("\n".join(index))
    return out / "index.md"
