"""The design matrix: which covariates of a model enter its skills, written once.

A model's skills are ``theta_i = alpha_l(i) + beta' x_i`` with ``x_i`` the standardized
*terms* of its size ``N`` (billions of parameters), tokens ``D`` (trillions) and, where
asked, its kind (pretrained base or tuned; :mod:`bayes_lsl.kinds`). Every term is a
function of ``(size, tokens, kind)`` listed in :data:`TERMS`; a design is a tuple of term
names (:func:`covariate_terms`), and :func:`design_matrix` computes it for any models,
those fitted and new ones alike, so that fitting and prediction cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bayes_lsl.errors import BayesLslError, DataError
from bayes_lsl.kinds import KINDS, kind_from_name, normalize_kinds

#: Terms of size and tokens: log size, log tokens, their product, and log compute.
#: ``log_compute`` is ``log(N D)`` (N in billions, D in trillions): ``log(6 N D)`` in FLOPs
#: up to a constant, which the standardization removes.
SIZE_TOKEN_TERMS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "log_size": lambda log_n, log_d: log_n,
    "log_tokens": lambda log_n, log_d: log_d,
    "log_size_x_log_tokens": lambda log_n, log_d: log_n * log_d,
    "log_compute": lambda log_n, log_d: log_n + log_d,
}

#: The indicator of a tuned model (1 tuned, 0 base); ``tuned_x_<term>`` is its product with ``<term>``.
KIND_TERM = "tuned"
_KIND_PREFIX = f"{KIND_TERM}_x_"

#: Every term a design may name: the size and token terms, ``tuned`` and ``tuned_x_<term>``.
TERMS: tuple[str, ...] = (*SIZE_TOKEN_TERMS, KIND_TERM, *(_KIND_PREFIX + t for t in SIZE_TOKEN_TERMS))

#: The named covariate sets.
COVARIATE_SETS: dict[str, tuple[str, ...]] = {
    "paper": ("log_size", "log_tokens", "log_size_x_log_tokens"),
    "no-interaction": ("log_size", "log_tokens"),
    "compute": ("log_compute",),
}

#: The paper's design: standardized [log N, log D, log N log D].
PAPER_TERMS: tuple[str, ...] = COVARIATE_SETS["paper"]


def covariate_terms(covariates: str | Sequence[str] = "paper", by_kind: bool = False) -> tuple[str, ...]:
    """The term names of a design.

    Parameters
    ----------
    covariates : str or sequence of str
        A named set of :data:`COVARIATE_SETS` (``"paper"``: log size, log tokens and their
        product; ``"no-interaction"``: without the product; ``"compute"``: log compute
        ``log(N D)``, that is ``log(6 N D)`` up to a constant that the standardization
        removes) or a list of names from :data:`TERMS`.
    by_kind : bool
        Add ``tuned`` (1 for tuned models, 0 for base) and its product with every other
        term, so that base and tuned models get their own intercepts and slopes per skill.

    Returns
    -------
    tuple of str

    Raises
    ------
    BayesLslError
        An unknown set or term (listing the vocabulary), a repeated term, an empty list.

    Examples
    --------
    >>> covariate_terms("no-interaction", by_kind=True)
    ('log_size', 'log_tokens', 'tuned', 'tuned_x_log_size', 'tuned_x_log_tokens')
    """
    if isinstance(covariates, str):
        if covariates not in COVARIATE_SETS:
            raise BayesLslError(
                f"covariates={covariates!r} is not a covariate set; choose one of {sorted(COVARIATE_SETS)} "
                f"or give a list of terms from {list(TERMS)}"
            )
        terms = list(COVARIATE_SETS[covariates])
    else:
        terms = [str(t) for t in covariates]
        unknown = [t for t in terms if t not in TERMS]
        if unknown:
            raise BayesLslError(f"covariates: unknown term(s) {unknown}; the terms are {list(TERMS)}")
        repeated = sorted({t for t in terms if terms.count(t) > 1})
        if repeated:
            raise BayesLslError(f"covariates: term(s) {repeated} listed more than once")
        if not terms:
            raise BayesLslError(f"covariates: the list of terms is empty; choose from {list(TERMS)}")
    if not isinstance(by_kind, (bool, np.bool_)):
        raise BayesLslError(f"by_kind must be True or False, got {by_kind!r}")
    if by_kind:
        plain = [t for t in terms if not needs_kind([t])]
        wanted = [KIND_TERM, *(_KIND_PREFIX + t for t in plain)]
        terms += [t for t in wanted if t not in terms]
    return tuple(terms)


def needs_kind(terms: Sequence[str]) -> bool:
    """Whether a design needs the models' kinds."""
    return any(t == KIND_TERM or t.startswith(_KIND_PREFIX) for t in terms)


