"""Splits: grouping by track, stratification, determinism, and the study's leaky protocol."""

from __future__ import annotations

import numpy as np
import pytest

from genre_models.config import PreprocessConfig, SplitConfig
from genre_models.genres import GENRES
from genre_models.data.store import build_features as preprocess
from genre_models.data.splits import filtered_split, sample_split, track_split

TRACKS = [f"{g}.{i:05d}" for g in GENRES for i in range(100)]
GENRE_OF = [t.split(".")[0] for t in TRACKS]
SEG_TRACK = np.repeat(np.arange(len(TRACKS)), 30)  # 30 segments per track


def _tracks_per_part(parts):
    return [set(SEG_TRACK[parts == p]) for p in range(3)]


@pytest.mark.parametrize("method", ["track", "filtered"])
def test_no_track_in_two_parts(method):
    parts = sample_split(SEG_TRACK, TRACKS, GENRE_OF, SplitConfig(split=method, seed=3))
    tr, va, te = _tracks_per_part(parts)
    assert not (tr & va) and not (tr & te) and not (va & te)


def test_track_split_is_stratified_70_20_10():
    assign = track_split(TRACKS, GENRE_OF, SplitConfig(split="track", seed=0))
    for g in GENRES:
        parts = [assign[t] for t in TRACKS if t.startswith(g)]
        assert (parts.count("train"), parts.count("val"), parts.count("test")) == (70, 20, 10)


def test_splits_are_deterministic_per_seed():
    for method in ("random", "track"):
        a = sample_split(SEG_TRACK, TRACKS, GENRE_OF, SplitConfig(split=method, seed=5))
        b = sample_split(SEG_TRACK, TRACKS, GENRE_OF, SplitConfig(split=method, seed=5))
        c = sample_split(SEG_TRACK, TRACKS, GENRE_OF, SplitConfig(split=method, seed=6))
        assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_random_split_is_the_studys_leaky_protocol():
    parts = sample_split(SEG_TRACK, TRACKS, GENRE_OF, SplitConfig(split="random", seed=0))
    assert np.bincount(parts).tolist() == [21000, 6000, 3000]
    tr, _, te = _tracks_per_part(parts)
    assert len(tr & te) > 900  # nearly every test track also has segments in train


def test_filtered_lists_ship_with_the_package():
    lists = filtered_split()
    counts = {p: sum(1 for v in lists.values() if v == p) for p in ("train", "val", "test")}
    assert counts == {"train": 443, "val": 197, "test": 290}
    assert lists["blues.00029"] == "train" and lists["blues.00000"] == "val"
    assign = track_split(TRACKS, GENRE_OF, SplitConfig(split="filtered"))
    assert sum(v is None for v in assign.values()) == 1000 - 930  # tracks not on the lists are excluded


def test_store_splits_group_segments_by_track(demo_dir, tmp_path):
    store = preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(tmp_path / "c"))).store
    parts = store.parts("mfcc", SplitConfig(split="track", seed=1))
    owners = [set(store.seg_track[parts == p]) for p in range(3)]
    assert not (owners[0] & owners[1]) and not (owners[0] & owners[2]) and not (owners[1] & owners[2])
    assert [len(o) for o in owners] == [30, 10, 10]  # 5 tracks per genre -> 3/1/1


def test_kfold_tests_every_track_once_stratified_and_validates_on_the_next_fold():
    tested: list[str] = []
    for fold in range(10):
        assign = track_split(TRACKS, GENRE_OF, SplitConfig(split="kfold", seed=2, fold=fold))
        test = [t for t in TRACKS if assign[t] == "test"]
        val = {t for t in TRACKS if assign[t] == "val"}
        assert len(test) == 100 and len(val) == 100 and sum(v == "train" for v in assign.values()) == 800
        assert all(sum(t.startswith(f"{g}.") for t in test) == 10 for g in GENRES)  # stratified by genre
        nxt = track_split(TRACKS, GENRE_OF, SplitConfig(split="kfold", seed=2, fold=(fold + 1) % 10))
        assert val == {t for t in TRACKS if nxt[t] == "test"}  # validation: the next fold, never the test fold
        tested += test
    assert sorted(tested) == sorted(TRACKS)  # over the folds, every track is tested exactly once
    other = track_split(TRACKS, GENRE_OF, SplitConfig(split="kfold", seed=3, fold=0))
    again = track_split(TRACKS, GENRE_OF, SplitConfig(split="kfold", seed=2, fold=0))
    first = track_split(TRACKS, GENRE_OF, SplitConfig(split="kfold", seed=2, fold=0))
    assert again == first and other != first  # deterministic for a seed
    groups = [("blues.00000" if t in ("blues.00001", "rock.00007") else t) for t in TRACKS]  # a group across genres
    for fold in range(10):
        parts = sample_split(SEG_TRACK, TRACKS, GENRE_OF, SplitConfig(split="kfold", seed=2, fold=fold), groups)
        of = {t: set(parts[SEG_TRACK == i]) for i, t in enumerate(TRACKS)}
        assert of["blues.00000"] == of["blues.00001"] == of["rock.00007"] and len(of["rock.00007"]) == 1


def test_fold_settings_are_checked_before_any_work(tmp_path):
    from click.testing import CliRunner

    from benchmark.cli import main

    cases = [(["--split", "kfold", "--fold", "10"], "error: fold must be from 0 to 9 (folds 10), got 10"),
             (["--split", "track", "--fold", "3"], "error: fold 3 was given, but split 'track' has no folds (only kfold has)"),
             (["--split", "kfold", "--folds", "2"], "Invalid value for '--folds': 2 is not in the range 3<=x<=1000.")]
    for args, message in cases:
        for command in (["train", "--net", "net5"], ["preprocess"], ["gan"]):
            res = CliRunner().invoke(main, [*command, "--data-dir", str(tmp_path / "none"), *args])
            assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.output, (command, res.output)
    sweep = CliRunner().invoke(main, ["sweep", "--data-dir", str(tmp_path / "none"), "--splits", "kfold", "--folds", "1"])
    assert sweep.exit_code == 2 and "Invalid value for '--folds': 1 is not in the range 3<=x<=1000." in sweep.stderr
    assert not (tmp_path / "none").exists()
