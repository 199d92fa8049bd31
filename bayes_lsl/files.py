"""Writing results atomically: a reader never sees a half-written file or folder.

Everything is first written under a temporary name next to its destination (same
filesystem, so the final rename is atomic) and renamed onto it only when the writing
succeeded; on failure the temporary is removed and the destination is left as it was.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _temporary(path: Path, kind: str) -> Path:
    # Same suffix, so that writers which infer the format from it (savefig) still do.
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.{kind}{path.suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file name next to ``path``, renamed onto ``path`` when the block succeeds.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "table.csv"
    >>> with atomic_path(out) as tmp:
    ...     _ = tmp.write_text("a,b\\n1,2\\n")
    >>> out.read_text()
    'a,b\\n1,2\\n'
    """
    path = Path(path)
    tmp = _temporary(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder next to ``path`` that replaces ``path`` as a whole when the block succeeds.

    An existing ``path`` is moved aside, the new folder renamed onto it, and the old one
    removed; if the rename fails the old folder is put back.
    """
    path = Path(path)
    tmp = _temporary(path, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if path.exists():
            old = _temporary(path, "old")
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
