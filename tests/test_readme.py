"""The README's commands run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
#: First line of a README block too long to run in the README test.
NOT_RUN = "# not run by tests/test_readme.py"


def _blocks(language: str) -> list[str]:
    # Blocks inside list items are indented as a whole.
    return [textwrap.dedent(b) for b in re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)]


def _block_with(language: str, marker: str) -> str:
    found = [b for b in _blocks(language) if marker in b]
    assert len(found) == 1, f"expected one {language} block containing {marker!r}"
    return found[0]


def _shell(script: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.mark.slow  # four processes and a fit; test_cli runs the same commands in-process by default
def test_shell_quickstart(tmp_path):
    done = _shell(_block_with("bash", "--data example"), tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert set(predictions["model"]) == {"fam000-m9-30b", "brand-new-7b"}
    assert (predictions["lower"] <= predictions["upper"]).all()
    assert len(pd.read_csv(tmp_path / "allocation.csv")) == 10 * 2  # 10 budgets x 2 skills
    assert (tmp_path / "report" / "index.md").is_file()


@pytest.mark.slow
def test_python_blocks_in_order(tmp_path, monkeypatch, data_dir):
    # The Python examples build on each other (data, fit): run them in one namespace.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BAYES_LSL_DATA", str(data_dir))
    namespace: dict = {}
    blocks = _blocks("python")
    # A block may say it is too long to run here; it must say where it is tested instead.
    skipped = [b for b in blocks if b.startswith(NOT_RUN)]
    assert all("tests/" in b.splitlines()[0] for b in skipped), "a block not run must name the test that runs it"
    assert len(skipped) <= 1, "more README blocks than expected are marked not run"
    for block in blocks:
        if not block.startswith(NOT_RUN):
            exec(compile(block, str(README), "exec"), namespace)
    assert namespace["fit"].attrs["method"] in {"mle", "nuts"}


@pytest.mark.slow
def test_reproduce_the_paper(tmp_path, monkeypatch, data_dir):
    """The "Reproducing the paper" block, run in a scratch folder (its ``export`` replaced by the fixture's data)."""
    monkeypatch.setenv("BAYES_LSL_DATA", str(data_dir))
    block = _block_with("bash", "--variant paper --K 4")
    repo = README.parent
    lines = [line.replace("python benchmarks/", f"python {repo}/benchmarks/") for line in block.splitlines()
             if line.strip() and not line.startswith("export ")]  # fmt: skip
    done = _shell("\n".join(lines), tmp_path, timeout=3600)  # the K sweep takes most of it
    assert done.returncode == 0, done.stderr[-2000:]
    import bayes_lsl as bl

    assert bl.load_fit(tmp_path / "mle_k4.nc").attrs["marginal_loglik"] >= 3112.0
    ic = pd.read_csv(tmp_path / "ic.csv", index_col=0)
    assert list(ic.index) == [1, 2, 3, 4, 5, 6, 7, 8] and (tmp_path / "ic.png").stat().st_size > 0
    # Nested models: each K's optimum is at least the previous one's (up to the optimizer's tolerance).
    assert (ic["marginal_loglik"].diff().dropna() > -0.5).all(), ic["marginal_loglik"]
    assert "| paper | mle | 4 |" in done.stdout and "| paper | baseline |" in done.stdout
