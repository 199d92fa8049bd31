"""Finding the leaderboard files: a local directory, the user cache, or a checked download.

The paper's CSV files are never shipped with the package. They are looked up in
this order: the ``data_dir`` argument, the ``BAYES_LSL_DATA`` environment
variable, the user cache directory, and finally their public address, where a
download is accepted only if its sha256 matches.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bayes_lsl.errors import BayesLslError
from bayes_lsl.files import atomic_path

log = logging.getLogger(__name__)

ENV_VAR = "BAYES_LSL_DATA"
_COMMIT = "7bb8b36f3fdf1938fe55a03bbf073bdeaca4dee8"
_BASE_URL = f"https://raw.githubusercontent.com/felipemaiapolo/statistical-scaling-law/{_COMMIT}/data/"
#: Where a person gets the files by hand (the same pinned commit).
REPOSITORY_URL = f"https://github.com/felipemaiapolo/statistical-scaling-law/tree/{_COMMIT}/data"


@dataclass(frozen=True)
class RemoteFile:
    """A file of the paper's repository, pinned to one commit by its sha256."""

    name: str
    sha256: str
    # Sub-folders of a local data directory where the file may also sit.
    local_subdirs: tuple[str, ...] = ("",)

    @property
    def url(self) -> str:
        return _BASE_URL + self.name


FILES = {
    "v1": RemoteFile("df_full_v1.csv", "38079ffdb3829ac23cce18f2d41bd11c8b13426bab37b38b6f89ac4a3b4b6ffa"),
    "v2": RemoteFile("df_full_v2.csv", "cb509883cf57c8bd9bd19a0c6ef4cc331d1348e0ca703a001dc24de2743fb4d6"),
    # The leaderboard v1 dump: its Type column gives the models' kinds (base or tuned).
    "dump_v1": RemoteFile(
        "open-llm-leaderboard_old.csv",
        "4fc6c5ff328753a1b4e5d1eac764eac127d4341d685e0615c3c399b879055f28",
        local_subdirs=("raw", ""),
    ),
    # The leaderboard v2 dump with the raw accuracies, needed by variant="raw", and kinds.
    "dump_v2": RemoteFile(
        "open-llm-leaderboard_new.csv",
        "6fd9f4760999fb04fe441a0480b869ebb2458449233dd51dd9821c20fe958298",
        local_subdirs=("raw", ""),
    ),
}


class DataNotFoundError(BayesLslError, FileNotFoundError):
    """Raised when a leaderboard file is neither local nor downloadable.

    The message says where to get the files and how to point the package at them;
    ``option`` is how the caller passes a directory (``data_dir=...`` in Python; the
    command line says ``--data-dir DIR``, see :meth:`for_option`).
    """

    def __init__(self, file_name: str, reason: str = "", option: str = "data_dir=...") -> None:
        self.file_name, self.reason, self.option = file_name, reason, option
        super().__init__(
            f"Cannot find {file_name}{reason}. Download the paper's files "
            f"({', '.join(f.name for f in FILES.values())}) from {REPOSITORY_URL} into a directory and pass "
            f"{option} or set the environment variable {ENV_VAR}."
        )

    def for_option(self, option: str) -> DataNotFoundError:
        """The same error, telling how to pass the directory with ``option``."""
        return DataNotFoundError(self.file_name, self.reason, option)


def cache_dir() -> Path:
    """The user cache directory for downloaded files (``$XDG_CACHE_HOME/bayes_lsl``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bayes_lsl"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _local_candidates(file: RemoteFile, data_dir: str | os.PathLike | None) -> list[Path]:
    dirs = [Path(d) for d in (data_dir, os.environ.get(ENV_VAR)) if d]
    return [d / sub / file.name for d in dirs for sub in file.local_subdirs]


def locate(key: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Return a verified local path of one of the paper's files.

    Parameters
    ----------
    key : {"v1", "v2", "dump_v1", "dump_v2"}
        Which file.
    data_dir : path, optional
        A directory that holds the files (checked first).
    download : bool
        Whether to fetch the file from its public address when it is not local.

    Raises
    ------
    DataNotFoundError
        When the file is nowhere to be found and cannot be downloaded.
    """
    file = FILES[key]
    for path in _local_candidates(file, data_dir):
        if path.is_file():
            # A user's own copy is trusted (it may be a deliberate edit); only warn.
            if sha256(path) != file.sha256:
                log.warning("%s does not match the published sha256; using it anyway", path)
            return path
    cached = cache_dir() / file.name
    if cached.is_file() and sha256(cached) == file.sha256:
        return cached
    if download:
        try:
            return _download(file, cached)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = f" (download failed: {err})"
    else:
        reason = ""
    raise DataNotFoundError(file.name, reason)


def _download(file: RemoteFile, target: Path) -> Path:
    log.info("downloading %s", file.url)
    target.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(file.url, timeout=30) as response:
        payload = response.read()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != file.sha256:
        raise BayesLslError(f"sha256 mismatch for {file.url}: got {digest}")
    atomic_write_bytes(target, payload)
    return target


def atomic_write_bytes(target: Path, payload: bytes) -> None:
    """Write ``payload`` to ``target`` so that readers never see a half-written file."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(payload)
