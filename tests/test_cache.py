"""The feature cache: reuse, keying, and atomic writes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

import genre_models.data.store as pp
from genre_models.config import FeatureConfig, PreprocessConfig
from genre_models.data.store import build_features as preprocess


def test_second_run_reuses_the_cache_and_says_so(demo_dir, tmp_path, caplog):
    cfg = PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(tmp_path / "c"))
    first = preprocess(cfg)
    with caplog.at_level(logging.INFO, logger="genre_models"):
        second = preprocess(cfg)
    assert not first.reused and second.reused
    assert first.key == second.key and first.path == second.path
    assert any("reusing feature cache" in r.message for r in caplog.records)
    np.testing.assert_array_equal(first.store.mfcc, second.store.mfcc)
    assert first.store.meta["dataset"]["digest"] == second.store.meta["dataset"]["digest"]


def test_key_depends_on_feature_config(demo_dir, tmp_path):
    a = preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(tmp_path / "c")))
    b = preprocess(PreprocessConfig(data_dir=str(demo_dir), features=FeatureConfig(image_size=64), cache_dir=str(tmp_path / "c")))
    assert a.key != b.key and not b.reused
    assert b.store.images.shape[1:] == (3, 64, 64)
    assert b.store.meta["features"]["image_size"] == 64


def test_killed_write_leaves_no_complete_looking_cache(demo_dir, tmp_path, monkeypatch):
    cache = tmp_path / "c"
    real_save = np.save
    calls = []

    def dying_save(path, arr, *a, **k):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if the run were killed mid-write
        return real_save(path, arr, *a, **k)

    monkeypatch.setattr(pp.np, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(cache), jobs=1))
    assert os.listdir(cache) == []  # neither the target nor the temp folder is left
    monkeypatch.setattr(pp.np, "save", real_save)
    res = preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(cache), jobs=1))
    assert not res.reused and res.store.mfcc.shape[0] == int(res.store.tracks.segments.sum())


def test_parallel_equals_serial(demo_dir, tmp_path):
    serial = preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(tmp_path / "a"), jobs=1)).store
    parallel = preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(tmp_path / "b"), jobs=2)).store
    np.testing.assert_array_equal(serial.mfcc, parallel.mfcc)
    np.testing.assert_array_equal(serial.images, parallel.images)
    assert serial.manifest.equals(parallel.manifest)


def test_a_damaged_cache_entry_is_noticed_and_rebuilt(demo_dir, tmp_path, caplog):
    cache = tmp_path / "c"
    first = preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(cache), jobs=1))
    mfcc = np.array(first.store.mfcc)
    path = cache / first.key / "mfcc.npy"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # torn by a crash or a full disk
    with caplog.at_level("WARNING", logger="genre_models"):
        again = preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(cache), jobs=1))
    assert not again.reused and again.key == first.key
    np.testing.assert_array_equal(again.store.mfcc, mfcc)
    assert f"{cache / first.key}: damaged feature cache (mfcc.npy has" in caplog.text and "rebuilding it" in caplog.text


def test_cache_folder_that_is_a_file_fails_in_one_line_before_extraction(demo_dir, tmp_path):
    from click.testing import CliRunner

    from benchmark.cli import main

    (tmp_path / "c").write_text("not a folder")
    res = CliRunner().invoke(main, ["preprocess", "--data-dir", str(demo_dir), "--cache-dir", str(tmp_path / "c"),
                                    "--no-track"])
    assert res.exit_code == 2 and res.stderr.strip() == (
        f"error: {tmp_path / 'c'}: the cache folder is a file, not a folder; use another --cache-dir")
    assert "extracting" not in res.stderr


def test_a_full_disk_says_so_and_leaves_no_temp_folder(demo_dir, tmp_path, monkeypatch):
    import errno

    from genre_models.errors import DataError

    def full(path, arr, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pp.np, "save", full)
    with pytest.raises(DataError, match=r"c: disk full while writing [0-9a-f]{16}; free some space and run again$"):
        preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(tmp_path / "c"), jobs=1))
    assert os.listdir(tmp_path / "c") == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 200 KiB file system (tmpfs, where this user may mount one), unmounted after; else None."""
    import subprocess

    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)], capture_output=True)
    yield mnt if done.returncode == 0 else None
    if done.returncode == 0:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_disk_that_fills_during_numpys_write_says_disk_full(demo_dir, tiny_disk, tmp_path, monkeypatch):
    """numpy reports a full disk as a short write, an OSError without errno ("N requested and M
    written"): on a real 200 KiB file system where one can be mounted, else numpy's own words."""
    from genre_models.errors import DataError

    cache = tiny_disk / "c" if tiny_disk else tmp_path / "c"
    if tiny_disk is None:
        def short(path, arr, *a, **k):
            raise OSError(f"{np.asarray(arr).nbytes} requested and 4096 written")

        monkeypatch.setattr(pp.np, "save", short)
    with pytest.raises(DataError, match=rf"^{cache}: disk full while writing [0-9a-f]{{16}}; free some space and run again$"):
        preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(cache), jobs=1))
    assert os.listdir(cache) == []


def test_a_cache_entry_that_is_a_symlink_is_refused_in_one_line_before_extraction(demo_dir, tmp_path):
    from click.testing import CliRunner

    from benchmark.cli import main

    cache, elsewhere = tmp_path / "c", tmp_path / "elsewhere"
    first = preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(cache), jobs=1))
    entry = Path(first.path)
    entry.rename(elsewhere)
    (elsewhere / "meta.json").write_text("{torn")
    entry.symlink_to(elsewhere, target_is_directory=True)  # a link where the entry was, to a damaged copy
    res = CliRunner().invoke(main, ["preprocess", "--data-dir", str(demo_dir), "--cache-dir", str(cache), "--no-track"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.strip() == (f"error: {entry}: this cache entry is a symbolic link (to {elsewhere}), not a folder "
                                  "genre-bench wrote; it never reads or writes its cache through a link: remove the link "
                                  "and run again")
    assert "extracting" not in res.stderr and (elsewhere / "meta.json").read_text() == "{torn"


def test_temp_folders_of_killed_runs_are_removed_and_live_ones_kept(demo_dir, tmp_path):
    import socket
    import subprocess
    import sys

    cache = tmp_path / "c"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for name, pid in (("dead", int(dead.stdout)), ("live", os.getpid())):
        (cache / f".tmp-{name}").mkdir(parents=True)
        (cache / f".tmp-{name}" / ".owner").write_text(f"{socket.gethostname()} {pid}")
    preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(cache), jobs=1))
    assert not (cache / ".tmp-dead").exists() and (cache / ".tmp-live").exists()
