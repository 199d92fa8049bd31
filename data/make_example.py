"""Make the shipped example data set: simulated from the model with known parameters.

Run from the repository root: ``python data/make_example.py``. It writes
``bayes_lsl/example/example_scores.csv`` (the wide layout of ``ScalingData.from_frame``)
and ``bayes_lsl/example/example_truth.json`` (the parameters and family effects used).
Seeded: running it again gives the same files.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from bayes_lsl.simulate import random_design, random_parameters, simulate

OUT = Path(__file__).resolve().parents[1] / "bayes_lsl" / "example"
K, J, FAMILIES, PER_FAMILY, SEED = 2, 8, 40, 4, 2026


def main() -> None:
    params = random_parameters(K=K, J=J, seed=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few simulated scores fall below their floor, as real ones do
        data, truth = simulate(params, random_design(FAMILIES, PER_FAMILY, seed=SEED), missing=0.2, seed=SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    data.to_frame().round(6).to_csv(OUT / "example_scores.csv", index=False)
    meta = {"K": K, "seed": SEED, "benchmarks": list(data.benchmarks)}
    meta |= {name: value.tolist() for name, value in truth.items()}
    (OUT / "example_truth.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(data)


if __name__ == "__main__":
    main()
