"""The bad-input matrix: every odd file and bad option gets a recorded skip or a one-line error.

Each case asserts the exit code and the message (or the manifest's skip reason), and that every
good file was still processed. The data is generated here, in ``tmp_path``.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.config import PreprocessConfig, SplitConfig
from genre_models.data.store import build_features
from genre_models.data.synth import synth_track
from genre_models.genres import GENRES

from conftest import SR, bad_kaggle_tree, kaggle_tree, write_wav

#: file (relative to genres_original) -> the start of its recorded reason
SKIPS = {
    "jazz/jazz.00054.wav": "unreadable audio, no valid header or codec",
    "rock/rock.00009.wav": "empty file (0 bytes)",
    "rock/rock.00008.wav": "empty audio (header present, 0 samples)",
    "pop/pop.00008.wav": "clip too short",
    "disco/notes.txt": "not an audio file",
    "blues/blues.00050.wav": "no sound: every sample is 0 (digital silence)",
    "blues/blues.00051.wav": "no sound: peak level -80.0 dBFS, below the -60 dBFS floor",
    "metal/metal.00009.wav": "audio contains NaN or infinite samples",
    "country/live/country.00070.wav": "in a sub-folder of country/: not read",
    "hiphop.00071.wav": "outside any genre folder: not read",
    ".trash/pop.00072.wav": "in a hidden folder: not read",
    "reggae/.DS_Store": "hidden file",
    "reggae/reggae.00060.wav": "dangling symlink (points to",
    "rock/jazz.00061.wav": "file names genre 'jazz' but lies in rock/",
    "classical/classical.00000.wav": "duplicate track id classical.00000",  # the .au sorts first and is kept
    # No header, whatever the extension: libsndfile would read these as raw u-law (150 s of noise, a "clip").
    "jazz/jazz.00055.au": "unreadable audio, no valid header or codec (no audio header: it starts with ",
    "disco/disco.00077.au": "unreadable audio, no valid header or codec (no audio header: it starts with 6e 6f 74 65",
    "reggae/reggae.00062.wav": "symlink loop (points to reggae.00063.wav, which leads back to itself)",
    "reggae/reggae.00063.wav": "symlink loop (points to reggae.00062.wav, which leads back to itself)",
}
#: file -> the start of the note it is kept with
NOTED = {
    "metal/metal.00007.wav": "downmixed 2 channels to mono; resampled 44100 Hz -> 22050 Hz",
    "rock/rock.00005.wav": "truncated: the header promises 661500 frames (30.00 s), the file holds ",
    # Kaggle-style PNGs that are no spectrogram: noted, and the image rendered from the audio instead.
    "blues/blues.00000.wav": "PNG ",  # 1x1 transparent
    "pop/pop.00001.wav": "PNG ",  # 432x288 of one colour
}


@pytest.fixture
def odd_tree(tmp_path):
    """The ingestion tests' bad tree (two good clips per genre, a stereo one, four bad files) plus
    one of every other odd file in SKIPS and NOTED."""
    root = bad_kaggle_tree(tmp_path / "gtzan")
    g = root / "Data" / "genres_original"
    sf.write(g / "rock" / "rock.00008.wav", np.zeros(0, np.float32), SR, subtype="PCM_16")
    write_wav(g / "blues" / "blues.00050.wav", np.zeros(SR * 3, np.float32))
    sf.write(g / "blues" / "blues.00051.wav", np.full(SR * 3, 1e-4, np.float32) * np.sign(np.sin(np.arange(SR * 3))),
             SR, subtype="FLOAT")  # a 3 s square wave at -80 dBFS: dither, not music
    nan = synth_track("metal", 2.5, 9)
    nan[100] = np.nan
    sf.write(g / "metal" / "metal.00009.wav", nan, SR, subtype="FLOAT")
    write_wav(g / "country" / "live" / "country.00070.wav", synth_track("country", 2.5, 70))
    write_wav(g / "hiphop.00071.wav", synth_track("hiphop", 2.5, 71))
    write_wav(g / ".trash" / "pop.00072.wav", synth_track("pop", 2.5, 72))
    (g / "reggae" / ".DS_Store").write_bytes(b"\0\1")
    os.symlink(g / "reggae" / "gone.wav", g / "reggae" / "reggae.00060.wav")
    write_wav(g / "rock" / "jazz.00061.wav", synth_track("jazz", 2.5, 61))
    sf.write(g / "classical" / "classical.00000.au", synth_track("classical", 2.5, 5), SR, format="AU", subtype="PCM_16")
    sf.write(g / "rock" / "rock.00005.wav", synth_track("rock", 30.0, 5), SR, subtype="PCM_16")
    (g / "rock" / "rock.00005.wav").write_bytes((g / "rock" / "rock.00005.wav").read_bytes()[:200_000])
    (g / "blues" / "blues.00099.wav").write_bytes((g / "blues" / "blues.00000.wav").read_bytes())
    (g / "jazz" / "jazz.00055.au").write_bytes((g / "jazz" / "jazz.00054.wav").read_bytes())
    (g / "disco" / "disco.00077.au").write_text("notes for the disco set\n" * 40)
    os.symlink("reggae.00063.wav", g / "reggae" / "reggae.00062.wav")
    os.symlink("reggae.00062.wav", g / "reggae" / "reggae.00063.wav")
    from PIL import Image

    for genre in ("blues", "pop"):
        (root / "Data" / "images_original" / genre).mkdir(parents=True)
    Image.new("RGBA", (1, 1), (0, 0, 0, 0)).save(root / "Data" / "images_original" / "blues" / "blues00000.png")
    Image.new("RGB", (432, 288), (20, 40, 60)).save(root / "Data" / "images_original" / "pop" / "pop00001.png")
    return root


def test_every_odd_file_is_recorded_with_its_reason_and_every_good_file_is_used(odd_tree, tmp_path):
    res = build_features(PreprocessConfig(data_dir=str(odd_tree), cache_dir=str(tmp_path / "c"), jobs=2))
    man = res.store.manifest
    skipped = dict(zip(man[man.status == "skipped"].path, man[man.status == "skipped"].reason))
    for rel, reason in SKIPS.items():
        assert skipped.pop(f"genres_original/{rel}").startswith(reason), rel
    assert skipped == {}  # nothing else skipped...
    ok = man[man.status == "ok"]
    good = sorted([f"{g}.{i:05d}" for g in GENRES for i in range(2)] + ["metal.00007", "rock.00005", "blues.00099"])
    assert sorted(ok.track_id) == good  # ...and every good clip used
    assert (ok.segments[~ok.track_id.isin(["metal.00007", "rock.00005"])] == 2).all()
    assert len(res.noted) == len(NOTED)  # the files kept with a note, each once
    assert all(sum(n.startswith(f"genres_original/{rel}: {note}") for n in res.noted) == 1 for rel, note in NOTED.items())
    kept = man.set_index("track_id")
    assert kept.loc["blues.00000", "notes"].endswith(
        "blues00000.png unusable: 1x1 pixels, far from the Kaggle pictures' 432x288; rendered from the audio instead")
    assert kept.loc["pop.00001", "notes"].endswith(
        "pop00001.png unusable: no variation (every pixel (20, 40, 60)); rendered from the audio instead")
    assert kept.loc[["blues.00000", "pop.00001"], "image_source"].tolist() == ["audio", "audio"]
    # The skipped duplicate went nowhere, whatever its id shares with a kept track.
    split = res.store.manifest_with_split(SplitConfig(split="track", seed=0))
    dup = split[split.path == "genres_original/classical/classical.00000.wav"].iloc[0]
    assert (dup.split, dup.image_split, dup.segments_train + dup.segments_val + dup.segments_test) == ("", "", 0)


@pytest.mark.parametrize("fmt, ext", [("WAV", "wav"), ("AU", "au")])
def test_a_truncated_file_is_kept_with_a_note_saying_how_much_is_missing(fmt, ext, tmp_path):
    root = kaggle_tree(tmp_path / "d", per_genre=1, seconds=2.0)
    full = root / "Data" / "genres_original" / "rock" / f"rock.00005.{ext}"
    sf.write(full, synth_track("rock", 30.0, 5), SR, format=fmt, subtype="PCM_16")
    full.write_bytes(full.read_bytes()[:200_000])  # 200 KB of a 30 s file
    res = build_features(PreprocessConfig(data_dir=str(root), cache_dir=str(tmp_path / "c"), jobs=1))
    row = res.store.manifest.set_index("track_id").loc["rock.00005"]
    assert row.status == "ok" and row.notes.startswith("truncated: the header promises 661500 frames (30.00 s), the file holds ")
    assert row.duration_s == pytest.approx(4.53, abs=0.01) and row.segments == 4
    assert (res.store.manifest.status == "ok").sum() == 11  # the ten intact clips too


def test_a_file_this_user_cannot_read_is_recorded(odd_tree, tmp_path, monkeypatch):
    import genre_models.data.discovery as discovery

    locked = str(odd_tree / "Data" / "genres_original" / "jazz" / "jazz.00000.wav")
    real = os.access
    monkeypatch.setattr(discovery.os, "access", lambda p, mode: str(p) != locked and real(p, mode))  # as for a non-root user
    res = build_features(PreprocessConfig(data_dir=str(odd_tree), cache_dir=str(tmp_path / "c"), jobs=1))
    man = res.store.manifest.set_index("path")
    assert man.loc["genres_original/jazz/jazz.00000.wav", "reason"] == "permission denied (not readable by this user)"
    assert man.loc["genres_original/jazz/jazz.00001.wav", "status"] == "ok"


def test_the_cli_reports_every_odd_file_in_one_line(odd_tree, tmp_path):
    """The matrix of per-file cases: exit 0, one line per file saying what happened, and the
    manifest saying the same (checked above)."""
    res = CliRunner().invoke(main, ["preprocess", "--data-dir", str(odd_tree), "--cache-dir", str(tmp_path / "c"),
                                    "--no-track", "--jobs", "1"])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    for verb, cases in (("skipped", SKIPS), ("kept", NOTED)):
        lines = [line for line in res.stdout.splitlines() if line.startswith(f"  {verb} ")]
        assert len(lines) == len(cases), lines
        for rel, what in cases.items():
            assert sum(line.startswith(f"  {verb} genres_original/{rel}: {what}") for line in lines) == 1, rel
    assert "  skipped genres_original/blues/blues.00050.wav: no sound: every sample is 0 (digital silence)" in res.stdout
    assert f"{len(SKIPS)} skipped" in res.stdout
    repeats = [line for line in res.stdout.splitlines() if line.startswith("  repeats ")]  # the byte copy
    assert repeats == ["  repeats blues.00000 = blues.00099 (1.00) (2 tracks, kept on one side of every split)"]


@pytest.mark.parametrize("args, message", [
    (["train", "--net", "net5", "--lr", "-1"], "Invalid value for '--lr': -1.0 is not in the range 0.0<x<=1000000000000000.0."),
    (["train", "--net", "net5", "--lr", "nan"], "Invalid value for '--lr': 'nan' is not a finite number."),
    (["train", "--net", "net5", "--seed", "-5"], "Invalid value for '--seed': -5 is not in the range 0<=x<=4294967295."),
    (["train", "--net", "net5", "--num-workers", "-1"], "Invalid value for '--num-workers': -1 is not in the range 0<=x<=64."),
    (["train", "--net", "net5", "--epochs", "0"], "Invalid value for '--epochs': 0 is not in the range 1<=x<=100000."),
    (["preprocess", "--jobs", "-1"], "Invalid value for '--jobs': -1 is not in the range 0<=x<=256."),
    (["gan", "--seed", "-1"], "Invalid value for '--seed': -1 is not in the range 0<=x<=4294967295."),
    (["sweep", "--seeds", "0"], "Invalid value for '--seeds': 0 is not in the range 1<=x<=1000."),
    (["sweep", "--seeds", "100000"], "Invalid value for '--seeds': 100000 is not in the range 1<=x<=1000."),
    (["train", "--net", "net5", "--seed", "18446744073709551616"],
     "Invalid value for '--seed': 18446744073709551616 is not in the range 0<=x<=4294967295."),
    (["train", "--net", "net5", "--device", "mps"], "error: device=mps was asked for but torch.backends.mps.is_available() is False"),
    (["gan", "--device", "mps"], "error: device=mps was asked for but torch.backends.mps.is_available() is False"),
    (["sweep", "--device", "mps"], "error: device=mps was asked for but torch.backends.mps.is_available() is False"),
    (["train", "--net", "net5", "--device", "cuda"], "error: device=cuda was asked for but torch.cuda.is_available() is False"),
])
def test_bad_options_are_refused_before_any_work(args, message, demo_dir, tmp_store, tmp_path):
    if args[0] != "sweep":
        args = [*args, "--data-dir", str(demo_dir)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert message in res.output
    assert not (tmp_path / "cache").exists()  # not even preprocessing started


@pytest.mark.parametrize("top", ["0", "-2"])
def test_predict_top_must_be_positive(top, tmp_path):
    clip = write_wav(tmp_path / "clip.wav", synth_track("rock", 2.0, 0))
    res = CliRunner().invoke(main, ["predict", str(clip), "--model-uri", "runs:/x/model", "--top", top])
    assert res.exit_code == 2 and f"Invalid value for '--top': {top} is not in the range 1<=x<=10." in res.output


def test_predict_refuses_a_file_that_is_no_audio_whatever_its_name(tmp_path):
    (tmp_path / "notes.au").write_text("a text file named like audio\n")
    res = CliRunner().invoke(main, ["predict", str(tmp_path / "notes.au"), "--model-uri", "runs:/x/model"])
    assert res.exit_code == 2 and res.stderr.strip() == (
        f"error: {tmp_path / 'notes.au'}: not an audio file (no audio header: it is read by its first bytes, not its name)")


def test_predict_on_an_empty_file_says_so(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    res = CliRunner().invoke(main, ["predict", str(tmp_path / "empty.wav"), "--model-uri", "runs:/x/model"])
    assert res.exit_code == 2 and res.stderr.strip() == f"error: {tmp_path / 'empty.wav'}: empty file (0 bytes)"


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("prepare", ["real audio", "earlier synth output"])
def test_synth_never_writes_into_a_folder_that_holds_audio(prepare, tmp_path):
    out = tmp_path / "data"
    if prepare == "real audio":
        kaggle_tree(out, per_genre=1, seconds=1.0, genres=GENRES[:2])
    else:
        assert CliRunner().invoke(main, ["synth", "--out", str(out), "--tracks-per-genre", "1", "--seconds", "1"]).exit_code == 0
    before = _digest(out)
    res = CliRunner().invoke(main, ["synth", "--out", str(out), "--tracks-per-genre", "1", "--seconds", "1"])
    assert res.exit_code == 2 and res.stderr.startswith(f"error: {out}: already holds ")
    assert "never overwrites a file" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert _digest(out) == before  # not one byte changed, no marker added


def test_an_empty_test_part_is_refused_before_training(tmp_path, tmp_store):
    """Tracks from the artist-filtered train and validation lists only: the test part is empty."""
    from genre_models.data.splits import filtered_split

    root = tmp_path / "d"
    lists = filtered_split()
    for gi, g in enumerate(GENRES):
        mine = sorted(t for t in lists if t.startswith(f"{g}."))
        for t in [t for t in mine if lists[t] == "train"][:2] + [t for t in mine if lists[t] == "val"][:1]:
            write_wav(root / "genres" / g / f"{t}.wav", synth_track(g, 2.0, gi))
    res = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", str(root), "--split", "filtered",
                                    "--epochs", "1", "--jobs", "1"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.strip().endswith("the test part of the `filtered` split (seed 0) is empty; 30 usable tracks")
    import mlflow

    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []  # nothing trained, no run


def test_png_only_without_pngs_says_no_png_was_found(demo_dir, tmp_store):
    res = CliRunner().invoke(main, ["train", "--net", "net1", "--data-dir", str(demo_dir), "--image-source", "png",
                                    "--image-size", "32", "--epochs", "1"])
    assert res.exit_code == 2
    assert "no images to train net1 on: image_source=png and no Kaggle PNG was found" in res.stderr


def test_the_same_audio_under_two_names_stays_on_one_side_of_every_split(tmp_path):
    import shutil

    root = kaggle_tree(tmp_path / "d", per_genre=5, seconds=2.0)
    g = root / "Data" / "genres_original"
    shutil.copy(g / "blues" / "blues.00000.wav", g / "blues" / "blues.00099.wav")
    shutil.copy(g / "blues" / "blues.00000.wav", g / "rock" / "rock.00098.wav")  # a repeat filed under another genre
    store = build_features(PreprocessConfig(data_dir=str(root), cache_dir=str(tmp_path / "c"), jobs=1)).store
    tracks = store.tracks.set_index("track_id")
    group, score = tracks.repeat_group, tracks.repeat_score
    assert group["blues.00000"] == group["blues.00099"] == group["rock.00098"] == "blues.00000"
    assert (group != "").sum() == 3 and (score[group != ""] == 1.0).all()
    for split in ("track", "kfold"):
        for seed in range(12):
            fold = seed % 10 if split == "kfold" else 0
            parts = store.manifest_with_split(SplitConfig(split=split, seed=seed, fold=fold)).set_index("track_id").split
            assert parts["blues.00000"] == parts["blues.00099"] == parts["rock.00098"], (split, seed)
    from genre_models.data.summary import split_counts

    assert {k: split_counts(store, SplitConfig())[k] for k in ("repeat_groups", "repeat_tracks")} == {
        "repeat_groups": 1, "repeat_tracks": 3}


def test_a_genre_missing_from_the_training_part_is_said_as_it_is_and_recorded(tmp_path, tmp_store):
    """kfold with one jazz track: the fold that tests it trains without jazz. Preprocess and train
    say what really happens (its test track is scored and cannot be right); the run records it."""
    import mlflow

    root = kaggle_tree(tmp_path / "d", per_genre=3, seconds=2.5, genres=[g for g in GENRES if g != "jazz"])
    kaggle_tree(root, per_genre=1, seconds=2.5, genres=["jazz"])
    store = build_features(PreprocessConfig(data_dir=str(root), jobs=1)).store
    jazz = store.tracks.index[store.tracks.genre == "jazz"][0]
    fold = next(f for f in range(3) if store.parts("image", SplitConfig(split="kfold", folds=3, fold=f))[
        list(store.img_track).index(jazz)] == 2)
    split = SplitConfig(split="kfold", folds=3, fold=fold)
    said = (f"the train part of {split.words} has no jazz: no net learns jazz, yet its test tracks are scored as usual, "
            "so none of them can be right")
    args = ["--data-dir", str(root), "--split", "kfold", "--folds", "3", "--fold", str(fold), "--jobs", "1"]
    pre = CliRunner().invoke(main, ["preprocess", *args])
    assert pre.exit_code == 0 and said in pre.stderr and "over the other" not in pre.stderr, pre.output
    res = CliRunner().invoke(main, ["train", "--net", "net1", *args, "--epochs", "1", "--image-size", "16"])
    assert res.exit_code == 0 and said in res.stderr, res.output
    run = next(r for r in mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")
               if r.data.tags.get("stage") == "train")
    assert run.data.params["train_genres_absent"] == "jazz" and run.data.tags["warnings"] == said
    assert run.data.params["test_genres_absent"] == "none"  # the jazz track is tested


def test_a_genre_with_no_usable_track_is_said_and_never_scored_as_zero(tmp_path, tmp_store):
    """An empty genre folder: preprocess warns and records it; a run's macro-F1 is over the genres
    its test part has (F1 0 for an absent genre would divide it by 10), and it records the absent."""
    import mlflow

    root = kaggle_tree(tmp_path / "d", per_genre=3, seconds=3.0, genres=[g for g in GENRES if g != "rock"])
    (root / "Data" / "genres_original" / "rock").mkdir()
    pre = CliRunner().invoke(main, ["preprocess", "--data-dir", str(root), "--jobs", "1"])
    assert pre.exit_code == 0, pre.output
    assert "genre rock has no usable track: no net learns it or is tested on it" in pre.stderr
    runs = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")
    assert runs[0].data.params["genres_absent"] == "rock" and runs[0].data.params["warnings"] == "1"
    res = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", str(root), "--epochs", "1", "--jobs", "1"])
    assert res.exit_code == 0, res.output
    run = next(r for r in mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")
               if r.data.tags.get("stage") == "train")
    assert run.data.params["test_genres_absent"] == "rock" and "test_f1_rock" not in run.data.metrics
    conf = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="confusion_matrix.csv",
                                                           dst_path=str(tmp_path)), index_col=0).to_numpy()
    tp, support, predicted = np.diag(conf), conf.sum(1), conf.sum(0)
    f1 = np.where(support + predicted > 0, 2 * tp / np.maximum(support + predicted, 1), 0.0)
    present = support > 0
    assert present.sum() == 9 and run.data.metrics["test_macro_f1"] == pytest.approx(f1[present].mean())


def test_predict_applies_the_length_rule_whatever_the_net(tmp_path):
    """A 0.2 s clip: preprocessing would skip it, so no net scores it, an image net neither."""
    from genre_models.config import FeatureConfig
    from genre_models.data.audio import decode_clip
    from genre_models.errors import BadAudio
    from genre_models.stages.predict import model_inputs

    fcfg = FeatureConfig(image_size=32)
    short = decode_clip(str(write_wav(tmp_path / "short.wav", synth_track("rock", 0.2, 0))), fcfg, any_format=True)
    for kind in ("image", "mfcc", "raw"):
        with pytest.raises(BadAudio, match=r"clip too short: 0\.\d\d s of sound after silence removal; one segment needs 1 s"):
            model_inputs(short, kind, fcfg)
    long = decode_clip(str(write_wav(tmp_path / "long.wav", synth_track("rock", 2.5, 0))), fcfg, any_format=True)
    assert model_inputs(long, "image", fcfg).shape == (1, 3, 32, 32) and model_inputs(long, "mfcc", fcfg).shape == (2, 44, 13)
