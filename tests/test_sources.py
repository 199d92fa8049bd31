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


def _offline(monkeypatch):
    def fail(file, target):
        raise OSError("no network")

    monkeypatch.setattr(sources, "_download", fail)


def test_data_tests_skip_with_the_reason_when_the_files_cannot_be_had(offline_home, monkeypatch):
    from conftest import REQUIRE_DATA, leaderboard_folder

    _offline(monkeypatch)
    monkeypatch.delenv(REQUIRE_DATA, raising=False)
    with pytest.raises(pytest.skip.Exception, match="leaderboard files not available: Cannot find df_full_v1.csv"):
        leaderboard_folder(offline_home / "folder")
    # Where they must be there (CI), the same is a failure.
    monkeypatch.setenv(REQUIRE_DATA, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_DATA} is set"):
        leaderboard_folder(offline_home / "folder")


def test_data_tests_find_the_files_in_the_user_cache(offline_home, data_dir, monkeypatch):
    """No ``$BAYES_LSL_DATA``, no network: files cached by an earlier download are used, in the usual layout."""
    from conftest import leaderboard_folder

    _offline(monkeypatch)
    sources.cache_dir().mkdir(parents=True)
    for key in sources.FILES:
        (sources.cache_dir() / sources.FILES[key].name).symlink_to(locate(key, data_dir=data_dir).resolve())
    folder = leaderboard_folder(offline_home / "folder")
    assert locate("v1", data_dir=folder, download=False) == folder / "df_full_v1.csv"
    assert locate("dump_v2", data_dir=folder, download=False) == folder / "raw" / "open-llm-leaderboard_new.csv"
    assert (folder / "df_full_v2.csv").resolve() == (sources.cache_dir() / "df_full_v2.csv").resolve()
