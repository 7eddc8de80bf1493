"""Data for nodes that cannot see --data-dir: a features run's artifacts stand in for the folder."""

from __future__ import annotations

import shutil

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.config import FeatureConfig, SplitConfig
from genre_models.tracking.shipping import features_run_id


def _publish(data, image_size=32, audio=True) -> str:
    args = ["preprocess", "--data-dir", str(data), "--image-size", str(image_size), "--no-track", "--publish"]
    res = CliRunner().invoke(main, args + (["--with-audio"] if audio else []))
    assert res.exit_code == 0, res.output
    uri = res.stdout.strip().splitlines()[-1].split("--data-dir ")[-1]
    assert features_run_id(uri), res.stdout
    return uri


@pytest.mark.slow
def test_a_features_run_replaces_the_data_folder_for_training_and_the_gan(demo_dir, tmp_path, tmp_store, monkeypatch):
    from genre_models.data.store import load_store
    from genre_models.tracking.shipping import training_audio_for as training_audio

    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    uri = _publish(data)
    fid = features_run_id(uri)
    run = mlflow.get_run(fid)
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "features" and run.data.tags["with_audio"] == "true"
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(fid, "features")}
    assert names == {f"features/{f}" for f in ("mfcc.npy", "stats.npy", "seg_track.npy", "images.npy", "img_track.npy", "manifest.csv",
                                              "meta.json")}
    driver_store = load_store(tmp_path / "cache" / run.data.tags["cache_key"])
    assert run.data.metrics["segments"] == driver_store.mfcc.shape[0] == 200  # 50 tracks x 4 one-second segments
    # What the GAN would decode from the folder, computed before the folder goes away.
    split = SplitConfig(split="track", seed=0)
    decoded = np.array(training_audio(driver_store, split, FeatureConfig(image_size=32), str(tmp_path / "cache")).audio)

    shutil.rmtree(data)  # a node that cannot see the data, with an empty cache of its own
    node_cache = tmp_path / "node-cache"
    monkeypatch.setenv("GENRE_BENCH_CACHE", str(node_cache))
    res = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", uri, "--image-size", "32", "--epochs", "2",
                                    "--no-log-model"])
    assert res.exit_code == 0, res.output
    (trained,) = mlflow.search_runs(filter_string="tags.net = 'net5'", output_format="list")
    assert trained.info.status == "FINISHED" and trained.data.params["data_dir"] == uri
    assert sum(int(trained.data.params[f"n_{p}"]) for p in ("train", "val", "test")) == 200
    assert trained.data.tags["dataset"].endswith(f"@{driver_store.digest}")  # the same dataset, by digest
    fetched = load_store(node_cache / run.data.tags["cache_key"])
    assert fetched.meta["fetched_from"] == fid
    np.testing.assert_array_equal(fetched.mfcc, driver_store.mfcc)

    # The GAN's training audio comes from the shipped segment audio, equal to a fresh decode.
    shipped = np.array(training_audio(fetched, split, FeatureConfig(image_size=32), str(node_cache)).audio)
    assert shipped.shape == decoded.shape == (120, 22050)  # the 30 training tracks' segments
    np.testing.assert_array_equal(shipped, decoded)


def test_a_features_run_must_match_the_asked_features_and_be_one(demo_dir, tmp_path, tmp_store, monkeypatch):
    uri = _publish(demo_dir, audio=False)
    monkeypatch.setenv("GENRE_BENCH_CACHE", str(tmp_path / "node"))
    res = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", uri, "--image-size", "64", "--epochs", "1"])
    assert res.exit_code == 2
    (line,) = res.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"error: {uri} holds features made with image_size=32 (asked 64)")

    other = mlflow.MlflowClient().create_run(mlflow.get_experiment_by_name("gtzan-genre-benchmark").experiment_id).info.run_id
    res = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", f"runs:/{other}/features", "--epochs", "1"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.strip().splitlines()[-1] == (f"error: runs:/{other}/features: run {other} is not a features run "
                                                   "(stage=?)")

    res = CliRunner().invoke(main, ["preprocess", "--data-dir", str(demo_dir), "--with-audio", "--no-track"])
    assert res.exit_code == 2 and res.stderr.strip() == "error: --with-audio needs --publish"


def test_a_local_sweep_can_ship_its_data_as_artifacts_too(demo_dir, tmp_store):
    from genre_models.sweep.driver import run_sweep
    from genre_models.sweep.grid import SweepConfig

    cfg = SweepConfig(data_dir=str(demo_dir), grid="demo", nets=("net5",), seeds=1, splits=("track",), max_epochs=1,
                      data_access="artifacts")
    res = run_sweep(cfg)
    assert (res.points, res.finished, res.failed) == (1, 1, 0)
    (features,) = mlflow.search_runs(filter_string="tags.stage = 'features'", output_format="list")
    (net5,) = mlflow.search_runs(filter_string="tags.stage = 'train'", output_format="list")
    assert net5.data.params["data_dir"] == f"runs:/{features.info.run_id}/features"
    assert features.data.tags["with_audio"] == "false"  # no GAN in this grid: no segment audio shipped
    assert mlflow.get_run(res.parent_run_id).data.tags["features_run_id"] == features.info.run_id


def test_a_run_that_another_process_ended_is_not_claimed_finished(tmp_store):
    from genre_models.errors import TrackingError
    from genre_models.tracking.records import verify_record

    with mlflow.start_run() as run:
        mlflow.log_metric("val_accuracy", 0.5, step=1)
        verify_record(run.info.run_id, ["val_accuracy"], {"val_accuracy": 1})  # complete: passes
        with pytest.raises(TrackingError, match=r"val_accuracy has 1 of 2 steps; artifacts missing: model\.txt"):
            verify_record(run.info.run_id, ["val_accuracy"], {"val_accuracy": 2}, ["model.txt"])
        client = mlflow.MlflowClient()
        client.set_tag(run.info.run_id, "error", "KILLED: the sweep driver stopped before this run ended")
        client.set_terminated(run.info.run_id, "KILLED")
        with pytest.raises(TrackingError, match=r"it was ended as KILLED by another process \(KILLED: the sweep"):
            verify_record(run.info.run_id, ["val_accuracy"])
