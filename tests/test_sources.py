"""Finding the data files: local directory, cache, and a checked download (through file:// URLs)."""

from __future__ import annotations

import pytest

from bayes_lsl import sources
from bayes_lsl.sources import DataNotFoundError, RemoteFile, locate


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    monkeypatch.delenv("BAYES_LSL_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def _serve_from(monkeypatch, directory, sha=None):
    """Point the remote address of the v1 file at a local copy."""
    real = sources.FILES["v1"]
    fake = RemoteFile(real.name, sha or real.sha256)
    monkeypatch.setattr(sources, "_BASE_URL", directory.as_uri() + "/")
    monkeypatch.setitem(sources.FILES, "v1", fake)


def test_download_is_checked_and_cached(offline_home, data_dir, monkeypatch):
    _serve_from(monkeypatch, data_dir)
    path = locate("v1")
    assert path == sources.cache_dir() / "df_full_v1.csv"
    assert sources.sha256(path) == sources.FILES["v1"].sha256
    # Second call: from the cache, no download (the remote is gone).
    monkeypatch.setattr(sources, "_BASE_URL", "file:///nonexistent/")
    assert locate("v1") == path


def test_download_with_wrong_checksum_is_refused(offline_home, data_dir, monkeypatch):
    _serve_from(monkeypatch, data_dir, sha="0" * 64)
    with pytest.raises(DataNotFoundError, match="sha256 mismatch"):
        locate("v1")
    assert not (sources.cache_dir() / "df_full_v1.csv").exists()


def test_data_dir_wins_over_environment(offline_home, data_dir, monkeypatch):
    monkeypatch.setenv("BAYES_LSL_DATA", str(offline_home / "elsewhere"))
    assert locate("v2", data_dir=data_dir, download=False) == data_dir / "df_full_v2.csv"
    # The dump may sit in a raw/ sub-folder of the data directory.
    assert locate("dump_v2", data_dir=data_dir, download=False).parent.name == "raw"
