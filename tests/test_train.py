"""The training loop and the MLflow record each run leaves."""

from __future__ import annotations

import copy
import warnings

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import pandas as pd

from benchmark.cli import main
from genre_models.genres import GENRES
from genre_models.config import TrainConfig
from genre_models.models.registry import NETS
from genre_models.stages.train import train
from genre_models.tracking.logger import MlflowLogger
from genre_models.training.evaluate import evaluate, track_vote
from genre_models.training.loop import Part, fit, make_loader
from genre_models.util import git_commit

from conftest import write_wav

TINY = ["--epochs", "2", "--image-size", "32", "--batch-size", "16"]
GAN_TINY = ["--gan-steps", "2", "--gan-d", "4", "--gan-batch-size", "4", "--gan-per-genre", "3"]


def test_track_vote_majority_with_tiebreak():
    probs = np.array([
        [0.6, 0.4, 0], [0.6, 0.4, 0], [0.1, 0.9, 0],  # track 0: two votes for class 0
        [0.9, 0.1, 0], [0.2, 0.8, 0],                 # track 1: a tie, class 0 has the higher mean
        [0.0, 0.1, 0.9],                              # track 2: one segment
    ])
    tracks = np.array([0, 0, 0, 1, 1, 2])
    uniq, pred = track_vote(probs, tracks)
    assert uniq.tolist() == [0, 1, 2] and pred.tolist() == [0, 0, 2]
    probs10 = np.pad(probs, ((0, 0), (0, 7)))
    ev = evaluate(probs10, np.array([0, 0, 0, 1, 1, 2]), tracks, np.array([0, 1, 2]), loss=0.5)
    assert ev["accuracy"] == pytest.approx(4 / 6) and ev["track_accuracy"] == pytest.approx(2 / 3)
    assert ev["n_tracks"] == 3 and ev["n_samples"] == 6


def _toy_parts(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=g)
    y = (x[:, 0] > 0).long()
    # Validation labels are the opposite rule: the better the fit, the worse val_loss gets.
    xv = torch.randn(32, 8, generator=g)
    return Part(x, y, np.arange(64)), Part(xv, (xv[:, 0] <= 0).long(), np.arange(32))


def test_early_stopping_stops_and_restores_best_weights():
    torch.manual_seed(0)
    train_p, val_p = _toy_parts()
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    snapshots = {}
    hist = fit(model, torch.optim.Adam(model.parameters(), 1e-2), make_loader(train_p, 16, True, 0, 0, False),
               make_loader(val_p, 16, False, 0, 0, False), epochs=50, device=torch.device("cpu"),
               early_stopping=True, patience=3,
               on_epoch=lambda e, m: snapshots.__setitem__(e, copy.deepcopy(model.state_dict())))
    val_losses = [m["val_loss"] for m in hist.epochs]
    assert hist.best_epoch == int(np.argmin(val_losses)) + 1
    assert hist.stopped_epoch == hist.best_epoch + 3 < 50
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[hist.best_epoch][k])


def test_without_early_stopping_all_epochs_run_and_final_weights_stay():
    torch.manual_seed(0)
    train_p, val_p = _toy_parts()
    model = torch.nn.Linear(8, 10)
    hist = fit(model, torch.optim.Adam(model.parameters(), 1e-2), make_loader(train_p, 16, True, 0, 0, False),
               make_loader(val_p, 16, False, 0, 0, False), epochs=6, device=torch.device("cpu"))
    assert hist.stopped_epoch == 6 and len(hist.epochs) == 6 and 1 <= hist.best_epoch <= 6


def test_training_is_deterministic_on_cpu(demo_dir, tmp_path):
    cfg = TrainConfig(net="net5", data_dir=str(demo_dir), epochs=2, batch_size=32, seed=3, device="cpu",
                      cache_dir=str(tmp_path / "c"))
    a = train(cfg)
    b = train(cfg)
    assert a.metrics["test_accuracy"] == b.metrics["test_accuracy"]
    assert a.history.epochs == b.history.epochs
    c = train(TrainConfig(**{**cfg.__dict__, "seed": 4}))
    assert c.history.epochs != a.history.epochs


