"""The committed notebooks show their figures; the four execute top to bottom, in fast mode.

The execution test (``BAYES_LSL_FAST=1``) runs them in order in one test, sharing one folder
of fits (``BAYES_LSL_FITS``): 02-04 reuse the MLE fit that 01 saves. Under ``pytest -n 2``
the single test keeps them in one worker.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

NOTEBOOKS = ("01_quickstart", "02_mle_vs_bayes", "03_prediction", "04_compute_allocation")
DIR = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 1800
#: A call that draws: the package's plots, pyplot, ArviZ's plots, or any ``.plot(`` method.
PLOTTING_CALL = re.compile(r"\b(?:plots|plt)\.\w+\s*\(|\baz\.plot_\w*\s*\(|\.plot\(")


def plotting_cells_without_figure(notebook: dict) -> list[int]:
    """Indices of code cells that call a plotting function but hold neither an image nor an error.

    ``notebook`` is the .ipynb JSON. Comment lines are not code; a cell whose plot failed
    shows the error, which the execution test reports.
    """
    missing = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
        if not PLOTTING_CALL.search(code):
            continue
        outputs = cell.get("outputs", [])
        if not any("image/png" in out.get("data", {}) or out.get("output_type") == "error" for out in outputs):
            missing.append(index)
    return missing


def test_plotting_cells_without_figure_are_found():
    def code(source, outputs=()):
        return {"cell_type": "code", "source": source, "outputs": list(outputs)}

    image = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}
    error = {"output_type": "error", "ename": "ValueError", "evalue": "", "traceback": []}
    text = {"output_type": "stream", "name": "stdout", "text": "done"}
    notebook = {"cells": [
        code('plt.rcParams["figure.dpi"] = 80'),                     # 0: a setting, not a plot
        code("plots.forest(fits, names=('lam',));"),                 # 1: no output
        code("az.plot_energy(nuts);", [image]),                      # 2
        code("fig, ax = plt.subplots()\nax.hist(x)", [text]),        # 3: text only
        code("df.plot(kind='bar')", [error]),                        # 4: the error shows
        {"cell_type": "markdown", "source": "plots.forest(fits)"},  # 5: not code
        code("# plt.show()\nx = 1"),                                 # 6: a comment
    ]}  # fmt: skip
    assert plotting_cells_without_figure(notebook) == [1, 3]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebooks_show_their_figures(name):
    notebook = json.loads((DIR / f"{name}.ipynb").read_text())
    missing = plotting_cells_without_figure(notebook)
    assert not missing, f"notebook {name}: plotting cells {missing} have no image output; re-execute it"
    # An error output counts as the cell's output above (the execution test reports it), but
    # committed outputs are those of a full run, which must have run through.
    errors = [i for i, cell in enumerate(notebook["cells"]) for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]  # fmt: skip
    assert not errors, f"notebook {name}: cells {errors} were committed with an error; re-execute it"


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
