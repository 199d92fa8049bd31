"""Which code a benchmark ran: read once, when its process starts.

A long run keeps the code it loaded; asking git again at each write would name whatever
was committed since, which is how one SBC file once carried a commit made after its
process had started (benchmarks/README.md, "Not bit-identical in one case").
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What counts as the code: a change elsewhere (text, results) does not make a run "+dirty".
CODE_PATHS = ("bayes_lsl", "pyproject.toml", ":(glob)benchmarks/*.py")


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)


def code_version() -> str:
    """The short commit of ``HEAD``, with ``+dirty`` when the code differs from it; ``"?"`` without git."""
    try:
        head = _git("rev-parse", "--short", "HEAD").stdout.strip()
        dirty = _git("diff", "--quiet", "HEAD", "--", *CODE_PATHS).returncode == 1
    except OSError:
        return "?"
    return f"{head}+dirty" if head and dirty else head or "?"


#: The code this process loaded (the scripts import this module at their start).
CODE_VERSION = code_version()
