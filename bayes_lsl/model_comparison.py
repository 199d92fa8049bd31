"""Model configurations compared by held-out predictive scores, paired on the same folds.

:func:`compare_models` runs every configuration (a dict of :func:`bayes_lsl.fit`
options) under every protocol, with the same folds and seeds, together with the
per-benchmark baseline (:mod:`bayes_lsl.baseline`) on the same splits; scores each with
:func:`bayes_lsl.holdout.score_predictions` (family-group bootstrap) and differences each
against the reference configuration (the first) and against the baseline with
:func:`bayes_lsl.holdout.compare_predictions` (paired by cell, on the same resamples).

Protocols
    ``"largest-in-family"``: each family's largest model(s) held out, the rest of the
    family kept (:func:`bayes_lsl.cross_validate`, within-family extrapolation);
    ``"family"``: whole families held out (a new family); ``"holdout"``: one split,
    :func:`bayes_lsl.evaluate_holdout` with ``holdout`` and ``test_models`` (default the
    authors' protocol, ``"paper"``).

With ``recalibrate=True`` each row is repeated with recalibrated intervals
(:mod:`bayes_lsl.recalibration`), learned without the cells they are scored on: in
cross-validation each fold's factors come from the other folds' held-out cells
(cross-fitting); under ``"holdout"`` from a largest-in-family cross-validation of the
training models (``n_folds`` more fits per row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_lsl.data import ScalingData
from bayes_lsl.errors import BayesLslError
from bayes_lsl.holdout import (
    N_BOOT,
    SCHEMES,
    HoldoutResult,
    _cluster_codes,
    _interval,
    _resample_counts,
    _resampled_means,
    _scored_result,
    compare_predictions,
    cross_validate,
    evaluate_holdout,
    resolve_holdout,
)
from bayes_lsl.recalibration import coverage_by_level
from bayes_lsl.recalibration import recalibrate as learn_factors

PROTOCOLS: tuple[str, ...] = (*SCHEMES, "holdout")
#: The name of the baseline's rows.
BASELINE = "baseline"
#: Suffix of the rows with recalibrated intervals.
RECALIBRATED = " (recalibrated)"
#: Methods whose fits hold posterior draws, for which grouped LOO applies.
SAMPLED = ("nuts", "advi")
#: The summary statistics of the table: (name, in ``score_predictions``'s summary, with an interval).
_SUMMARY = ("mae", "crps", "interval_score", "coverage", "width", "log_density")
#: The paired statistics of the differences (``compare_predictions``'s column prefixes).
_PAIRED = {"mae": "", "crps": "crps_", "interval_score": "interval_score_", "log_density": "log_density_"}


@dataclass(frozen=True)
class ModelComparison:
    """What :func:`compare_models` returns.

    Attributes
    ----------
    table : DataFrame
        One row per protocol and configuration (the baseline's rows named
        ``"baseline"``, recalibrated ones suffixed ``" (recalibrated)"``): ``protocol``,
        ``configuration``, ``intervals`` (``"model"`` or ``"recalibrated"``), ``K``,
        ``method``, ``n`` (held-out scores), ``clusters`` (family groups), ``elpd`` (the sum
        of the cells' log predictive densities) and ``elpd_se`` (family-group bootstrap),
        ``mae``, ``crps``, ``interval_score``, ``coverage`` (each with ``_lower`` and
        ``_upper``), ``width``, and ``elpd_loo``/``elpd_loo_se`` (grouped LOO of the
        training fit; NaN where it does not apply, see ``table.attrs["notes"]``).
    differences : DataFrame
        One row per protocol, configuration and ``against`` (the reference configuration's
        name, or ``"baseline"``): for ``mae``, ``crps``, ``interval_score``, ``log_density``
        and ``elpd``, the paired difference (this row minus the other, on the same cells)
        with ``_se``, ``_lower`` and ``_upper``. Negative is better, but for
        ``log_density`` and ``elpd``.
    calibration : DataFrame
        Coverage per protocol, configuration and nominal level (50/80/90/95%), with
        family-group bootstrap intervals (:func:`bayes_lsl.recalibration.coverage_by_level`).
    results : dict
        ``(protocol, configuration)`` to its :class:`~bayes_lsl.holdout.HoldoutResult`.
    reference : str
        The reference configuration (the first).
    data : ScalingData
        The data compared on (for the scaling plots).
    """

    table: pd.DataFrame
    differences: pd.DataFrame
    calibration: pd.DataFrame
    results: dict[tuple[str, str], HoldoutResult]
    reference: str
    data: ScalingData = field(repr=False)

    def fits_for(self, family: str, protocol: str | None = None) -> dict[str, object]:
        """Each configuration's fit (model-based rows and the baseline) whose training held out ``family``'s
        predicted models, under ``protocol`` (default the first)."""
        protocol = protocol or self.table["protocol"].iloc[0]
        out = {}
        for (prot, name), result in self.results.items():
            if prot != protocol or name.endswith(RECALIBRATED):
                continue
            rows = result.predictions[result.predictions["family"] == family]
            if rows.empty:
                raise BayesLslError(f"family: {family!r} has no held-out prediction under protocol {protocol!r}")
            out[name] = result.fits[int(rows["fold"].iloc[0]) if "fold" in rows.columns else 0]
        return out

    def plot(self, **options):
        """:func:`bayes_lsl.plots.plot_calibration` of this comparison."""
        from bayes_lsl.plots import plot_calibration

        return plot_calibration(self, **options)

    def plot_scaling(self, family: str, benchmark: str, *, protocol: str | None = None, **options):
        """:func:`bayes_lsl.plots.plot_scaling_bands` of ``family`` on ``benchmark`` with each configuration's fit."""
        from bayes_lsl.plots import plot_scaling_bands

        protocol = protocol or self.table["protocol"].iloc[0]
        fits = self.fits_for(family, protocol)
        predictions = self.results[(protocol, next(iter(fits)))].predictions
        held_out = predictions.loc[predictions["family"] == family, "model"].unique().tolist()
        return plot_scaling_bands(fits, self.data, family, benchmark, **{"held_out": held_out, **options})

    def _repr_html_(self) -> str:
        return self.table._repr_html_()

    def __repr__(self) -> str:
        columns = ["protocol", "configuration", "n", "elpd", "elpd_se", "mae", "crps", "coverage", "width"]
        return f"ModelComparison(reference={self.reference!r},\n{self.table[columns].round(4).to_string()}\n)"


def _check(configs: Mapping[str, Mapping], protocols: Sequence[str], baseline) -> None:
    if not isinstance(configs, Mapping) or not configs:
        raise BayesLslError("configs: expected a non-empty dict of name -> fit options, e.g. {'paper': {}}")
    for name, options in configs.items():
        if not isinstance(name, str) or not isinstance(options, Mapping):
            raise BayesLslError(f"configs: entry {name!r} must map a name (str) to a dict of fit options")
        if name == BASELINE and baseline is not False:
            raise BayesLslError(f"configs: the name {BASELINE!r} is the baseline's rows; choose another")
    if isinstance(protocols, str) or not protocols:
        raise BayesLslError(f"protocols: expected a list of names from {list(PROTOCOLS)}, got {protocols!r}")
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise BayesLslError(f"protocols: unknown {unknown}; choose from {list(PROTOCOLS)}")


def compare_models(
    data: ScalingData,
    configs: Mapping[str, Mapping],
    *,
    K: int = 4,
    method: str = "mle",
    protocols: Sequence[str] = ("largest-in-family",),
    n_folds: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    holdout: str | Sequence[str] = "paper",
    test_models: Sequence[str] | None = None,
    baseline: bool | Mapping = True,
    recalibrate: bool = False,
    loo: str | None = None,
    level: float = 0.95,
    n_draws: int = 1000,
    cluster: str | None = "group",
    n_boot: int = N_BOOT,
    progress: bool = True,
) -> ModelComparison:
    """Held-out scores of model configurations under one or more protocols, with paired differences.

    Parameters
    ----------
    data : ScalingData
    configs : dict
        Name to the options of :func:`bayes_lsl.fit` (``{}``: the paper's model); an
        option ``K`` or ``method`` overrides the arguments of that name for the
        configuration. The first is the reference of the paired differences.
    K, method
        Defaults of every configuration.
    protocols : list of str
        Any of ``"largest-in-family"``, ``"family"`` (:func:`bayes_lsl.cross_validate`'s
        schemes, ``n_folds`` folds) and ``"holdout"`` (:func:`bayes_lsl.evaluate_holdout`
        with ``holdout`` and ``test_models``).
    n_folds, seed, n_jobs
        The cross-validations' folds (the same for every configuration: they depend on
        ``seed`` and the data only), seeds and parallel folds.
    holdout, test_models
        The ``"holdout"`` protocol's split (default the authors' 41 removed, 11 scored).
    baseline : bool or dict
        Also score the per-benchmark baseline (``True``), with these
        :func:`~bayes_lsl.baseline.fit_baseline` options (a dict, e.g.
        ``{"loss": "least_squares"}``), or not (``False``).
    recalibrate : bool
        Also score every row with recalibrated intervals (see the module's docstring). Off
        by default.
    loo : {"model", "family", "cell"}, optional
        Add grouped PSIS-LOO (:func:`bayes_lsl.loo`, this group left out) of the training
        fit of ``"holdout"`` rows whose fits have posterior draws (``nuts``, ``advi``).
        It does not apply to point fits (``mle``, ``map``) nor to cross-validation rows
        (several fits); they get NaN.
    level, n_draws
        The main interval level (of ``coverage``, ``width``, ``interval_score``) and the
        predictive draws.
    cluster, n_boot
        The bootstrap's resampled unit (default family groups) and resamples.
    progress : bool

    Returns
    -------
    ModelComparison

    Notes
    -----
    Each configuration of the leaderboard data with ``method="mle"`` and K = 4 takes
    several minutes per protocol on a 2-core machine (one fit per fold).
    """
    _check(configs, protocols, baseline)
    if loo is not None and loo not in ("model", "family", "cell"):
        raise BayesLslError(f"loo must be None, 'model', 'family' or 'cell', got {loo!r}")
    runs = [(name, dict(options)) for name, options in configs.items()]
    if baseline is not False:
        runs.append((BASELINE, {**(baseline if isinstance(baseline, Mapping) else {}), "method": "baseline"}))
    common = {"level": level, "seed": seed, "n_draws": n_draws, "progress": progress, "cluster": cluster,
              "n_boot": n_boot}  # fmt: skip
    scoring = {"cluster": cluster, "n_boot": n_boot, "level": level, "seed": seed}
    results, rows, notes = {}, [], []
    for protocol in protocols:
        for name, options in runs:
            run_K, run_method = options.get("K", K), options.get("method", method)
            fit_options = options_without(options, "K", "method")
            if protocol == "holdout":
                result = evaluate_holdout(data, holdout, run_K, run_method, test_models=test_models, **common,
                                          **fit_options)  # fmt: skip
            else:
                result = cross_validate(data, n_folds, run_K, run_method, scheme=protocol, n_jobs=n_jobs, **common,
                                        **fit_options)  # fmt: skip
            results[(protocol, name)] = result
            elpd_loo, note = _grouped_loo(result, protocol, run_method, loo, seed)
            if note and note not in notes:
                notes.append(note)
            rows.append(_row(protocol, name, "model", run_K, run_method, result, elpd_loo))
            if recalibrate:
                if protocol == "holdout":
                    # Learned on the training models only, by the within-family extrapolation they stand for.
                    removed, _ = resolve_holdout(data, holdout, test_models)
                    learned = cross_validate(data.drop_models(removed), n_folds, run_K, run_method,
                                             scheme="largest-in-family", n_jobs=n_jobs, **common,
                                             **fit_options)  # fmt: skip
                    factors = learn_factors(learned, cluster=cluster, seed=seed)
                    predictions = factors.apply(result.predictions, level=level)
                else:
                    predictions = _cross_fitted(result.predictions, level, cluster, seed)
                again = _scored_result(data, predictions, result.fits, scoring)
                results[(protocol, name + RECALIBRATED)] = again
                rows.append(_row(protocol, name + RECALIBRATED, "recalibrated", run_K, run_method, again,
                                 (np.nan, np.nan)))  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs["notes"] = notes
    reference = next(iter(configs))
    differences = _differences(results, reference, baseline is not False, scoring)
    calibration = pd.concat(
        [coverage_by_level(r.predictions, cluster=cluster, n_boot=n_boot, seed=seed).assign(protocol=p, configuration=n)
         for (p, n), r in results.items()], ignore_index=True)  # fmt: skip
    first = ["protocol", "configuration"]
    calibration = calibration[first + [c for c in calibration.columns if c not in first]]
    return ModelComparison(table, differences, calibration, results, reference, data)


def options_without(options: Mapping, *names: str) -> dict:
    """``options`` less ``names``."""
    return {k: v for k, v in options.items() if k not in names}


def _cross_fitted(predictions: pd.DataFrame, level: float, cluster: str | None, seed: int) -> pd.DataFrame:
    """Each fold's intervals recalibrated by factors learned from the other folds' held-out cells."""
    parts = []
    for fold in sorted(predictions["fold"].unique()):
        rest = predictions[predictions["fold"] != fold]
        factors = learn_factors(rest, cluster=cluster, seed=seed, n_boot=1)  # the factors, not their intervals
        parts.append(factors.apply(predictions[predictions["fold"] == fold], level=level))
    out = pd.concat(parts, ignore_index=True)
    out.attrs.pop("recalibration", None)  # one set of factors per fold: none describes the whole
    return out


def _elpd(predictions: pd.DataFrame, cluster: str | None, n_boot: int, seed: int) -> tuple[float, float]:
    """The sum of the cells' log predictive densities and its family-group bootstrap standard error."""
    cells = predictions[predictions["observed"].notna()].reset_index(drop=True)
    values = cells["log_density"].to_numpy(float)
    codes = _cluster_codes(cells, cluster)
    se = _interval(_resampled_means(values, codes, _resample_counts(codes.max() + 1, n_boot, seed)), 0.95)[0]
    return float(values.sum()), float(len(values) * se)


def _grouped_loo(result: HoldoutResult, protocol: str, method: str, group: str | None, seed: int):
    if group is None or method == "baseline":
        return (np.nan, np.nan), None
    if protocol != "holdout":
        return (np.nan, np.nan), "elpd_loo: not computed for cross-validation rows (one fit per fold)"
    if method not in SAMPLED:
        return (np.nan, np.nan), f"elpd_loo: does not apply to point fits ({method}); use a nuts or advi fit"
    from bayes_lsl.loo import loo

    found = loo(result.fits[0], group=group, seed=seed)
    return (found.elpd_loo, found.se), None


def _row(protocol: str, name: str, intervals: str, K, method: str, result: HoldoutResult, elpd_loo) -> dict:
    overall = result.summary.loc["overall"]
    scoring = result.scoring
    elpd, elpd_se = _elpd(result.predictions, scoring.get("cluster", "group"), scoring.get("n_boot", N_BOOT),
                          scoring.get("seed", 0))  # fmt: skip
    row = {"protocol": protocol, "configuration": name, "intervals": intervals,
           "K": "-" if method == "baseline" else K, "method": method, "n": int(overall["n"]),
           "clusters": int(overall["clusters"]), "elpd": elpd, "elpd_se": elpd_se}  # fmt: skip
    for stat in _SUMMARY:
        if stat == "log_density":
            continue  # reported as elpd
        row[stat] = overall[stat]
        if stat != "width":
            row |= {f"{stat}_lower": overall[f"{stat}_lower"], f"{stat}_upper": overall[f"{stat}_upper"]}
    return row | {"elpd_loo": elpd_loo[0], "elpd_loo_se": elpd_loo[1]}


def _differences(results: dict, reference: str, with_baseline: bool, scoring: dict) -> pd.DataFrame:
    rows = []
    for (protocol, name), result in results.items():
        others = [reference] if name != reference else []
        if with_baseline and name != BASELINE:
            others.append(BASELINE)
        for other in others:
            diff = compare_predictions(result.predictions, results[(protocol, other)].predictions,
                                       **scoring).loc["overall"]  # fmt: skip
            row = {"protocol": protocol, "configuration": name, "against": other, "n": int(diff["n"]),
                   "clusters": int(diff["clusters"])}  # fmt: skip
            for stat, prefix in _PAIRED.items():
                for end in ("", "_se", "_lower", "_upper"):
                    row[f"{stat}_difference{end}"] = diff[f"{prefix}difference{end}"]
            # The elpd is n times the mean log density: its difference and interval scale with n.
            for end in ("", "_se", "_lower", "_upper"):
                row[f"elpd_difference{end}"] = row["n"] * row[f"log_density_difference{end}"]
            rows.append(row)
    return pd.DataFrame(rows)
