"""Inputs against the fit's data: the covariate-range guard of ``predict`` and ``allocate``.

A fit describes the models it saw. Sizes, tokens or budgets far outside that range are
extrapolation (the scaling law is a straight line in log size and log tokens, so its
error grows with the distance), and values off by orders of magnitude are nearly always
a slip of units (raw counts of parameters and tokens instead of billions and
trillions), which the model would turn into scores of exactly 0 or 1 with zero-width
intervals. :func:`check_range` errs on the second and warns on the first.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from bayes_lsl.data import check_units

#: Inputs beyond the fit's data range by more than this factor (either way) get a warning.
RANGE_MARGIN = 3.0
#: ``F = 6 N D`` with ``N`` in billions and ``D`` in trillions: FLOPs per unit of ``N D``.
FLOPS_PER_UNIT = 6e21
#: How each guarded quantity is named in messages.
_UNITS = {"size": "B parameters", "tokens": "T tokens", "flops": "FLOPs"}
#: Messages list this many out-of-range values, then a count.
_SHOWN = 5


def data_range(fit: xr.DataTree) -> dict[str, tuple[float, float]]:
    """The smallest and largest size (billions) and tokens (trillions) in the fit's data, and the budgets between.

    The budgets (FLOPs) run between the corners of the box of sizes and tokens,
    ``6 Nmin Dmin`` to ``6 Nmax Dmax``: the budgets whose iso-FLOPs line meets the box (the
    paper's allocation grid), not just those of the data's models.
    """
    cd = fit["constant_data"]
    size, tokens = cd["size"].values.astype(float), cd["tokens"].values.astype(float)
    ranges = {"size": (float(size.min()), float(size.max())), "tokens": (float(tokens.min()), float(tokens.max()))}
    ranges["flops"] = (FLOPS_PER_UNIT * ranges["size"][0] * ranges["tokens"][0],
                       FLOPS_PER_UNIT * ranges["size"][1] * ranges["tokens"][1])  # fmt: skip
    return ranges


def check_range(
    fit: xr.DataTree,
    values: Mapping[str, Sequence[float] | np.ndarray],
    labels: Sequence[str],
    *,
    margin: float = RANGE_MARGIN,
    stacklevel: int = 2,
) -> np.ndarray:
    """Err on values off by orders of magnitude, warn on values far outside the fit's data.

    Parameters
    ----------
    fit : xarray.DataTree
        From :func:`bayes_lsl.fit`; its ``constant_data`` holds the data's sizes and tokens.
    values : mapping
        Any of ``"size"`` (billions of parameters), ``"tokens"`` (trillions) and
        ``"flops"`` (budgets ``F = 6 N D``), each an array with one value per label.
    labels : sequence of str
        What each position is, for messages (e.g. ``"model 'llama-3-400b'"``).
    margin : float
        Factor beyond the data's smallest and largest value that is tolerated silently.
    stacklevel : int
        Of the warning: 1 points at the function that calls this one, 2 at its caller.

    Returns
    -------
    ndarray, shape (len(labels),)
        How far outside the data's range each position is, as a factor: 1 within the range,
        ``f > 1`` where a value is ``f`` times the largest or ``1/f`` times the smallest
        (the largest such factor over the quantities given).

    Raises
    ------
    DataError
        A size over 10,000 (billions), tokens over 1,000 (trillions) or a budget over
        ``6 x 10,000 x 1,000 x 1e21`` FLOPs (see :func:`bayes_lsl.data.check_units`).
    """
    ranges = data_range(fit)
    factor = np.ones(len(labels))
    outside = []
    for name, raw in values.items():
        value = np.asarray(raw, float)
        check_units(name, value, labels)
        lo, hi = ranges[name]
        beyond = np.maximum(value / hi, lo / value)
        factor = np.maximum(factor, beyond)
        outside += [f"{labels[i]}: {name} {value[i]:.3g} {_UNITS[name]}, {beyond[i]:.3g} times outside "
                    f"the data's {lo:.3g} to {hi:.3g}" for i in np.flatnonzero(beyond > margin)]  # fmt: skip
    if outside:
        more = f"; and {len(outside) - _SHOWN} more" if len(outside) > _SHOWN else ""
        warnings.warn(
            f"extrapolating beyond the data the fit was made on, by more than a factor {margin:g}, where the "
            f"scaling law is untested: {'; '.join(outside[:_SHOWN])}{more}",
            stacklevel=stacklevel + 1,
        )
    return factor


__all__ = ["FLOPS_PER_UNIT", "RANGE_MARGIN", "check_range", "data_range"]
