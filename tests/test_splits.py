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
