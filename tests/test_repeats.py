"""Repeated recordings: the same excerpt under another name, altered as GTZAN's copies are,
is grouped with its original; different songs never are; groups stay on one side of a split."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.config import PreprocessConfig, SplitConfig
from genre_models.data.features import repeat_fingerprint
from genre_models.data.repeats import THRESHOLD, coarse_scores, find_repeats, fine_score
from genre_models.data.splits import effective_tracks
from genre_models.data.store import build_features
from genre_models.data.synth import synth_track
from genre_models.genres import GENRES

from genre_models.reporting.runs import select_runs

from conftest import SR, runs_frame, runs_table, tagged_runs


def _round_trip(y: np.ndarray, fmt: str, subtype: str) -> np.ndarray:
    buf = io.BytesIO()
    sf.write(buf, y, SR, format=fmt, subtype=subtype, **({} if fmt == "FLAC" else {"compression_level": 0.9}))
    buf.seek(0)
    return sf.read(buf, dtype="float32")[0]


#: The changes the issue names: level, dither and requantisation, lossy round trips, shifts of up
#: to 0.5 s, a clip cut a few seconds shorter (at either end).
VARIANTS = {
    "-3 dB": lambda y, rng: y * 10 ** (-3 / 20),
    "+3 dB": lambda y, rng: np.clip(y * 10 ** (3 / 20), -1, 1),
    "8-bit": lambda y, rng: np.round(y * 127) / 127,
    "1-LSB dither": lambda y, rng: np.round(y * 32767 + rng.uniform(-1, 1, y.size)) / 32767,
    "MP3": lambda y, rng: _round_trip(y, "MP3", "MPEG_LAYER_III"),
    "OGG": lambda y, rng: _round_trip(y, "OGG", "VORBIS"),
    "FLAC": lambda y, rng: _round_trip(y, "FLAC", "PCM_16"),
    "0.5 s later": lambda y, rng: np.concatenate([np.zeros(SR // 2), y])[: y.size],
    "0.37 s earlier": lambda y, rng: y[int(0.37 * SR):],
    "cut 3 s at the end": lambda y, rng: y[: -3 * SR],
    "cut 4 s at the start, -2 dB": lambda y, rng: y[4 * SR:] * 0.8,
}


def _clips(source: str, sample_dir_factory) -> dict[str, np.ndarray]:
    """The real sample's usable clips, or (for every machine) 20 generated songs, two per genre,
    each 15 s: different songs of one genre share tempo, drums and scale."""
    if source == "sample":
        root = sample_dir_factory() / "Data" / "genres_original"
        out = {}
        for path in sorted(root.glob("*/*.wav")):
            try:
                out[path.stem] = sf.read(path, dtype="float32")[0]
            except RuntimeError:  # the Kaggle copy's headerless jazz.00054
                continue
        return out
    return {f"{g}.{i:05d}": synth_track(g, 15.0, seed=100 * gi + i) for gi, g in enumerate(GENRES) for i in range(2)}


@pytest.fixture
def clips(request):
    return _clips(request.param, lambda: request.getfixturevalue("sample_dir"))


@pytest.mark.parametrize("clips", [pytest.param("sample", marks=pytest.mark.sample), "generated"], indirect=True)
def test_every_variant_joins_its_original_and_no_two_songs_are_grouped(clips):
    names = list(clips)
    fps = [repeat_fingerprint(clips[n], SR) for n in names]
    alone = find_repeats(fps, names)
    assert alone.groups == {}  # distinct songs, of one genre and (in the sample) one artist too
    coarse, lag = coarse_scores(fps)
    iu = np.triu_indices(len(names), 1)
    worst = max(fine_score(fps[i], fps[j], int(lag[i, j])) for i, j in zip(*iu) if coarse[i, j] >= 0.3) \
        if (coarse[iu] >= 0.3).any() else 0.0
    assert worst < THRESHOLD - 0.2  # far from the threshold, not just under it
    rng = np.random.default_rng(0)
    originals = names[:: max(1, len(names) // 8)][:8]
    all_names, all_fps = list(names), list(fps)
    for n in originals:
        for what, change in VARIANTS.items():
            all_names.append(f"{n} ({what})")
            all_fps.append(repeat_fingerprint(change(clips[n], rng).astype(np.float32), SR))
    found = find_repeats(all_fps, all_names)
    groups = {all_names[h]: sorted(all_names[m] for m in members) for h, members in found.groups.items()}
    assert sorted(groups) == sorted(originals)  # one group per original, headed by it...
    for n in originals:  # ...holding exactly its variants
        assert groups[n] == sorted([n] + [f"{n} ({what})" for what in VARIANTS])
    scores = found.score[len(names):]
    assert scores.min() >= 0.8, dict(zip(all_names[len(names):], scores.round(3)))


def test_a_repeat_stays_with_its_original_in_every_split_and_fold(tmp_path, tmp_store):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["synth", "--out", str(out), "--tracks-per-genre", "3", "--seconds", "5"])
    assert r.exit_code == 0, r.output
    truth = {t["track"]: t["of"] for t in json.loads((out / "SYNTHETIC.json").read_text())["repeated_tracks"]}
    assert len(truth) == 5
    res = CliRunner().invoke(main, ["preprocess", "--data-dir", str(out), "--cache-dir", str(tmp_path / "c"), "--no-track",
                                    "--split", "kfold", "--folds", "4", "--fold", "2"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stdout.splitlines() if line.startswith("  repeats ")]
    assert len(lines) == 5 and "5 groups of repeated recordings (10 tracks)" in res.stdout
    for copy, original in truth.items():
        line = next(line for line in lines if f" {copy} (" in line)
        assert line.startswith(f"  repeats {original} = {copy} (") and line.endswith("(2 tracks, kept on one side of every split)")
    assert "  kfold-2of4/test:" in res.stdout
    store = build_features(PreprocessConfig(data_dir=str(out), cache_dir=str(tmp_path / "c"))).store
    tracks = store.tracks.set_index("track_id")
    grouped = tracks[tracks.repeat_group != ""]
    assert {t: g for t, g in grouped.repeat_group.items() if t != g} == truth  # exactly the written repeats
    assert (grouped.repeat_score >= 0.8).all() and (tracks[tracks.repeat_group == ""].repeat_score == 0).all()
    for split, folds in (("track", 10), ("filtered", 10), ("kfold", 4)):
        for seed in range(4):
            for fold in range(folds if split == "kfold" else 1):
                part = store.manifest_with_split(SplitConfig(split=split, seed=seed, fold=fold, folds=folds)).set_index(
                    "track_id").split
                assert all(part[c] == part[o] for c, o in truth.items()), (split, seed, fold)
    # A training run counts its training part by its effective number of tracks (a copy teaches nothing
    # new), which the report's Nadeau & Bengio ratio then uses.
    r = CliRunner().invoke(main, ["train", "--net", "svm", "--data-dir", str(out), "--cache-dir", str(tmp_path / "c"),
                                  "--split", "filtered", "--seed", "1"])
    assert r.exit_code == 0, r.output
    (run,) = tagged_runs(stage="train")
    params = run.data.params
    part = store.manifest_with_split(SplitConfig(split="filtered", seed=1)).set_index("track_id").split
    train = [t for t in tracks.index if part[t] == "train"]
    groups = [tracks.repeat_group[t] or t for t in train]
    assert int(params["n_train_tracks"]) == len(train) and len(set(groups)) < len(train)  # a repeat in training
    assert int(params["n_train_effective"]) == round(effective_tracks(groups)) < len(train)


def test_the_effective_number_of_tracks_and_the_ratio_it_gives():
    assert effective_tracks(["a", "a", "b", "c"]) == pytest.approx(16 / 6)  # n^2 / sum of group sizes squared
    assert effective_tracks(["a", "b", "c"]) == 3.0 and effective_tracks(["x"] * 4) == 1.0 and effective_tracks([]) == 0.0
    rows = [{"net": n, "seed": s, "split": "track", "acc": 0.5} for n in ("net1", "net2") for s in range(3)]
    runs = runs_table(rows)
    assert (runs.ratio == 10 / 70).all()  # no effective count logged (an older run): its tracks
    frame = runs_frame(rows, {"params.n_train_effective": ["35", "35", "35", "700", "0", "35"]})
    ratios = select_runs(frame)[0].set_index("run_id").ratio
    assert ratios["net1-0"] == pytest.approx(10 / 35) and ratios["net2-0"] == pytest.approx(10 / 70)  # 700 > 70 tracks
    assert "net2-1" not in ratios  # 0 is not a count: the run is left out, as any bad count

