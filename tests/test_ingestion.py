"""GTZAN discovery, bad-input handling and the preprocessing stage's manifest."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.config import PreprocessConfig, SplitConfig
from genre_models.data.discovery import dataset_digest, discover
from genre_models.errors import DataError
from genre_models.genres import GENRE_TO_ID, GENRES
from genre_models.data.store import build_features as preprocess
from genre_models.data.synth import synth_track

from conftest import SR, bad_kaggle_tree, kaggle_tree


def test_genres_sorted_and_ids_from_constant():
    assert list(GENRES) == sorted(GENRES) and len(GENRES) == 10
    assert [GENRE_TO_ID[g] for g in GENRES] == list(range(10))


def test_kaggle_layout_found_from_top_data_or_genre_parent(tmp_path):
    kaggle_tree(tmp_path, per_genre=1, seconds=1.5)
    png_dir = tmp_path / "Data" / "images_original" / "blues"
    png_dir.mkdir(parents=True)
    from PIL import Image

    Image.new("RGBA", (432, 288), (255, 255, 255, 255)).save(png_dir / "blues00000.png")
    views = [discover(p) for p in (tmp_path, tmp_path / "Data", tmp_path / "Data" / "genres_original")]
    for d in views:
        assert d.layout == "kaggle"
        assert [t.track_id for t in d.tracks] == [f"{g}.00000" for g in GENRES]
        assert d.tracks[0].image_path and d.tracks[0].image_path.endswith("blues00000.png")
        assert d.tracks[1].image_path is None
    assert len({dataset_digest(d) for d in views}) == 1


def test_marsyas_au_layout(tmp_path):
    import soundfile as sf

    for g in GENRES[:3]:
        (tmp_path / "genres" / g).mkdir(parents=True)
        sf.write(tmp_path / "genres" / g / f"{g}.00007.au", synth_track(g, 2.0, 1), SR, format="AU", subtype="PCM_16")
    d = discover(tmp_path)
    assert d.layout == "marsyas"
    assert [t.track_id for t in d.tracks] == ["blues.00007", "classical.00007", "country.00007"]
    res = preprocess(PreprocessConfig(data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"), jobs=1))
    assert res.store.mfcc.shape == (res.store.mfcc.shape[0], 44, 13)
    assert list(res.store.tracks.segments) == [2, 2, 2]


@pytest.fixture
def bad_tree(tmp_path):
    """Good clips plus one of every kind of bad file the brief lists."""
    return bad_kaggle_tree(tmp_path / "gtzan")


EXPECTED_SKIPS = {
    "genres_original/jazz/jazz.00054.wav": "unreadable audio",
    "genres_original/rock/rock.00009.wav": "empty file",
    "genres_original/pop/pop.00008.wav": "clip too short",
    "genres_original/disco/notes.txt": "not an audio file",
}


def test_bad_files_are_skipped_and_recorded(bad_tree, tmp_path):
    res = preprocess(PreprocessConfig(data_dir=str(bad_tree), cache_dir=str(tmp_path / "cache"), jobs=2))
    man = res.store.manifest
    skipped = man[man.status == "skipped"]
    assert dict(zip(skipped.path, skipped.reason)).keys() == EXPECTED_SKIPS.keys()
    for path, reason in zip(skipped.path, skipped.reason):
        assert EXPECTED_SKIPS[path] in reason
        assert f"{path}: {reason}" in res.skipped
    # The stereo 44.1 kHz file is used, resampled and downmixed, and the manifest says so.
    row = man[man.track_id == "metal.00007"].iloc[0]
    assert row.status == "ok" and row.segments == 3
    assert "downmixed 2 channels" in row.notes and "resampled 44100 Hz -> 22050 Hz" in row.notes
    assert len(res.store.tracks) == 21  # 20 good + the stereo one
    assert res.store.mfcc.shape == (int(res.store.tracks.segments.sum()), 44, 13)


def test_cli_preprocess_prints_skips_and_logs_them(bad_tree, tmp_store):
    import mlflow

    result = CliRunner().invoke(main, ["preprocess", "--data-dir", str(bad_tree), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "skipped genres_original/rock/rock.00009.wav: empty file (0 bytes)" in result.output
    runs = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"])
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["params.skipped_files"] == "4" and run["params.tracks_total"] == "21"
    assert sum(int(run[f"params.tracks_{p}"]) for p in ("train", "val", "test")) == 21
    client = mlflow.MlflowClient()
    arts = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"manifest.csv", "skipped.txt"} <= arts
    skipped_txt = open(client.download_artifacts(run.run_id, "skipped.txt")).read()
    assert skipped_txt.count("\n") == 4 and "jazz.00054.wav: unreadable audio" in skipped_txt
    assert run["tags.dataset_synthetic"] == "false"


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "folder does not exist"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no genre folders found"),
    (lambda p: kaggle_tree(p / "d", 1, 1.2, genres=("blues",)) and ((p / "d" / "Data" / "genres_original" / "hip-hop").mkdir() or p / "d"),
     "unknown genre folder(s) hip-hop"),
])
def test_fatal_dataset_errors_are_one_line(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        discover(path)
    result = CliRunner().invoke(main, ["preprocess", "--data-dir", str(path), "--no-track"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0, result.output
    assert result.output.startswith("error: ") and message in result.output and "Traceback" not in result.output


def test_synthetic_data_is_labelled(demo_dir, tmp_path):
    d = discover(demo_dir)
    assert d.synthetic is not None and d.name == "synthetic-gtzan"
    res = preprocess(PreprocessConfig(data_dir=str(demo_dir), cache_dir=str(tmp_path / "c")))
    assert res.store.synthetic and res.store.dataset_name == "synthetic-gtzan"


@pytest.mark.sample
def test_real_sample_manifest(sample_dir, tmp_path):
    """The brief's acceptance figures on the real GTZAN sample."""
    res = preprocess(PreprocessConfig(data_dir=str(sample_dir), cache_dir=str(tmp_path / "c")))
    man = res.store.manifest
    assert (man.status == "ok").sum() == 50
    skipped = man[man.status == "skipped"]
    assert list(skipped.path) == ["genres_original/jazz/jazz.00054.wav"]
    assert "unreadable audio" in skipped.reason.iloc[0]
    tracks = res.store.tracks
    assert tracks.groupby("genre").size().to_dict() == {g: 5 for g in GENRES}
    assert tracks.segments.between(29, 30).all()
    assert res.store.mfcc.shape[1:] == (44, 13)
    assert res.store.images.shape == (50, 3, 180, 180)
    assert set(tracks.image_source) == {"png"}
    m = res.store.manifest_with_split(SplitConfig(split="track", seed=0))
    ok = m[m.status == "ok"]
    assert set(ok.split) <= {"train", "val", "test"}
    assert (ok[["segments_train", "segments_val", "segments_test"]].gt(0).sum(axis=1) == 1).all()
