"""Raw-accuracy variant of the paper's Open LLM Leaderboard v2 scores.

In ``df_full_v2.csv`` two kinds of rows are mixed. The base models taken from
the Sloth data carry raw accuracies (rounded to two decimals), but the
leaderboard fine-tunes that the paper appended carry the leaderboard's
*normalized* scores divided by 100 (chance level subtracted, then rescaled).
Normalized scores can therefore sit below the chance floors (e.g. GPQA 0.25),
which the model's lower asymptote does not allow. This module swaps them for
the raw accuracies (the ``... Raw`` columns of the leaderboard dump).
"""

from __future__ import annotations

import logging

import pandas as pd

from bayes_lsl.errors import BayesLslError

logger = logging.getLogger(__name__)

#: Paper benchmark name -> column stem in the leaderboard dump. The dump has a
#: normalized column ``stem`` (0-100) and a raw column ``stem + " Raw"`` (0-1).
BENCHMARKS: dict[str, str] = {
    "ifeval": "IFEval",
    "bbh": "BBH",
    "math": "MATH Lvl 5",
    "mmlu-pro": "MMLU-PRO",
    "gpqa": "GPQA",
    "musr": "MUSR",
}

#: Largest allowed |paper - normalized / 100| on every benchmark for a row to
#: count as normalized: half a unit of two-decimal rounding. Raw and normalized
#: scores differ by far more than this on bbh, gpqa, musr and mmlu-pro.
ATOL: float = 0.005

#: Cells whose value moves by less than this are not reported as changed
#: (IFEval and MATH are normalized as raw * 100, so they barely move).
CHANGE_TOL: float = 1e-9


def model_key(fullname: str) -> str:
    """Normalize a leaderboard ``fullname`` the way the paper built ``model``.

    Mirrors ``standard_name`` in the paper's ``data/compile-data.ipynb``: keep
    the part after the organisation (``org/name`` -> ``name``), lowercase it
    and drop ``-hf``.
    """
    name = str(fullname)
    if "/" in name:
        name = name.split("/")[1]
    return name.lower().replace("-hf", "")


def raw_v2_scores(
    v2: pd.DataFrame, dump: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replace the leaderboard-normalized rows of ``df_full_v2`` by raw accuracies.

    Matching rule: a row of ``v2`` is a candidate for every dump entry whose
    ``model_key(fullname)`` equals its ``model`` (any organisation, any
    precision). Several entries may share a name (same repository name under
    two organisations, or two precisions), so among them we keep the one whose
    normalized scores / 100 are closest to the paper's six values (largest
    absolute difference). The row is *normalized* when that difference is at
    most ``ATOL`` on all six benchmarks; then all six scores are replaced by
    the entry's raw columns. Rows that do not match this way (the Sloth base
    models, which already hold raw accuracies) are left untouched.

    Parameters
    ----------
    v2 : pandas.DataFrame
        ``df_full_v2.csv`` as read by ``pd.read_csv(path, index_col=0)``; needs
        ``model`` and the six benchmark columns (``BENCHMARKS`` keys).
    dump : pandas.DataFrame
        The leaderboard dump ``open-llm-leaderboard_new.csv`` as read by
        ``pd.read_csv(path, index_col=0)``; needs ``fullname`` and, for each
        benchmark, the normalized and the ``... Raw`` column.

    Returns
    -------
    scores : pandas.DataFrame
        A copy of ``v2`` with the normalized rows' six scores replaced by raw
        accuracies in [0, 1].
    changes : pandas.DataFrame
        One row per cell whose value changed by more than ``CHANGE_TOL``, with
        columns ``model``, ``benchmark``, ``paper`` (old value) and ``raw``
        (new value), indexed by the ``v2`` row label.

    Raises
    ------
    ValueError
        If ``dump`` or ``v2`` lacks a needed column.
    """
    norm_cols = list(BENCHMARKS.values())
    raw_cols = [c + " Raw" for c in norm_cols]
    missing = [c for c in ["fullname", *norm_cols, *raw_cols] if c not in dump.columns]
    if missing:
        raise BayesLslError(f"leaderboard dump lacks column(s): {missing}")
    missing = [c for c in ["model", *BENCHMARKS] if c not in v2.columns]
    if missing:
        raise BayesLslError(f"v2 scores lack column(s): {missing}")

    keys = dump["fullname"].map(model_key)
    # Normalized scores on the paper's 0-1 scale, and raw accuracies, both
    # with the paper's benchmark names so they line up with v2's columns.
    norm = dump[norm_cols].set_axis(list(BENCHMARKS), axis=1) / 100
    raw = dump[raw_cols].set_axis(list(BENCHMARKS), axis=1)

    out = v2.copy()
    records = []
    n_matched = 0
    for row, model in v2["model"].items():
        cand = norm.loc[keys == model]
        if cand.empty:
            continue
        paper = v2.loc[row, list(BENCHMARKS)].astype(float)
        dist = (cand - paper).abs().max(axis=1)
        if dist.min() > ATOL:
            continue  # name exists in the dump but scores are not normalized
        if (dist <= ATOL).sum() > 1:
            # Two entries fit the paper values; keep the closest but say so.
            logger.warning(
                "%s: %d dump entries fit; using the closest",
                model,
                (dist <= ATOL).sum(),
            )
        best = dist.idxmin()
        n_matched += 1
        new = raw.loc[best].astype(float)
        out.loc[row, list(BENCHMARKS)] = new.to_numpy()
        logger.debug("%s <- %s", model, dump.loc[best, "fullname"])
        for bench in BENCHMARKS:
            if abs(new[bench] - paper[bench]) > CHANGE_TOL:
                records.append((row, model, bench, paper[bench], new[bench]))

    changes = pd.DataFrame.from_records(
        records, columns=["row", "model", "benchmark", "paper", "raw"]
    ).set_index("row")
    logger.info(
        "%d of %d rows carried normalized scores; %d cells changed",
        n_matched,
        len(v2),
        len(changes),
    )
    return out, changes
