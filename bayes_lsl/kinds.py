"""Model kind: a pretrained base model, or one tuned after pre-training (instruction, chat, fine-tune).

Base and tuned models of one size score differently on some benchmarks (IFEval above
all), so analyses split by kind and model options may use it as a covariate. A frame
may carry a ``kind`` column; for the leaderboard data it is derived by :func:`leaderboard_kinds`
from the leaderboard dumps' ``Type`` column, with the model name as tie-breaker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from bayes_lsl.errors import DataError

#: The two kinds, in the order used for coordinates and tables.
KINDS: tuple[str, ...] = ("base", "tuned")

#: Spellings accepted in a ``kind`` column (lower case), and the kind each means.
ALIASES: dict[str, str] = {
    "base": "base", "pretrained": "base", "pre-trained": "base", "continuously pretrained": "base",
    "tuned": "tuned", "instruct": "tuned", "instruction-tuned": "tuned", "chat": "tuned",
    "fine-tuned": "tuned", "finetuned": "tuned", "merge": "tuned",
}  # fmt: skip

#: Name tokens that mark a tuned model (``llama-2-7b-chat``, ``gemma-2b-it``, ``zephyr-7b-dpo``).
TUNED_TOKENS: frozenset[str] = frozenset(
    {"chat", "instruct", "it", "sft", "dpo", "rlhf", "orpo", "ift", "kto", "simpo", "ipo", "rl"}
)
#: Name tokens that mark a base model (``deepseek-coder-1.3b-base``).
BASE_TOKENS: frozenset[str] = frozenset({"base"})

#: The leaderboard's ``T`` symbols: pretrained and continuously pretrained are base models;
#: chat, fine-tuned, merges and multimodal are tuned. ``?`` (unknown) says nothing.
LEADERBOARD_TYPES: dict[str, str] = {
    "🟢": "base", "🟩": "base", "💬": "tuned", "🔶": "tuned", "🤝": "tuned", "🌸": "tuned",
}  # fmt: skip


def kind_from_name(name: str) -> str | None:
    """The kind a model's name states, or ``None`` when the name says nothing.

    The name is split at ``-``, ``_``, ``.``, ``/`` and spaces; a token of
    :data:`TUNED_TOKENS` makes it ``"tuned"``, else one of :data:`BASE_TOKENS` ``"base"``.

    Examples
    --------
    >>> [kind_from_name(n) for n in ("llama-2-7b-chat", "gemma-2b-it", "deepseek-coder-1.3b-base", "pythia-1b")]
    ['tuned', 'tuned', 'base', None]
    """
    tokens = set(re.split(r"[-_./ ]+", str(name).lower()))
    if tokens & TUNED_TOKENS:
        return "tuned"
    if tokens & BASE_TOKENS:
        return "base"
    return None


def normalize_kinds(values: Iterable, labels: Sequence[str]) -> np.ndarray:
    """A ``kind`` column as ``"base"``/``"tuned"``, with an error naming the first bad row.

    Parameters
    ----------
    values : iterable
        One entry per model: a kind or one of :data:`ALIASES` (case-insensitive).
    labels : sequence of str
        How each row is named in messages (e.g. ``"row 3 (model 'x')"``).
    """
    out = []
    for value, label in zip(values, labels, strict=True):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise DataError(f"column 'kind': missing value in {label}; give every model a kind ({' or '.join(KINDS)})")
        kind = ALIASES.get(str(value).strip().lower())
        if kind is None:
            raise DataError(
                f"column 'kind': unknown kind {value!r} in {label}; use {' or '.join(KINDS)} "
                f"(or one of {sorted(ALIASES)})"
            )
        out.append(kind)
    return np.array(out, dtype=object)


def leaderboard_kinds(models: Sequence[str], dumps: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Kinds of the leaderboard models, from the dumps' ``Type`` and the models' names.

    The rule, in order:

    1. a name that states its kind (:func:`kind_from_name`) decides: several leaderboard
       rows share a normalized name (a base model and somebody's fine-tune of it), the name
       does not;
    2. otherwise, the model's rows in the dumps (matched by the normalized name of
       :func:`bayes_lsl.raw.model_key`): ``"base"`` if any row is pretrained or continuously
       pretrained (a fine-tune keeps its base model's name only by accident), else ``"tuned"``
       if any row has another known type;
    3. otherwise (not in the dumps, e.g. the paper's Pythia and XGLM base models, or marked
       ``?``) ``"base"``: the paper's models that are not leaderboard submissions come from
       the base-model collection of its sources.

    Parameters
    ----------
    models : sequence of str
        Model names as in the paper's files (a repeat numbered ``name (2)`` is looked up as ``name``).
    dumps : sequence of DataFrame
        Leaderboard dumps with a ``T`` column and a ``fullname`` or ``Model`` column.

    Returns
    -------
    DataFrame
        Indexed by model: ``kind`` and ``rule`` (``"name"``, ``"leaderboard"`` or ``"default"``).
    """
    from bayes_lsl.raw import model_key

    types: dict[str, set[str]] = {}
    for dump in dumps:
        names = dump["fullname"] if "fullname" in dump.columns else dump["Model"]
        for key, symbol in zip(names.map(model_key), dump["T"].astype(str), strict=True):
            if symbol in LEADERBOARD_TYPES:
                types.setdefault(key, set()).add(LEADERBOARD_TYPES[symbol])
    rows = []
    for model in models:
        name = re.sub(r" \(\d+\)$", "", str(model))
        stated = kind_from_name(name)
        listed = types.get(name, set())
        if stated is not None:
            rows.append((model, stated, "name"))
        elif listed:
            rows.append((model, "base" if "base" in listed else "tuned", "leaderboard"))
        else:
            rows.append((model, "base", "default"))
    return pd.DataFrame(rows, columns=["model", "kind", "rule"]).set_index("model")
