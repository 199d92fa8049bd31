"""The four notebooks execute top to bottom, in fast mode (``BAYES_LSL_FAST=1``).

They run in order in one test, sharing one folder of fits (``BAYES_LSL_FITS``): 02-04 reuse
the MLE fit that 01 saves. Under ``pytest -n 2`` the single test keeps them in one worker.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

NOTEBOOKS = ("01_quickstart", "02_mle_vs_bayes", "03_prediction", "04_compute_allocation")
DIR = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 1800


@pytest.mark.notebooks
def test_notebooks_execute(tmp_path, monkeypatch, data_dir):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    # The kernel inherits the environment when it starts.
    monkeypatch.setenv("BAYES_LSL_FAST", "1")
    monkeypatch.setenv("BAYES_LSL_FITS", str(tmp_path / "fits"))
    monkeypatch.setenv("BAYES_LSL_DATA", str(data_dir))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    timings = {}
    for name in NOTEBOOKS:
        nb = nbformat.read(DIR / f"{name}.ipynb", as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(DIR)}}
        )
        start = time.perf_counter()
        try:
            client.execute()
        except nbclient.exceptions.CellExecutionError as err:
            pytest.fail(f"notebook {name} failed:\n{err}")
        timings[name] = time.perf_counter() - start
        images = sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))
        assert images > 0, f"notebook {name} produced no figure"
    print("notebook runtimes (s):", {k: round(v, 1) for k, v in timings.items()})
