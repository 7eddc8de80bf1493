"""Built-in demo data, and the benchmarks' plumbing (their figures are not asserted: no timed tests)."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.genres import GENRES
from genre_models.data.synth import synth_track


def test_synth_cli_writes_the_kaggle_layout(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["synth", "--out", str(out), "--tracks-per-genre", "2", "--seconds", "3", "--seed", "1",
                                  "--with-images"])
    assert r.exit_code == 0, r.output
    wavs = sorted((out / "Data" / "genres_original").glob("*/*.wav"))
    assert len(wavs) == 25 and wavs[0].name == "blues.00000.wav"  # 2 per genre and 5 repeats
    info = sf.info(wavs[0])
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (22050, 1, "PCM_16", 3 * 22050)
    assert len(list((out / "Data" / "images_original").glob("*/*.png"))) == 20  # repeats have no PNG
    marker = json.loads((out / "SYNTHETIC.json").read_text())
    assert marker["synthetic"] is True and marker["tracks_per_genre"] == 2
    assert [(r["track"], r["of"]) for r in marker["repeated_tracks"]] == [
        ("classical.00002", "classical.00000"), ("hiphop.00002", "hiphop.00001"), ("pop.00002", "pop.00000"),
        ("blues.00002", "blues.00001"), ("disco.00002", "disco.00000")]
    assert "  pop.00002 repeats pop.00000: shifted 0.4 s later" in r.output
    cut = sf.info(out / "Data" / "genres_original" / "blues" / "blues.00002.wav")
    assert cut.frames == int(1.5 * 22050)  # cut 1.5 s shorter at its start


def test_synth_is_deterministic_and_genres_are_learnable_but_not_trivial():
    np.testing.assert_array_equal(synth_track("rock", 2.0, 5), synth_track("rock", 2.0, 5))
    assert not np.array_equal(synth_track("rock", 2.0, 5), synth_track("rock", 2.0, 6))
    import librosa
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    feats, labels = [], []
    for gi, g in enumerate(GENRES):
        for i in range(8):
            y = synth_track(g, 4.0, seed=1000 * gi + i)
            m = librosa.feature.mfcc(y=y, sr=22050, n_mfcc=13)
            feats.append(np.concatenate([m.mean(1), m.std(1)]))
            labels.append(gi)
    acc = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                          np.array(feats), np.array(labels), cv=4).mean()
    assert acc > 0.5  # clearly above chance (0.1): the genres carry information


def test_perf_preprocess_reports_ratios(demo_dir):
    r = CliRunner().invoke(main, ["perf", "preprocess", "--data-dir", str(demo_dir), "--limit", "6", "--jobs", "1",
                                  "--repeat-clips", "40"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["files"] == 6 and res["segments"] == res["naive_segments"] == 24
    assert res["speedup_vs_naive"] > 0 and res["x_realtime"] > 0
    assert res["repeats_clips"] == 40 and res["repeats_all_pairs_s"] > 0 and 0 < res["fingerprint_share_of_extraction"] < 1


def test_perf_train_reports_ratio_and_flops():
    r = CliRunner().invoke(main, ["perf", "train", "--net", "net3", "--head", "gap", "--image-size", "32", "--batches", "2",
                                  "--batch-size", "8", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["suite_samples_per_s"] > 0 and res["bare_samples_per_s"] > 0
    assert res["gflop_per_step"] > 0 and "suite_over_bare" in res


def test_the_study_projection_schedules_points_as_the_sweep_does():
    from genre_models.sweep.cost.model import schedule
    from genre_models.sweep.grid import GridPoint

    a, b, c = (GridPoint("train", n, "track", 0) for n in ("net5", "net1", "net2"))
    gan = GridPoint("gan", "gan", "track", 0)
    deps = {a: [], gan: [a], b: [], c: []}
    secs = {a: 10.0, gan: 30.0, b: 5.0, c: 5.0}
    assert schedule([a, gan, b, c], deps, secs, 1, shared=False) == 50.0  # one slot: the sum
    assert schedule([a, gan, b, c], deps, secs, 2, shared=False) == 40.0  # net5 then the GAN: the critical path
    assert schedule([a, gan, b, c], deps, secs, 2, shared=True) == 50.0  # one shared CPU: no faster than one slot


def test_perf_study_measures_every_stage_and_projects_the_grid(tmp_path):
    r = CliRunner().invoke(main, ["perf", "study", "--json", "--grid", "demo", "--nets", "net1,net5,net6", "--seeds", "2",
                                  "--splits", "track", "--jobs", "2", "--seconds", "0.05",
                                  "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--experiment", "perf"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out["rates"]["nets"]) == {"net1", "net5", "net6"} and out["rates"]["gan"]["scaled_from_probe"] is True
    assert all(v["train_samples_per_s"] > 0 and 0 < v["share_of_peak"] for v in out["rates"]["nets"].values())
    one, two = out["projection"]["jobs1"], out["projection"]["jobs2"]
    assert one["points"] == two["points"] == 2 * 5  # per seed: net5, the GAN, net6, net1 at 5 and 10 epochs
    assert one["makespan_s"] == one["sequential_s"] and two["makespan_s"] >= max(one["stage_seconds"].values())
    assert one["projected_minutes"] == round(one["makespan_s"] / 60, 1)
    import mlflow

    run = mlflow.MlflowClient(f"sqlite:///{tmp_path}/m.db").get_run(out["run_id"])
    assert run.data.tags["stage"] == "perf" and run.data.metrics["jobs2_projected_minutes"] == two["projected_minutes"]