def design_matrix(
    terms: Sequence[str],
    size: Sequence[float] | np.ndarray,
    tokens: Sequence[float] | np.ndarray,
    kind: Sequence[str] | np.ndarray | None = None,
    models: Sequence[str] | None = None,
) -> np.ndarray:
    """Unstandardized terms (model x term) of models with ``size`` (B), ``tokens`` (T) and ``kind``.

    Parameters
    ----------
    terms : sequence of str
        Names from :data:`TERMS` (see :func:`covariate_terms`).
    size, tokens : array-like
        Billions of parameters, trillions of tokens.
    kind : array-like of str, optional
        ``"base"`` or ``"tuned"`` per model; needed when a term involves ``tuned``.
    models : sequence of str, optional
        Model names, for the messages.

    Raises
    ------
    DataError
        A design with ``tuned`` terms and no kinds, or kinds other than base/tuned
        (naming the first models).
    """
    log_n, log_d = np.log(np.asarray(size, float)), np.log(np.asarray(tokens, float))
    tuned = _tuned_indicator(kind, len(log_n), models) if needs_kind(terms) else None
    columns = []
    for term in terms:
        base = term.removeprefix(_KIND_PREFIX)
        if term == KIND_TERM:
            columns.append(tuned)
        elif base in SIZE_TOKEN_TERMS:
            column = SIZE_TOKEN_TERMS[base](log_n, log_d)
            columns.append(column * tuned if term != base else column)
        else:
            raise BayesLslError(f"unknown covariate term {term!r}; the terms are {list(TERMS)}")
    return np.column_stack(columns) if columns else np.zeros((len(log_n), 0))


#: How to give models their kinds, for the messages.
KIND_HINT = (
    "give the frame a 'kind' column (base or tuned; e.g. pretrained, chat, instruct, fine-tuned), "
    "or load the leaderboard with kinds=True"
)


def _tuned_indicator(kind, n: int, models: Sequence[str] | None) -> np.ndarray:
    names = [str(m) for m in models] if models is not None else [f"model {i}" for i in range(n)]
    if kind is None:
        raise DataError(f"by_kind (the 'tuned' terms) needs each model's kind, and the models have none: {KIND_HINT}")
    kind = np.asarray(kind, dtype=object)
    unknown = [names[i] for i, k in enumerate(kind) if k not in KINDS]
    if unknown:
        raise DataError(
            f"by_kind needs each model's kind ({' or '.join(KINDS)}); unknown for {len(unknown)} model(s): "
            f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}; {KIND_HINT}"
        )
    return (kind == "tuned").astype(float)


def standardization(
    terms: Sequence[str],
    size: np.ndarray,
    tokens: np.ndarray,
    kind: np.ndarray | None = None,
    models: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Center and scale of each term over these models (the fitted data's), reused for new ones.

    Raises
    ------
    DataError
        A term constant across the models (e.g. ``tuned`` when every model is base).
    """
    raw = design_matrix(terms, size, tokens, kind, models)
    scale = raw.std(axis=0)
    for name, s in zip(terms, scale, strict=True):
        if not s > 0:
            why = ("by_kind needs base and tuned models both" if needs_kind([name])
                   else "sizes and tokens must vary")  # fmt: skip
            raise DataError(f"covariate {name} is constant across models: {why}")
    return raw.mean(axis=0), scale


def new_model_kinds(frame, terms: Sequence[str]) -> np.ndarray | None:
    """Kinds of new models (a frame with ``model`` and optionally ``kind``) for a design, or None if it needs none.

    A ``kind`` column is taken as it is (:func:`bayes_lsl.kinds.normalize_kinds`); without
    one the names decide (:func:`bayes_lsl.kinds.kind_from_name`), and models whose names
    say nothing are an error naming them.
    """
    if not needs_kind(terms):
        return None
    models = frame["model"].astype(str).tolist()
    if "kind" in frame.columns:
        return normalize_kinds(frame["kind"], [f"new model {m!r}" for m in models])
    kinds = [kind_from_name(m) for m in models]
    unknown = [m for m, k in zip(models, kinds, strict=True) if k is None]
    if unknown:
        raise DataError(
            f"the fit models base and tuned models apart (by_kind), and the kind of {len(unknown)} new model(s) "
            f"cannot be told from the name: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}; add a 'kind' column "
            f"({' or '.join(KINDS)}) to the new models"
        )
    return np.array(kinds, dtype=object)