EPOCH_METRICS = {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}
FINAL_METRICS = {"test_accuracy", "test_loss", "test_track_accuracy", "test_macro_f1", "best_epoch", "stopped_epoch",
                 "train_time_s", "samples_per_sec"}
ARTIFACTS = {"confusion_matrix.png", "confusion_matrix.csv", "classification_report.txt", "classification_report.json",
             "learning_curves.png", "history.csv", "config.json"}


@pytest.mark.slow
@pytest.mark.parametrize("net", list(NETS))
def test_cli_train_leaves_a_complete_record(net, demo_dir, tmp_store):
    classical = NETS[net].family == "classical"  # fitted once: no loop settings to give
    args = ["train", "--net", net, "--data-dir", str(demo_dir), *([] if classical else TINY), "--seed", "1"]
    if NETS[net].early_stopping:
        args += ["--early-stopping", "on", "--patience", "1"]
    if NETS[net].uses_gan:  # a tiny WaveGAN, trained first because none exists yet
        args += GAN_TINY
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    noise = [str(w.message) for w in caught if issubclass(w.category, UserWarning) and "mlflow" in w.filename]
    assert not noise, noise  # MLflow's hints (an int-schema one printed per run before) are not the user's to act on
    client = mlflow.MlflowClient()
    runs = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], filter_string="tags.stage = 'train'",
                              output_format="list")
    assert len(runs) == 1
    run = runs[0]
    m, tags, params = run.data.metrics, run.data.tags, run.data.params
    assert EPOCH_METRICS | FINAL_METRICS | {"test_majority_accuracy", "test_majority_track_accuracy"} <= set(m)
    steps = [h.step for h in client.get_metric_history(run.info.run_id, "val_accuracy")]
    assert steps == list(range(1, int(m["stopped_epoch"]) + 1))
    assert 0.0 <= m["test_accuracy"] <= 1.0 and m["samples_per_sec"] > 0
    n_test, n_tracks = int(params["n_test"]), int(params["n_test_tracks"])  # counts are parameters, not metrics
    assert not {"n_test", "n_train", "test_n_samples"} & set(m)
    assert params["n_train_effective"] == params["n_train_tracks"]  # the demo has no repeated recordings
    if NETS[net].input_kind == "image":
        assert m["test_track_accuracy"] == m["test_accuracy"] and n_test == n_tracks == 10
    else:
        assert n_test == n_tracks * 4 and n_tracks == 10
    assert f"tested once on 10 tracks ({n_test} samples)" in tags["mlflow.note.content"]
    assert not {"dataset_name", "dataset_digest", "git_commit", "grid.net"} & set(tags)  # one tag per fact
    (inp,) = run.inputs.dataset_inputs
    assert f"{inp.dataset.name}@{inp.dataset.digest}" == tags["dataset"]  # one digest: the tag's
    assert tags["net"] == net and tags["split"] == "track" and tags["seed"] == "1"
    assert tags["dataset"].startswith("synthetic-gtzan@") and tags["dataset_synthetic"] == "true"
    assert tags["mlflow.runName"] == (f"{net}-track-s1" if classical else f"{net}-e2-track-s1")
    if git_commit():
        assert tags["mlflow.source.git.commit"] == git_commit()
    assert params["net"] == net and params["features.n_mfcc"] == "13" and params["lr"] == ("None" if classical else "0.0001")
    assert tags["net_family"] == NETS[net].family and (set(k for k in params if k.startswith("chosen.")) != set()) == classical
    assert params["early_stopping"] == str(NETS[net].early_stopping)
    if NETS[net].uses_gan:
        assert int(params["n_train"]) == int(params["n_train_real"]) + 30 and params["n_generated"] == "30"
        assert params["gan.d"] == "4" and tags["gan_run_id"] and tags["gan_reused"] == "false"
    else:
        assert not any(k.startswith("gan") for k in params) and "gan_run_id" not in tags
    assert ARTIFACTS | {"weights"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    from genre_models.tracking.models import fetch_net

    assert fetch_net(f"runs:/{run.info.run_id}/model").spec.name == net  # the net, read back as data
    cm = np.loadtxt(client.download_artifacts(run.info.run_id, "confusion_matrix.csv"), delimiter=",", skiprows=1,
                    usecols=range(1, 11))
    assert cm.sum() == n_test
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    models = [mo for mo in models if mo.name == "model"]  # net6's GAN run also logs its "generator"
    assert len(models) == 1 and models[0].source_run_id == run.info.run_id


@pytest.mark.slow
def test_predict_scores_clips_and_folders_with_the_net_loaded_once(demo_dir, tmp_store, tmp_path, monkeypatch):
    """One clip, then a folder of clips with odd files among them: one line per clip, every odd
    file skipped with its reason, a CSV with --out, and the net read from the store only once."""
    import json
    import os

    import genre_models.stages.predict as stage

    result = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", str(demo_dir), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    run_id = result.stdout.strip().split()[-1]
    uri = f"runs:/{run_id}/model"
    clip = next((demo_dir / "Data" / "genres_original" / "metal").glob("*.wav"))
    one = json.loads(CliRunner().invoke(main, ["predict", str(clip), "--model-uri", uri, "--json"]).stdout)
    (c,) = one["clips"]
    assert one["net"] == "net5" and c["n_inputs"] == 4 and len(c["top"]) == 3 and one["skipped"] == []
    assert sum(c["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    folder = tmp_path / "mine"
    for g in ("rock", "jazz"):
        (folder / g).mkdir(parents=True)
        for f in sorted((demo_dir / "Data" / "genres_original" / g).glob("*.wav"))[:2]:
            (folder / g / f.name).write_bytes(f.read_bytes())
    (folder / "notes.txt").write_text("not audio")
    (folder / ".DS_Store").write_bytes(b"\0")
    write_wav(folder / "silence.wav", np.zeros(22050 * 2, np.float32))
    os.mkfifo(folder / "pipe.wav")
    (folder / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    fetched = []
    real = stage.fetch_net
    monkeypatch.setattr(stage, "fetch_net", lambda u: fetched.append(u) or real(u))
    out = CliRunner().invoke(main, ["predict", str(folder), str(clip), "--model-uri", uri, "--out", str(tmp_path / "p.csv")])
    assert out.exit_code == 0, out.output
    lines = out.stdout.strip().splitlines()
    scored = [ln for ln in lines if ln.endswith("(4 inputs)")]
    assert len(scored) == 5 and scored[0].startswith(f"{folder / 'jazz'}/jazz.0000") and scored[-1].startswith(f"{clip}: ")
    assert set(ln for ln in lines if ln.startswith("skipped ")) == {
        f"skipped {folder / '.DS_Store'}: hidden file", f"skipped {folder / 'notes.txt'}: not an audio file (no audio "
        "header: it is read by its first bytes, not its name)",
        f"skipped {folder / 'pipe.wav'}: not a regular file (a pipe, socket or device)",
        f"skipped {folder / 'gone.wav'}: dangling symlink (its target does not exist)",
        f"skipped {folder / 'silence.wav'}: no sound: every sample is 0 (digital silence)"}
    assert lines[-1].startswith(f"net5 (mfcc input, {uri}): 5 clip(s) scored, 5 skipped, in ") and fetched == [uri]
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.status).count("scored") == 5 and list(table.status).count("skipped") == 5
    assert np.allclose(table[table.status == "scored"][list(GENRES)].sum(1), 1.0, atol=1e-4)
    missing = CliRunner().invoke(main, ["predict", str(tmp_path / "nope.mp3"), "--model-uri", uri])
    assert missing.exit_code == 2 and missing.output.strip() == f"error: {tmp_path / 'nope.mp3'}: file does not exist"
    pipe = CliRunner().invoke(main, ["predict", str(folder / "pipe.wav"), "--model-uri", uri])
    assert pipe.exit_code == 2 and pipe.stderr.strip() == f"error: {folder / 'pipe.wav'}: not a regular file (a pipe, socket or device)"
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "readme.md").write_text("no clip here")
    nothing = CliRunner().invoke(main, ["predict", str(tmp_path / "odd"), "--model-uri", uri])
    assert nothing.exit_code == 2 and nothing.stdout.strip() == f"skipped {tmp_path / 'odd' / 'readme.md'}: not an audio " \
        "file (no audio header: it is read by its first bytes, not its name)"
    assert nothing.stderr.strip() == "error: no clip could be scored (1 skipped, each listed above)"


@pytest.mark.slow
@pytest.mark.sample
def test_predict_on_a_real_sample_clip(sample_dir, demo_dir, tmp_store):
    from genre_models.stages.predict import predict

    res = train(TrainConfig(net="net5", data_dir=str(demo_dir), epochs=1), logger=MlflowLogger())
    out = predict([str(sample_dir / "Data" / "genres_original" / "blues" / "blues.00000.wav")], f"runs:/{res.run_id}/model")
    (clip,) = out.clips
    assert clip.n_inputs == 30 and len(clip.top(10)) == 10 and abs(sum(clip.probabilities.values()) - 1) < 1e-4


def test_the_train_stage_never_runs_a_gan_itself(demo_dir, tmp_path):
    """net6's generated set comes from the get-or-run layer; the stage alone refuses in one line."""
    from genre_models.errors import ConfigError
    from genre_models.training.logger import NULL_LOGGER

    with pytest.raises(ConfigError, match=r"^net6 trains on a generated set; run it through genre_models.workflow"):
        train(TrainConfig(net="net6", data_dir=str(demo_dir), epochs=1, cache_dir=str(tmp_path / "c"), jobs=1))
    written = []
    assert NULL_LOGGER.log_artifacts(lambda out: written.append(out)) == [] and written == []  # never asked to write


def test_a_nan_loss_is_one_line_whose_advice_fits_its_cause(demo_dir, tmp_store, tmp_path):
    """--lr 1e12: the run ends FAILED with an error tag, the one line says lower --lr. NaN in the
    cached features: the cache is found damaged when opened and rebuilt, so training succeeds;
    and non-finite inputs that reach the loop are named as a damaged cache, not a learning rate."""
    cache = tmp_path / "c"
    res = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", str(demo_dir), "--epochs", "3", "--lr", "1e12",
                                    "--cache-dir", str(cache)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: training loss became nan at epoch ") and line.endswith(
        "with finite inputs: the learning rate 1e+12 is too high for this net; lower --lr")
    run = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")[0]
    assert run.info.status == "FAILED" and run.data.tags["error"] == f"TrainingDiverged: {line[len('error: '):]}"
    store = next(p for p in cache.iterdir() if (p / "meta.json").is_file())
    mfcc = np.load(store / "mfcc.npy")
    np.save(store / "mfcc.npy", np.full_like(mfcc, np.nan))  # same size: only the values are wrong
    again = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", str(demo_dir), "--epochs", "1",
                                      "--cache-dir", str(cache)])
    assert again.exit_code == 0, again.output
    assert f"{store}: damaged feature cache (mfcc.npy holds NaN or infinite values); rebuilding it" in again.stderr
    assert np.isfinite(np.load(store / "mfcc.npy")).all()
    from genre_models.errors import TrainingDiverged

    x = torch.randn(16, 44, 13)
    x[3, 5, 2] = float("nan")
    part = Part(x, torch.randint(0, 10, (16,)), np.arange(16))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(44 * 13, 10))
    with pytest.raises(TrainingDiverged, match="the training inputs hold NaN or infinite values: the feature cache is "
                                               "damaged; rebuild it with `benchmark preprocess --force`"):
        fit(model, torch.optim.Adam(model.parameters()), make_loader(part, 8, True, 0, 0, False),
            make_loader(part, 8, False, 0, 0, False), epochs=1, device=torch.device("cpu"))
